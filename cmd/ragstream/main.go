// Command ragstream is the one binary of the project: the worker, its dev
// mode and the operator tools, as subcommands.
//
// Exit codes are part of the operator contract (DESIGN.md §10): 0 clean stop,
// 1 runtime failure, 2 bad configuration or usage, with every problem printed.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks a problem with the command line or the configuration:
// it maps to exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// command is one subcommand: its one-line summary and its entry point.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"version": {"print version, commit and Go version", runVersion},
		"probe":   {"exit 0 when URL answers 2xx (image healthcheck)", runProbe},
		"produce": {"publish realistic sample events to a topic", runProduce},
		"run":     {"run the worker (production): consumer group, stores, admin port", runRun},
		"dev":     {"run the worker on the embedded default (in-process Kafka and Qdrant)", runDev},
		"verify":  {"show what landed in Qdrant and Neo4j and check that they agree", runVerify},
		"dlq":     {"inspect or replay dead-lettered records", runDLQ},
		"bench":   {"measure the worker end to end (events/s, CPU per event, RSS, latency)", runBench},
	}
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ragstream: unknown command %q\n\n", args[0])
		printUsage(stderr, cmds)
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "ragstream %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "ragstream %s: %v\n", args[0], err)
		return exitRuntime
	}
}

func printUsage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: ragstream <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "run 'ragstream <command> -h' for the flags of one command")
}
