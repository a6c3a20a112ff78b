package config

import (
	"slices"

	"github.com/rs/zerolog"
)

// Redacted returns every key of c with its value, secrets shown as
// RedactedValue (an empty secret stays empty), for printing or logging the
// effective configuration. Keys are the dotted key names; durations and
// sizes are strings in the form the file accepts; lists are []string.
func (c *Config) Redacted() map[string]any {
	out := make(map[string]any, len(schema.fields))
	for _, f := range schema.fields {
		out[f.key] = f.shown(c)
	}
	return out
}

// shown is f's value in c as Redacted presents it.
func (f *field) shown(c *Config) any {
	switch v := f.value(c).Interface().(type) {
	case Secret:
		return v.shown()
	case Duration:
		return v.String()
	case ByteSize:
		return v.String()
	case []string:
		return slices.Clone(v)
	default:
		return v
	}
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler, so that
// log.Info().Object("config", cfg) logs every key, in declaration order,
// with secrets redacted.
func (c *Config) MarshalZerologObject(e *zerolog.Event) {
	for _, f := range schema.fields {
		switch v := f.shown(c).(type) {
		case string:
			e.Str(f.key, v)
		case bool:
			e.Bool(f.key, v)
		case int:
			e.Int(f.key, v)
		case []string:
			e.Strs(f.key, v)
		}
	}
}
