package config

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration, tied to the key (or
// environment variable, or --set argument) where it can be fixed.
type Problem struct {
	// Key is a config key ("neo4j.uri", "kafka.brokers[1]"), an environment
	// variable ("RAGSTREAM_NEO4J_PASSWORD"), or a source ("config file").
	Key string
	// Message says what is wrong, lowercase, without the key.
	Message string
	// Err is the underlying error, if any (an *fs.PathError, say).
	Err error
}

// Error formats the problem as "key: message".
func (p Problem) Error() string { return p.Key + ": " + p.Message }

// Unwrap returns the underlying error.
func (p Problem) Unwrap() error { return p.Err }

// Error is every problem found while loading or validating a
// configuration. Its message has one problem per line, so that a start-up
// failure shows everything there is to fix at once.
type Error struct {
	Problems []Problem
}

// Error joins the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// problems collects Problems; err returns nil when there are none.
type problems []Problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// addErr records err under key, keeping it for errors.As.
func (ps *problems) addErr(key string, err error) {
	*ps = append(*ps, Problem{Key: key, Message: err.Error(), Err: err})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: append([]Problem(nil), ps...)}
}

// IsConfigError reports whether err is (or wraps) a configuration Error,
// the failures `ragstream` exits 2 for.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
