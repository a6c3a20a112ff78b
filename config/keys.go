package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment variable that configures ragstream.
const EnvPrefix = "RAGSTREAM_"

// field is one leaf key of Config, found by reflection over the koanf tags
// so that the struct definition is the only list of keys.
type field struct {
	key    string // "pipeline.batch.max_records"
	env    string // "RAGSTREAM_PIPELINE__BATCH__MAX_RECORDS"
	index  []int  // reflect field index path from Config
	typ    reflect.Type
	secret bool
	// file is the key of a secret's *_file twin.
	file string
}

// keySchema indexes the leaf keys of Config.
type keySchema struct {
	fields   []*field // in struct order
	byKey    map[string]*field
	byEnv    map[string]*field
	sections map[string]bool // "kafka", "kafka.tls", …
}

var (
	typeString   = reflect.TypeFor[string]()
	typeSecret   = reflect.TypeFor[Secret]()
	typeBool     = reflect.TypeFor[bool]()
	typeInt      = reflect.TypeFor[int]()
	typeStrings  = reflect.TypeFor[[]string]()
	typeDuration = reflect.TypeFor[Duration]()
	typeByteSize = reflect.TypeFor[ByteSize]()
)

// schema is built once; a Config field of a type Load cannot decode, or a
// Secret without its _file twin, panics at start-up (and in every test).
var schema = buildSchema()

func buildSchema() *keySchema {
	s := &keySchema{byKey: map[string]*field{}, byEnv: map[string]*field{}, sections: map[string]bool{}}
	s.walk(reflect.TypeFor[Config](), nil, nil)
	for _, f := range s.fields {
		if !f.secret {
			continue
		}
		twin, ok := s.byKey[f.key+"_file"]
		if !ok || twin.typ != typeString {
			panic("config: secret " + f.key + " has no string field " + f.key + "_file")
		}
		f.file = twin.key
	}
	return s
}

func (s *keySchema) walk(t reflect.Type, path []string, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("koanf")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if tag == "" {
			panic("config: field " + sf.Name + " has no koanf tag")
		}
		p := append(append([]string(nil), path...), tag)
		idx := append(append([]int(nil), index...), i)
		key := strings.Join(p, ".")
		switch sf.Type {
		case typeString, typeSecret, typeBool, typeInt, typeStrings, typeDuration, typeByteSize:
			f := &field{key: key, env: envName(key), index: idx, typ: sf.Type, secret: sf.Type == typeSecret}
			s.fields = append(s.fields, f)
			s.byKey[key] = f
			s.byEnv[f.env] = f
		default:
			if sf.Type.Kind() != reflect.Struct {
				panic(fmt.Sprintf("config: key %s has unsupported type %s", key, sf.Type))
			}
			s.sections[key] = true
			s.walk(sf.Type, p, idx)
		}
	}
}

// envName maps "neo4j.password" to "RAGSTREAM_NEO4J__PASSWORD".
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// Keys returns every leaf key of Config in declaration order
// ("kafka.brokers", …, "dev.redis_addr").
func Keys() []string {
	out := make([]string, len(schema.fields))
	for i, f := range schema.fields {
		out[i] = f.key
	}
	return out
}

// EnvVar returns the environment variable of key
// ("neo4j.password" → "RAGSTREAM_NEO4J__PASSWORD"), or "" for an unknown key.
func EnvVar(key string) string {
	if f, ok := schema.byKey[key]; ok {
		return f.env
	}
	return ""
}

// SecretKeys returns the keys whose values are secrets, in declaration order.
func SecretKeys() []string {
	var out []string
	for _, f := range schema.fields {
		if f.secret {
			out = append(out, f.key)
		}
	}
	return out
}

// isPath reports whether f names a file (the *_file keys). A relative
// path in the YAML file is relative to the file's directory, as a
// certificate kept beside the config expects.
func (f *field) isPath() bool {
	return f.typ == typeString && strings.HasSuffix(f.key, "_file")
}

// value returns f's field in c.
func (f *field) value(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

// fromString converts an environment or --set value to f's type. Lists
// are comma-separated, with blanks around items trimmed and empty items
// dropped, so "" is the empty list.
func (f *field) fromString(s string) (any, error) {
	switch f.typ {
	case typeString:
		return s, nil
	case typeSecret:
		return Secret(s), nil
	case typeStrings:
		return splitList(s), nil
	case typeBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		return b, nil
	case typeInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, strconv.IntSize)
		if err != nil {
			return nil, fmt.Errorf("invalid integer %q", s)
		}
		return int(n), nil
	case typeDuration:
		return ParseDuration(s)
	case typeByteSize:
		return ParseByteSize(s)
	}
	panic("config: unreachable type " + f.typ.String())
}

func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// fromYAML converts a value parsed from YAML to f's type. A YAML null is
// the empty string or empty list for text keys and an error for the
// others. The value of a secret is never echoed in a message.
func (f *field) fromYAML(v any) (any, error) {
	if v == nil {
		switch f.typ {
		case typeString, typeSecret, typeStrings:
			return reflect.Zero(f.typ).Interface(), nil
		}
		return nil, fmt.Errorf("missing value (want %s)", f.want())
	}
	if s, ok := v.(string); ok {
		return f.fromString(s)
	}
	switch f.typ {
	case typeStrings:
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("expected a list of strings, got %s", describe(v, f.secret))
		}
		out := make([]string, 0, len(items))
		for i, item := range items {
			s, ok := item.(string)
			if !ok {
				return nil, &itemError{index: i, msg: fmt.Sprintf("expected a string, got %s (quote it)", describe(item, f.secret))}
			}
			out = append(out, s)
		}
		return out, nil
	case typeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case typeInt:
		if n, ok := toInt(v); ok {
			return n, nil
		}
		if _, isFloat := v.(float64); isFloat {
			return nil, fmt.Errorf("invalid integer %v", v)
		}
	case typeDuration:
		if n, ok := toInt(v); ok && n == 0 {
			return Duration(0), nil
		}
		if _, ok := toInt(v); ok {
			return nil, fmt.Errorf("invalid duration %v: missing unit (e.g. \"%vs\")", v, v)
		}
	case typeByteSize:
		if n, ok := toInt(v); ok {
			if n < 0 {
				return nil, fmt.Errorf("invalid size %d: negative", n)
			}
			return ByteSize(n), nil
		}
	}
	msg := fmt.Sprintf("expected %s, got %s", f.want(), describe(v, f.secret))
	if (f.typ == typeString || f.typ == typeSecret) && isScalar(v) {
		msg += " (quote it)"
	}
	return nil, errors.New(msg)
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// itemError is a problem with one item of a list, reported under
// "key[index]".
type itemError struct {
	index int
	msg   string
}

func (e *itemError) Error() string { return e.msg }

// problemKey is the key under which err, returned for key, is reported.
func problemKey(key string, err error) string {
	var ie *itemError
	if errors.As(err, &ie) {
		return fmt.Sprintf("%s[%d]", key, ie.index)
	}
	return key
}

// toInt accepts the integer types a YAML parser produces, and floats that
// are whole numbers (1e3).
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		if n >= math.MinInt && n <= math.MaxInt {
			return int(n), true
		}
	case uint64:
		if n <= math.MaxInt {
			return int(n), true
		}
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt && n <= math.MaxInt {
			return int(n), true
		}
	}
	return 0, false
}

// want names f's type for messages.
func (f *field) want() string {
	switch f.typ {
	case typeStrings:
		return "a list of strings"
	case typeBool:
		return "a boolean"
	case typeInt:
		return "an integer"
	case typeDuration:
		return "a duration"
	case typeByteSize:
		return "a size"
	}
	return "a string"
}

// describe names the kind of a YAML value, with the value unless hidden.
func describe(v any, hide bool) string {
	var kind string
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool:
		kind = "boolean"
	case int, int64, uint64:
		kind = "integer"
	case float64:
		kind = "number"
	case string:
		kind = "string"
	default:
		kind = fmt.Sprintf("%T", v)
	}
	if hide {
		return kind
	}
	return fmt.Sprintf("%s %v", kind, v)
}
