package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/logging"
)

// setFlags collects repeated --set key=value arguments.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// configFlags are the flags `run` and `dev` share.
type configFlags struct {
	file string
	sets setFlags
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "config", "", "YAML configuration file (config/example.yaml documents every key)")
	fs.Var(&c.sets, "set", "key=value overriding the file and the environment (repeatable)")
}

// loadConfig loads and validates the configuration; every problem is
// reported together and is a usage error (exit 2).
func (c *configFlags) load(dev bool, stderr io.Writer) (*config.Config, []string, error) {
	cfg, warnings, err := config.Load(config.LoadOptions{
		File: c.file, Sets: c.sets, Environ: os.Environ(), Dev: dev,
	})
	if err != nil {
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		return nil, nil, usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return cfg, warnings, nil
}

// startLogging builds the JSON logger on stdout and routes every other
// logging API of the process (std log, slog, zerolog's global) into it.
func startLogging(cfg *config.Config, stdout io.Writer, warnings []string) (zerolog.Logger, error) {
	log, err := logging.New(stdout, cfg.Log.Level, buildinfo.Get().Version)
	if err != nil {
		return log, usageError{err}
	}
	logging.Install(log)
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	log.Info().Object("config", cfg).Msg("configuration loaded")
	return log, nil
}

// workerCommand is the start of the commands that run a worker (run, dev,
// bench worker): their flags (--config, --set, nothing else), the
// configuration (dev: dev mode's defaults under it) and the JSON log.
func workerCommand(name, usage string, about []string, dev bool, args []string, stdout, stderr io.Writer) (*config.Config, zerolog.Logger, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf configFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: "+usage)
		for _, l := range about {
			fmt.Fprintln(stderr, l)
		}
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, zerolog.Logger{}, err
	}
	if fs.NArg() > 0 {
		return nil, zerolog.Logger{}, usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, warnings, err := cf.load(dev, stderr)
	if err != nil {
		return nil, zerolog.Logger{}, err
	}
	log, err := startLogging(cfg, stdout, warnings)
	if err != nil {
		return nil, zerolog.Logger{}, err
	}
	return cfg, log, nil
}

func runRun(args []string, stdout, stderr io.Writer) error {
	cfg, log, err := workerCommand("run", "ragstream run --config FILE [--set key=value ...]",
		[]string{"runs the worker: consumer group, Qdrant and Neo4j writers, admin port"}, false, args, stdout, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w, err := newWorker(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return err
	}
	if err := w.run(ctx); err != nil {
		log.Error().Err(err).Msg("worker failed")
		return err
	}
	return nil
}
