package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// LoadOptions says where Load reads configuration from.
type LoadOptions struct {
	// File is a YAML file; empty means none.
	File string
	// Sets are "key=value" arguments of --set, applied in order after the
	// environment. Lists are comma-separated as in the environment.
	Sets []string
	// Environ is the environment in os.Environ's form. The binary passes
	// os.Environ(); nil means no environment (tests pass their own).
	Environ []string
	// Dev is true for `ragstream dev`; it becomes Config.DevMode.
	Dev bool
}

// Load builds the configuration from, lowest precedence first, Default(),
// the YAML file, the RAGSTREAM_* environment and --set; resolves secrets
// from their *_file keys; and validates the result.
//
// An unknown key in the file or --set, an unknown RAGSTREAM_* variable
// (other than RAGSTREAM_TEST_* and Kubernetes service links), a value of
// the wrong type, an unreadable secret file and every Validate problem are
// all reported together in one *Error, each naming its key.
//
// The warnings are for a person to read at start-up: a secret written into
// the file or given with --set, and settings that weaken security (TLS
// verification off, credentials sent in clear text). They never contain a
// secret.
func Load(o LoadOptions) (*Config, []string, error) {
	l := &loader{k: koanf.New(".")}
	def := Default()
	flat := make(map[string]any, len(schema.fields))
	for _, f := range schema.fields {
		flat[f.key] = f.value(&def).Interface()
	}
	l.merge(flat)
	if o.File != "" {
		l.loadFile(o.File)
	}
	l.loadEnv(o.Environ)
	l.loadSets(o.Sets)

	var c Config
	dc := &mapstructure.DecoderConfig{TagName: "koanf", ErrorUnused: true, Result: &c}
	if err := l.k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		// Every value was converted to its field's type above, so this
		// would be a bug here; still report it rather than start half
		// configured.
		l.probs.add("config", "decoding the merged configuration: %v", err)
	}
	c.DevMode = o.Dev
	l.resolveSecrets(&c)

	failed := map[string]bool{}
	for _, p := range l.probs {
		failed[baseKey(p.Key)] = true
	}
	for _, p := range c.check() {
		// A key whose value could not be read keeps its default, so a
		// problem Validate finds there is a consequence, not news.
		if !failed[baseKey(p.Key)] {
			l.probs = append(l.probs, p)
		}
	}
	warnings := append(l.warnings, c.warnings()...)
	if err := l.probs.err(); err != nil {
		return nil, warnings, err
	}
	return &c, warnings, nil
}

// baseKey strips a list index: "kafka.brokers[1]" → "kafka.brokers".
func baseKey(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		return key[:i]
	}
	return key
}

// loader merges the sources into one koanf instance, collecting problems.
type loader struct {
	k        *koanf.Koanf
	probs    problems
	warnings []string
}

// merge loads flat (dotted keys, values already of their field's type) over
// what is loaded so far.
func (l *loader) merge(flat map[string]any) {
	if len(flat) == 0 {
		return
	}
	if err := l.k.Load(confmap.Provider(flat, "."), nil); err != nil {
		l.probs.add("config", "merging settings: %v", err)
	}
}

func (l *loader) loadFile(path string) {
	b, err := file.Provider(path).ReadBytes()
	if err != nil {
		l.probs.addErr("config file", err)
		return
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		// One problem per line: fold the parser's multi-line messages.
		l.probs.add("config file", "%s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
		return
	}
	if len(raw) == 0 {
		return
	}
	fk := koanf.New(".")
	if err := fk.Load(confmap.Provider(raw, ""), nil); err != nil {
		l.probs.add("config file", "%s: %v", path, err)
		return
	}
	all := fk.All()
	out := map[string]any{}
	reported := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(all)) {
		v := all[key]
		f, ok := schema.byKey[key]
		if !ok {
			l.unknownFileKey(key, v, reported)
			continue
		}
		tv, err := f.fromYAML(v)
		if err != nil {
			l.probs.add(problemKey(key, err), "%v", err)
			continue
		}
		if p, ok := tv.(string); ok && f.isPath() && p != "" && !filepath.IsAbs(p) {
			tv = filepath.Join(filepath.Dir(path), p)
		}
		out[key] = tv
		if f.secret && tv != Secret("") {
			l.warnings = append(l.warnings, fmt.Sprintf(
				"%s is written in the config file %s; prefer %s or %s", key, path, f.env, f.file))
		}
	}
	l.merge(out)
}

// unknownFileKey reports a key of the file that is not a leaf of Config: an
// empty section is fine, a section or leaf with the wrong shape is named as
// such, anything else is an unknown key.
func (l *loader) unknownFileKey(key string, v any, reported map[string]bool) {
	if schema.sections[key] {
		if m, isMap := v.(map[string]any); v == nil || (isMap && len(m) == 0) {
			return
		}
		l.probs.add(key, "expected a mapping of keys, got %s", describe(v, false))
		return
	}
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i > 0; i-- {
		prefix := strings.Join(parts[:i], ".")
		if f, ok := schema.byKey[prefix]; ok {
			if !reported[prefix] {
				reported[prefix] = true
				l.probs.add(prefix, "expected %s, got a mapping", f.want())
			}
			return
		}
	}
	l.probs.add(key, "unknown key%s", didYouMean(suggestKey(key)))
}

func didYouMean(s string) string {
	if s == "" {
		return ""
	}
	return " (did you mean " + s + "?)"
}

func (l *loader) loadEnv(environ []string) {
	out := map[string]any{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(strings.ToUpper(name), EnvPrefix) || ignoredEnv(name, value) {
			continue
		}
		f, ok := schema.byEnv[name]
		if !ok {
			l.probs.add(name, "unknown variable%s", didYouMean(suggestEnv(name)))
			continue
		}
		tv, err := f.fromString(value)
		if err != nil {
			l.probs.add(f.key, "%v (from %s)", err, name)
			continue
		}
		out[f.key] = tv
	}
	l.merge(out)
}

func (l *loader) loadSets(sets []string) {
	out := map[string]any{}
	for _, s := range sets {
		key, value, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok:
			l.probs.add("--set "+key, "expected key=value")
			continue
		case key == "":
			l.probs.add("--set", "missing key before \"=\"")
			continue
		}
		f, ok := schema.byKey[key]
		if !ok {
			l.probs.add(key, "unknown key in --set%s", didYouMean(suggestKey(key)))
			continue
		}
		tv, err := f.fromString(value)
		if err != nil {
			l.probs.add(key, "%v (from --set)", err)
			continue
		}
		out[key] = tv
		if f.secret && value != "" {
			l.warnings = append(l.warnings, fmt.Sprintf(
				"%s is given with --set, where process listings and shell history show it; prefer %s or %s",
				key, f.env, f.file))
		}
	}
	l.merge(out)
}

// resolveSecrets reads each secret whose *_file key is set. The file's
// content without trailing line breaks is the secret; setting both the
// secret and its file is ambiguous, so it is a problem.
func (l *loader) resolveSecrets(c *Config) {
	for _, f := range schema.fields {
		if !f.secret {
			continue
		}
		path := schema.byKey[f.file].value(c).String()
		if path == "" {
			continue
		}
		if f.value(c).String() != "" {
			l.probs.add(f.key, "set together with %s; set only one", f.file)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			l.probs.addErr(f.file, err)
			continue
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			l.probs.add(f.file, "file %q is empty", path)
			continue
		}
		f.value(c).SetString(s)
	}
}
