package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	"github.com/ragstream/ragstream/config"
)

// lines parses buf as JSON lines, failing the test on any line that is not a
// JSON object.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// install sets up the process-wide logger for one test and undoes it after.
func install(t *testing.T, level string) (*bytes.Buffer, zerolog.Logger) {
	t.Helper()
	var buf bytes.Buffer
	l, err := New(&buf, level, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(Install(l))
	return &buf, l
}

func TestEveryLineIsJSONWithTheRequiredFields(t *testing.T) {
	buf, l := install(t, "debug")

	l.Info().Msg("from zerolog")
	l.Debug().Str("k", "v").Msg("debug from zerolog")
	slog.Warn("API key is being used without TLS", "component_hint", "qdrant")
	slog.Info("multi\nline message", slog.Group("g", "a", 1))
	log.Printf("from the standard library: %d", 42)
	log.Print("ends with a newline\n")
	zlog.Error().Err(fmt.Errorf("boom")).Msg("from zerolog/log")
	zerolog.Ctx(context.Background()).Info().Msg("from zerolog.Ctx without a logger")
	StdLogger(l, zerolog.WarnLevel, "http").Printf("http: TLS handshake error from 1.2.3.4")

	got := lines(t, buf)
	if len(got) != 9 {
		t.Fatalf("got %d lines, want 9:\n%s", len(got), buf)
	}
	wantMsgs := []string{
		"from zerolog", "debug from zerolog", "API key is being used without TLS",
		"multi\nline message", "from the standard library: 42", "ends with a newline",
		"from zerolog/log", "from zerolog.Ctx without a logger", "http: TLS handshake error from 1.2.3.4",
	}
	wantLevels := []string{"info", "debug", "warn", "info", "info", "info", "error", "info", "warn"}
	for i, m := range got {
		for _, f := range []string{"ts", "level", "service", "version", "msg"} {
			if _, ok := m[f].(string); !ok {
				t.Errorf("line %d has no string field %q: %v", i, f, m)
			}
		}
		ts, _ := m["ts"].(string)
		parsed, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("line %d: ts %q is not RFC 3339 UTC: %v", i, ts, err)
		}
		if time.Since(parsed) > time.Minute || time.Since(parsed) < -time.Minute {
			t.Errorf("line %d: ts %q is not now", i, ts)
		}
		if m["service"] != "ragstream" || m["version"] != "1.2.3" {
			t.Errorf("line %d: service/version = %v/%v", i, m["service"], m["version"])
		}
		if m["msg"] != wantMsgs[i] {
			t.Errorf("line %d: msg = %q, want %q", i, m["msg"], wantMsgs[i])
		}
		if m["level"] != wantLevels[i] {
			t.Errorf("line %d: level = %q, want %q", i, m["level"], wantLevels[i])
		}
	}
	if got[2]["component"] != "slog" || got[4]["component"] != "stdlog" || got[8]["component"] != "http" {
		t.Errorf("component fields: slog=%v stdlog=%v http=%v", got[2]["component"], got[4]["component"], got[8]["component"])
	}
	if got[3]["g.a"] != float64(1) {
		t.Errorf("slog group attribute: %v", got[3])
	}
	if _, dup := got[2]["time"]; dup {
		t.Errorf("slog line carries a second timestamp: %v", got[2])
	}
}

func TestLevelFiltersEveryRoute(t *testing.T) {
	buf, l := install(t, "warn")
	l.Info().Msg("dropped")
	slog.Info("dropped")
	log.Print("dropped (std log is info)")
	l.Warn().Msg("kept")
	slog.Error("kept")
	got := lines(t, buf)
	if len(got) != 2 {
		t.Fatalf("got %d lines, want the 2 at warn or above:\n%s", len(got), buf)
	}
}

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want zerolog.Level
		err  string
	}{
		{"", zerolog.InfoLevel, ""},
		{"info", zerolog.InfoLevel, ""},
		{"DEBUG", zerolog.DebugLevel, ""},
		{"trace", zerolog.TraceLevel, ""},
		{"warn", zerolog.WarnLevel, ""},
		{"error", zerolog.ErrorLevel, ""},
		{"verbose", zerolog.NoLevel, `log.level: unknown level "verbose"`},
		{"fatal", zerolog.NoLevel, `log.level: unknown level "fatal"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if _, err := New(&bytes.Buffer{}, tc.in, "v"); err == nil {
					t.Fatal("New accepted a bad level")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLevel(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRecordAndCorrelationFields(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "info", "v")
	if err != nil {
		t.Fatal(err)
	}
	ref := RecordRef{Topic: "events", Partition: 3, Offset: 1234567890123, CorrelationID: "abc-123"}
	l.Warn().EmbedObject(ref).Msg("embedded")
	rl := ForRecord(l, ref)
	rl.Info().Msg("child")
	pl := ForPartition(l, "events", 3)
	pl.Info().Msg("partition")
	cl := WithCorrelation(l, "xyz")
	cl.Info().Msg("correlated")
	ul := WithCorrelation(l, "")
	ul.Info().Msg("uncorrelated")

	got := lines(t, &buf)
	if len(got) != 5 {
		t.Fatalf("got %d lines", len(got))
	}
	for i := 0; i < 2; i++ {
		m := got[i]
		if m["topic"] != "events" || m["partition"] != float64(3) || m["offset"] != float64(1234567890123) || m["correlation_id"] != "abc-123" {
			t.Errorf("line %d: %v", i, m)
		}
	}
	if got[2]["topic"] != "events" || got[2]["partition"] != float64(3) {
		t.Errorf("partition line: %v", got[2])
	}
	if got[3]["correlation_id"] != "xyz" {
		t.Errorf("correlated line: %v", got[3])
	}
	if _, ok := got[4]["correlation_id"]; ok {
		t.Errorf("empty correlation id was logged: %v", got[4])
	}
}

func TestCorrelationIDValidation(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"abc-123", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"events/3/17", false},
		{"a.b_c:d-E9", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"has space", false},
		{"new\nline", false},
		{"ünïcode", false},
		{`quote"`, false},
	} {
		if got := ValidCorrelationID(tc.id); got != tc.ok {
			t.Errorf("ValidCorrelationID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
	a, b := NewCorrelationID(), NewCorrelationID()
	if !ValidCorrelationID(a) || a == b {
		t.Errorf("NewCorrelationID: %q, %q", a, b)
	}
	ctx := WithCorrelationID(context.Background(), "abc-123")
	if CorrelationID(ctx) != "abc-123" || CorrelationID(context.Background()) != "" {
		t.Error("context round trip")
	}
}

// setSecrets gives every config.Secret field of v (a pointer to a struct) a
// distinct value and returns the values, so the test covers secrets added
// to config.Config later without being edited.
func setSecrets(t *testing.T, v reflect.Value, path string, out *[]string) {
	t.Helper()
	secretType := reflect.TypeFor[config.Secret]()
	switch v.Kind() {
	case reflect.Pointer:
		setSecrets(t, v.Elem(), path, out)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			setSecrets(t, v.Field(i), path+"."+f.Name, out)
		}
	default:
		if v.Type() == secretType {
			val := "S3CR3T" + strings.ReplaceAll(path, ".", "-")
			v.SetString(val)
			*out = append(*out, val)
		}
	}
}

func TestConfigSecretsNeverReachTheLog(t *testing.T) {
	buf, l := install(t, "debug")

	cfg := config.Default()
	var secrets []string
	setSecrets(t, reflect.ValueOf(&cfg), "cfg", &secrets)
	if len(secrets) < 4 {
		t.Fatalf("found only %d secrets in config.Config: %v", len(secrets), secrets)
	}

	l.Info().Object("config", &cfg).Msg("effective configuration")
	l.Info().Interface("config", cfg).Msg("as JSON")
	l.Info().Interface("config", cfg.Redacted()).Msg("redacted map")
	l.Info().Str("config", fmt.Sprintf("%+v", cfg)).Msg("formatted")
	l.Info().Stringer("password", cfg.Neo4j.Password).Msg("stringer")
	slog.Info("through slog", "password", cfg.Neo4j.Password, "config", cfg)
	slog.Info("slog group", slog.Group("qdrant", "api_key", cfg.Qdrant.APIKey))
	log.Printf("through log: %v %s %q %#v", cfg, cfg.Redis.Password, cfg.Kafka.SASL.Password, cfg.Qdrant.APIKey)

	out := buf.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q appears in the log", s)
		}
	}
	got := lines(t, buf)
	obj, _ := got[0]["config"].(map[string]any)
	if obj["neo4j.password"] != config.RedactedValue || obj["qdrant.api_key"] != config.RedactedValue {
		t.Errorf("config object does not show secrets as %q: neo4j.password=%v qdrant.api_key=%v",
			config.RedactedValue, obj["neo4j.password"], obj["qdrant.api_key"])
	}
	if obj["neo4j.uri"] != cfg.Neo4j.URI {
		t.Errorf("config object lost ordinary keys: neo4j.uri=%v", obj["neo4j.uri"])
	}
	if got[5]["password"] != config.RedactedValue {
		t.Errorf("slog secret shown as %v", got[5]["password"])
	}
}
