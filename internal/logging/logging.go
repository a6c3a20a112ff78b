// Package logging sets up ragstream's one log: JSON lines on stdout, one
// object per line, with the fields every line carries — ts (RFC 3339 with
// nanoseconds, UTC), level, service, version, msg — and, on the lines of one
// HTTP request or one Kafka record, correlation_id and topic, partition,
// offset.
//
// Libraries that log through the standard library's log or log/slog (the
// Qdrant Go client warns through slog) are routed into the same logger by
// Install, so that nothing on stdout is anything but JSON.
package logging

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// Service is the value of the service field of every line.
const Service = "ragstream"

// Field names shared by every part that logs, so that a query over the log
// finds one record's lines whichever package wrote them.
const (
	FieldService       = "service"
	FieldVersion       = "version"
	FieldCorrelationID = "correlation_id"
	FieldTopic         = "topic"
	FieldPartition     = "partition"
	FieldOffset        = "offset"
	FieldComponent     = "component"
)

// Levels lists the accepted values of log.level, most verbose first.
var Levels = []string{"trace", "debug", "info", "warn", "error"}

func init() {
	// These are zerolog's package-level settings; setting them here, in the
	// one package every binary's logger comes from, means no logger of this
	// process writes another field name or time format.
	zerolog.TimestampFieldName = "ts"
	zerolog.MessageFieldName = "msg"
	zerolog.LevelFieldName = "level"
	zerolog.ErrorFieldName = "error"
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
	zerolog.DurationFieldUnit = time.Millisecond
}

// ParseLevel maps a log.level value to a zerolog level. The empty string
// means info. Anything outside Levels is an error naming the key.
func ParseLevel(level string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "trace":
		return zerolog.TraceLevel, nil
	case "debug":
		return zerolog.DebugLevel, nil
	case "", "info":
		return zerolog.InfoLevel, nil
	case "warn":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("log.level: unknown level %q (want one of %s)", level, strings.Join(Levels, ", "))
}

// New returns the JSON logger writing to w at the given level, every line
// carrying ts, level, service and version. It changes no global state; see
// Install for that.
func New(w io.Writer, level string, version string) (zerolog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if version == "" {
		version = "dev"
	}
	return zerolog.New(w).Level(lvl).With().
		Timestamp().
		Str(FieldService, Service).
		Str(FieldVersion, version).
		Logger(), nil
}

// Install makes l the logger of everything in the process that does not get
// one passed: the standard library's log package (at info), log/slog's
// default logger (levels mapped, slog.LogValuer values resolved, so a
// config.Secret logged through slog stays redacted), zerolog's global
// logger (github.com/rs/zerolog/log) and zerolog.Ctx on a context without a
// logger. Lines from log and slog carry component "stdlog" / "slog", so one
// can tell them from ragstream's own.
//
// The returned function restores what was there before; tests use it, the
// binary installs once and never restores.
func Install(l zerolog.Logger) (restore func()) {
	prevSlog := slog.Default()
	prevLogW, prevLogFlags, prevLogPrefix := log.Writer(), log.Flags(), log.Prefix()
	prevGlobal := zlog.Logger
	prevCtx := zerolog.DefaultContextLogger

	slog.SetDefault(slog.New(zerolog.NewSlogHandler(l.With().Str(FieldComponent, "slog").Logger())))
	// slog.SetDefault routed log's output into slog already; give log its
	// own writer instead, so its lines say where they came from.
	log.SetOutput(StdWriter(l.With().Str(FieldComponent, "stdlog").Logger(), zerolog.InfoLevel))
	log.SetFlags(0)
	log.SetPrefix("")
	zlog.Logger = l
	ctxLogger := l
	zerolog.DefaultContextLogger = &ctxLogger

	return func() {
		slog.SetDefault(prevSlog)
		log.SetOutput(prevLogW)
		log.SetFlags(prevLogFlags)
		log.SetPrefix(prevLogPrefix)
		zlog.Logger = prevGlobal
		zerolog.DefaultContextLogger = prevCtx
	}
}

// StdWriter returns an io.Writer that logs each write as one line of l at
// level, the written text (without its trailing newline) as msg. It is the
// bridge for APIs that take a *log.Logger or an io.Writer for their errors,
// such as http.Server.ErrorLog.
func StdWriter(l zerolog.Logger, level zerolog.Level) io.Writer {
	return stdWriter{l: l, level: level}
}

// StdLogger returns a *log.Logger writing through StdWriter, tagged with
// component, for http.Server.ErrorLog and the like.
func StdLogger(l zerolog.Logger, level zerolog.Level, component string) *log.Logger {
	return log.New(StdWriter(l.With().Str(FieldComponent, component).Logger(), level), "", 0)
}

type stdWriter struct {
	l     zerolog.Logger
	level zerolog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	w.l.WithLevel(w.level).Msg(msg)
	return len(p), nil
}
