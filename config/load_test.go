package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// writeFile writes content to name in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads o and fails the test on error.
func mustLoad(t *testing.T, o LoadOptions) (*Config, []string) {
	t.Helper()
	c, w, err := Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c, w
}

// loadErr loads o, expects it to fail, and returns the problem lines.
func loadErr(t *testing.T, o LoadOptions) []string {
	t.Helper()
	c, _, err := Load(o)
	if err == nil {
		t.Fatalf("Load succeeded: %+v", c)
	}
	return strings.Split(err.Error(), "\n")
}

// assertEqualConfig compares two configs key by key (secrets compared by
// value), naming each key that differs.
func assertEqualConfig(t *testing.T, got, want *Config) {
	t.Helper()
	for _, f := range schema.fields {
		g, w := f.value(got).Interface(), f.value(want).Interface()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %v, want %v", f.key, g, w)
		}
	}
	if got.DevMode != want.DevMode {
		t.Errorf("DevMode = %v, want %v", got.DevMode, want.DevMode)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "ragstream.yaml", `
qdrant: {vector_size: 512}
neo4j: {database: filedb}
kafka: {topics: [from-file]}
`)
	env := []string{"RAGSTREAM_QDRANT__VECTOR_SIZE=768", "RAGSTREAM_KAFKA__TOPICS=env-a,env-b", "PATH=/bin"}
	tests := []struct {
		name       string
		o          LoadOptions
		vectorSize int
		topics     []string
		database   string
	}{
		{"defaults", LoadOptions{}, 384, []string{"events"}, "neo4j"},
		{"file over defaults", LoadOptions{File: file}, 512, []string{"from-file"}, "filedb"},
		{"env over file", LoadOptions{File: file, Environ: env}, 768, []string{"env-a", "env-b"}, "filedb"},
		{"set over env", LoadOptions{File: file, Environ: env, Sets: []string{"qdrant.vector_size=1024"}},
			1024, []string{"env-a", "env-b"}, "filedb"},
		{"set over file", LoadOptions{File: file, Sets: []string{"neo4j.database=setdb"}}, 512, []string{"from-file"}, "setdb"},
		{"last set wins", LoadOptions{Sets: []string{"qdrant.vector_size=10", "qdrant.vector_size=20"}}, 20, []string{"events"}, "neo4j"},
		{"set list", LoadOptions{Environ: env, Sets: []string{"kafka.topics=x, y"}}, 768, []string{"x", "y"}, "neo4j"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.o)
			eq(t, "qdrant.vector_size", c.Qdrant.VectorSize, tc.vectorSize)
			eq(t, "kafka.topics", c.Kafka.Topics, tc.topics)
			eq(t, "neo4j.database", c.Neo4j.Database, tc.database)
		})
	}
}

func TestEnvLists(t *testing.T) {
	c, _ := mustLoad(t, LoadOptions{Environ: []string{"RAGSTREAM_KAFKA__BROKERS= a:1 , b:2,,c:3,"}})
	eq(t, "kafka.brokers", c.Kafka.Brokers, []string{"a:1", "b:2", "c:3"})

	// An empty variable sets the empty list, which Validate then refuses.
	got := loadErr(t, LoadOptions{Environ: []string{"RAGSTREAM_KAFKA__BROKERS="}})
	assertSameLines(t, got, []string{"kafka.brokers: must not be empty"})
}

// TestEveryKeyHasAnEnvVar sets every key through its variable, in the form
// .env.example shows, to a value different from its default where the type
// allows, and checks that each arrives.
func TestEveryKeyHasAnEnvVar(t *testing.T) {
	want := Default()
	want.Kafka.Brokers = []string{"k1:9092", "k2:9092"}
	want.Kafka.SASL.Mechanism = SASLScramSHA256
	want.Kafka.SASL.User = "u"
	want.Kafka.SASL.Password = "p"
	want.Qdrant.APIKey = "key"
	want.Qdrant.VectorSize = 3
	want.Qdrant.StoreText = false
	want.Neo4j.Password = "pw"
	want.Redis.Password = "rpw"
	want.Redis.DB = 7
	want.Pipeline.TombstoneRetention = Duration(2 * 24 * 3600e9)
	want.Pipeline.Batch.MaxBytes = 3 * MiB
	var environ []string
	for _, f := range schema.fields {
		environ = append(environ, f.env+"="+envValue(f, &want))
	}
	c, _ := mustLoad(t, LoadOptions{Environ: environ})
	assertEqualConfig(t, c, &want)
}

func TestUnknownEnv(t *testing.T) {
	tests := []struct{ env, want string }{
		{"RAGSTREAM_NEO4J_PASSWORD=hunter2", "RAGSTREAM_NEO4J_PASSWORD: unknown variable (did you mean RAGSTREAM_NEO4J__PASSWORD?)"},
		{"RAGSTREAM_QDRANT__VECTORSIZE=3", "RAGSTREAM_QDRANT__VECTORSIZE: unknown variable (did you mean RAGSTREAM_QDRANT__VECTOR_SIZE?)"},
		{"RAGSTREAM_PIPELINE_BATCH_MAX_RECORDS=3", "RAGSTREAM_PIPELINE_BATCH_MAX_RECORDS: unknown variable (did you mean RAGSTREAM_PIPELINE__BATCH__MAX_RECORDS?)"},
		{"RAGSTREAM_KAFKA__BROKER=a:1", "RAGSTREAM_KAFKA__BROKER: unknown variable (did you mean RAGSTREAM_KAFKA__BROKERS?)"},
		{"ragstream_log__level=debug", "ragstream_log__level: unknown variable (did you mean RAGSTREAM_LOG__LEVEL?)"},
		{"RAGSTREAM_WHATEVER=1", "RAGSTREAM_WHATEVER: unknown variable"},
		// Looks like a Kubernetes service link by name, not by value.
		{"RAGSTREAM_NEO4J_PORT=7687", "RAGSTREAM_NEO4J_PORT: unknown variable"},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			got := loadErr(t, LoadOptions{Environ: []string{tc.env}})
			assertSameLines(t, got, []string{tc.want})
		})
	}
}

func TestIgnoredEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"RAGSTREAM_TEST_KAFKA_BROKERS=127.0.0.1:19092",
		"RAGSTREAM_TEST_ANYTHING_AT_ALL=x",
		// A Service named ragstream.
		"RAGSTREAM_SERVICE_HOST=10.96.0.10",
		"RAGSTREAM_SERVICE_PORT=8080",
		"RAGSTREAM_SERVICE_PORT_HTTP=8080",
		"RAGSTREAM_PORT=tcp://10.96.0.10:8080",
		"RAGSTREAM_PORT_8080_TCP=tcp://10.96.0.10:8080",
		"RAGSTREAM_PORT_8080_TCP_PROTO=tcp",
		"RAGSTREAM_PORT_8080_TCP_PORT=8080",
		"RAGSTREAM_PORT_8080_TCP_ADDR=10.96.0.10",
		// A Service named ragstream-admin.
		"RAGSTREAM_ADMIN_SERVICE_HOST=10.96.0.11",
		"RAGSTREAM_ADMIN_SERVICE_PORT=8080",
		"RAGSTREAM_ADMIN_PORT=tcp://10.96.0.11:8080",
		"RAGSTREAM_ADMIN_PORT_8080_TCP=tcp://10.96.0.11:8080",
		"RAGSTREAM_ADMIN_PORT_8080_TCP_PROTO=tcp",
		"RAGSTREAM_ADMIN_PORT_8080_TCP_PORT=8080",
		"RAGSTREAM_ADMIN_PORT_8080_TCP_ADDR=10.96.0.11",
		"RAGSTREAM_LOG__LEVEL=debug",
	}
	c, _ := mustLoad(t, LoadOptions{Environ: environ})
	eq(t, "log.level", c.Log.Level, "debug")
}

func TestNoKeyLooksIgnored(t *testing.T) {
	for _, f := range schema.fields {
		if ignoredEnv(f.env, "10.0.0.1") || ignoredEnv(f.env, "tcp://10.0.0.1:80") || ignoredEnv(f.env, "80") {
			t.Errorf("%s (%s) would be ignored as not config", f.env, f.key)
		}
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct{ set, want string }{
		{"neo4j.uri", "--set neo4j.uri: expected key=value"},
		{"=x", "--set: missing key before \"=\""},
		{"neo4j.pasword=hunter2", "neo4j.pasword: unknown key in --set (did you mean neo4j.password?)"},
		{"qdrant.vector_size=big", `qdrant.vector_size: invalid integer "big" (from --set)`},
		{"admin.max_body_bytes=1XB", `admin.max_body_bytes: invalid size "1XB": want e.g. 512KiB, 8MiB or 1048576 (from --set)`},
	}
	for _, tc := range tests {
		t.Run(tc.set, func(t *testing.T) {
			got := loadErr(t, LoadOptions{Sets: []string{tc.set}})
			assertSameLines(t, got, []string{tc.want})
		})
	}
}

// TestProblemsReportedTogether puts a problem in every source and expects
// all of them in one error, and a key that could not be read reported once.
func TestProblemsReportedTogether(t *testing.T) {
	file := writeFile(t, "c.yaml", "kafka: {group: \"\"}\nlog: {levl: debug}\n")
	got := loadErr(t, LoadOptions{
		File:    file,
		Environ: []string{"RAGSTREAM_QDRANT__VECTOR_SIZE=abc", "RAGSTREAM_NEO4J__URI=http://x"},
		Sets:    []string{"pipeline.batch.max_records=0", "kafka.start_offset=oldest"},
	})
	assertSameLines(t, got, []string{
		`log.levl: unknown key (did you mean log.level?)`,
		`qdrant.vector_size: invalid integer "abc" (from RAGSTREAM_QDRANT__VECTOR_SIZE)`,
		`kafka.group: must not be empty`,
		`kafka.start_offset: unsupported value "oldest" (want earliest or latest)`,
		`neo4j.uri: unsupported scheme "http" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`,
		`pipeline.batch.max_records: must be at least 1, got 0`,
	})
}

func TestFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := Load(LoadOptions{File: missing})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v does not wrap fs.ErrNotExist", err)
	}
	assertSameLines(t, strings.Split(err.Error(), "\n"),
		[]string{"config file: open " + missing + ": no such file or directory"})

	list := writeFile(t, "list.yaml", "- a\n- b\n")
	got := loadErr(t, LoadOptions{File: list})
	if len(got) != 1 || !strings.HasPrefix(got[0], "config file: "+list+": yaml:") {
		t.Errorf("top-level list: got %q", got)
	}
}

func TestSecretFromFile(t *testing.T) {
	pw := writeFile(t, "pw", "s3cret-from-file\n\n")
	c, w := mustLoad(t, LoadOptions{Environ: []string{"RAGSTREAM_NEO4J__PASSWORD_FILE=" + pw}})
	eq(t, "neo4j.password", c.Neo4j.Password.Reveal(), "s3cret-from-file")
	eq(t, "warnings", len(w), 0)

	c, w = mustLoad(t, LoadOptions{Sets: []string{"kafka.sasl.password_file=" + pw, "kafka.sasl.mechanism=PLAIN",
		"kafka.sasl.user=u", "kafka.tls.enabled=true"}})
	eq(t, "kafka.sasl.password", c.Kafka.SASL.Password.Reveal(), "s3cret-from-file")
	eq(t, "warnings", len(w), 0)

	// A relative path in the YAML file is relative to the file.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-key"), []byte("k3y"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ragstream.yaml")
	if err := os.WriteFile(cfg, []byte("qdrant: {api_key_file: api-key}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ = mustLoad(t, LoadOptions{File: cfg})
	eq(t, "qdrant.api_key", c.Qdrant.APIKey.Reveal(), "k3y")
	eq(t, "qdrant.api_key_file", c.Qdrant.APIKeyFile, filepath.Join(dir, "api-key"))
}

func TestSecretFileProblems(t *testing.T) {
	pw := writeFile(t, "pw", "x\n")
	empty := writeFile(t, "empty", "\n")
	missing := filepath.Join(t.TempDir(), "missing")
	got := loadErr(t, LoadOptions{
		Environ: []string{
			"RAGSTREAM_NEO4J__PASSWORD=from-env",
			"RAGSTREAM_REDIS__PASSWORD_FILE=" + empty,
		},
		Sets: []string{"neo4j.password_file=" + pw, "qdrant.api_key_file=" + missing},
	})
	assertSameLines(t, got, []string{
		"qdrant.api_key_file: open " + missing + ": no such file or directory",
		"neo4j.password: set together with neo4j.password_file; set only one",
		`redis.password_file: file "` + empty + `" is empty`,
	})
}

func TestSecretWarnings(t *testing.T) {
	file := writeFile(t, "c.yaml", "neo4j: {password: in-file}\nredis: {password: \"\"}\n")
	tests := []struct {
		name string
		o    LoadOptions
		want []string
	}{
		{"env", LoadOptions{Environ: []string{"RAGSTREAM_NEO4J__PASSWORD=in-env"}}, nil},
		{"file", LoadOptions{File: file}, []string{
			"neo4j.password is written in the config file " + file + "; prefer RAGSTREAM_NEO4J__PASSWORD or neo4j.password_file",
		}},
		{"file overridden by env still warns", LoadOptions{File: file, Environ: []string{"RAGSTREAM_NEO4J__PASSWORD=in-env"}}, []string{
			"neo4j.password is written in the config file " + file + "; prefer RAGSTREAM_NEO4J__PASSWORD or neo4j.password_file",
		}},
		{"set", LoadOptions{Sets: []string{"qdrant.api_key=in-set"}}, []string{
			"qdrant.api_key is given with --set, where process listings and shell history show it; prefer RAGSTREAM_QDRANT__API_KEY or qdrant.api_key_file",
		}},
		{"empty set", LoadOptions{Sets: []string{"redis.password="}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, w := mustLoad(t, tc.o)
			assertSameLines(t, w, tc.want)
			for _, line := range w {
				for _, secret := range []string{"in-file", "in-env", "in-set"} {
					if strings.Contains(line, secret) {
						t.Errorf("warning shows the secret: %s", line)
					}
				}
			}
		})
	}
}

func TestSecurityWarnings(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want string
	}{
		{"kafka skip verify", []string{"kafka.tls.enabled=true", "kafka.tls.insecure_skip_verify=true"},
			"kafka.tls.insecure_skip_verify is on: the brokers' certificates are not verified"},
		{"qdrant skip verify", []string{"qdrant.tls.enabled=true", "qdrant.tls.insecure_skip_verify=true"},
			"qdrant.tls.insecure_skip_verify is on: Qdrant's certificate is not verified"},
		{"qdrant key in clear", []string{"qdrant.addr=qdrant.example.com:6334"},
			"qdrant.api_key is sent in clear text to qdrant.example.com: enable qdrant.tls"},
		{"qdrant REST port", []string{"qdrant.addr=127.0.0.1:6333"},
			"qdrant.addr port 6333 is Qdrant's REST port; ragstream speaks gRPC (port 6334 by default)"},
		{"neo4j password in clear", []string{"neo4j.uri=neo4j://db.example.com"},
			"neo4j.password is sent in clear text to db.example.com: use the neo4j+s scheme"},
		{"neo4j HTTP port", []string{"neo4j.uri=bolt://127.0.0.1:7474"},
			"neo4j.uri port 7474 is Neo4j's HTTP port; Bolt listens on 7687 by default"},
	}
	env := []string{"RAGSTREAM_QDRANT__API_KEY=k", "RAGSTREAM_NEO4J__PASSWORD=p"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, w := mustLoad(t, LoadOptions{Environ: env, Sets: tc.sets})
			if !slices.Contains(w, tc.want) {
				t.Errorf("warnings %q lack %q", w, tc.want)
			}
		})
	}
	// Loopback addresses carry no clear-text warning.
	_, w := mustLoad(t, LoadOptions{Environ: env})
	assertSameLines(t, w, nil)
}

func TestDevMode(t *testing.T) {
	sets := []string{"dev.kafka_listen=nowhere", "dev.neo4j_uri=http://x"}
	c, _ := mustLoad(t, LoadOptions{Sets: sets})
	eq(t, "DevMode", c.DevMode, false)

	got := loadErr(t, LoadOptions{Sets: sets, Dev: true})
	assertSameLines(t, got, []string{
		`dev.kafka_listen: invalid address "nowhere" (want host:port)`,
		`dev.neo4j_uri: unsupported scheme "http" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`,
	})

	c, _ = mustLoad(t, LoadOptions{Dev: true, Sets: []string{"dev.kafka_listen=127.0.0.1:0"}})
	eq(t, "DevMode", c.DevMode, true)
}

func TestTestServices(t *testing.T) {
	s := LookupTestServices([]string{
		"RAGSTREAM_TEST_KAFKA_BROKERS=127.0.0.1:19092, 127.0.0.1:19094",
		"RAGSTREAM_TEST_NEO4J_URI=bolt://127.0.0.1:17687",
		"RAGSTREAM_TEST_REDIS_ADDR=127.0.0.1:16379",
		"RAGSTREAM_TEST_QDRANT_ADDR=127.0.0.1:16334",
		"RAGSTREAM_NEO4J__URI=bolt://elsewhere:7687",
	})
	eq(t, "services", s, TestServices{
		KafkaBrokers: []string{"127.0.0.1:19092", "127.0.0.1:19094"},
		Neo4jURI:     "bolt://127.0.0.1:17687",
		RedisAddr:    "127.0.0.1:16379",
		QdrantAddr:   "127.0.0.1:16334",
	})
	eq(t, "none", LookupTestServices(nil), TestServices{})
}

func TestYAMLValues(t *testing.T) {
	tests := []struct {
		yaml  string
		check func(c *Config) bool
		err   string
	}{
		{yaml: "dlq: {topic: }", check: func(c *Config) bool { return c.DLQ.Topic == "" }},
		{yaml: "neo4j: {user: ~}", check: func(c *Config) bool { return c.Neo4j.User == "" }},
		{yaml: "kafka: ", check: func(c *Config) bool { return c.Kafka.Group == "ragstream" }},
		{yaml: "kafka: {}", check: func(c *Config) bool { return c.Kafka.Group == "ragstream" }},
		{yaml: "pipeline: {batch: {max_records: 1e3}}", check: func(c *Config) bool { return c.Pipeline.Batch.MaxRecords == 1000 }},
		{yaml: "qdrant: {vector_size: \"768\"}", check: func(c *Config) bool { return c.Qdrant.VectorSize == 768 }},
		{yaml: "qdrant: {store_text: \"false\"}", check: func(c *Config) bool { return !c.Qdrant.StoreText }},
		{yaml: "event: {max_id_bytes: 64}", check: func(c *Config) bool { return c.Event.MaxIDBytes == 64 }},
		{yaml: "pipeline: {batch: {linger: 0}}", check: func(c *Config) bool { return c.Pipeline.Batch.Linger == 0 }},
		{yaml: "qdrant: {vector_size: ~}", err: "qdrant.vector_size: missing value (want an integer)"},
		{yaml: "qdrant: {vector_size: [1]}", err: "qdrant.vector_size: expected an integer, got a list"},
		{yaml: "qdrant: {store_text: 1}", err: "qdrant.store_text: expected a boolean, got integer 1"},
		{yaml: "qdrant: {collection: 42}", err: "qdrant.collection: expected a string, got integer 42 (quote it)"},
		{yaml: "kafka: {topics: [a, 7]}", err: "kafka.topics[1]: expected a string, got integer 7 (quote it)"},
		{yaml: "kafka: {topics: {a: b}}", err: "kafka.topics: expected a list of strings, got a mapping"},
		{yaml: "event: {max_text_bytes: -3}", err: "event.max_text_bytes: invalid size -3: negative"},
		{yaml: "neo4j: {timeout: true}", err: "neo4j.timeout: expected a duration, got boolean true"},
		{yaml: "pipeline: {retry: {max_attempts: 2.5}}", err: "pipeline.retry.max_attempts: invalid integer 2.5"},
		{yaml: "log: debug", err: "log: expected a mapping of keys, got string debug"},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			file := writeFile(t, "c.yaml", tc.yaml+"\n")
			if tc.err != "" {
				assertSameLines(t, loadErr(t, LoadOptions{File: file}), []string{tc.err})
				return
			}
			c, _ := mustLoad(t, LoadOptions{File: file})
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}
