package config

import (
	"fmt"
	"log/slog"
)

// RedactedValue is what a non-empty Secret shows wherever it is printed,
// marshalled or logged.
const RedactedValue = "[redacted]"

// Secret is a credential. Every way of printing it — fmt verbs (%v, %+v,
// %#v, %s, %q, %x, …), JSON, text marshalling, slog — shows RedactedValue (an
// empty secret shows empty, so "not set" stays visible). Reveal returns the
// value for the one place that needs it: the client that authenticates.
//
// Every Secret field of Config has a sibling string field whose key is the
// secret's key plus "_file"; Load reads the secret from that file.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return RedactedValue
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.shown()) }

// Format implements fmt.Formatter, so that no verb, not even %d or %x,
// prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.shown())
	default:
		fmt.Fprint(f, s.shown())
	}
}

// MarshalText implements encoding.TextMarshaler (YAML and others).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.shown())), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }
