package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixtures is where the *.good.yaml and *.bad.yaml files live.
const fixtures = "../testdata/config"

// badFixtures lists every message each bad file must produce, all in one
// error. Every *.bad.yaml needs an entry, and every entry a file.
var badFixtures = map[string][]string{
	"unknown-keys.bad.yaml": {
		`kafka.broker: unknown key (did you mean kafka.brokers?)`,
		`kafka.tls: expected a mapping of keys, got boolean true`,
		`metrics.enabled: unknown key`,
		`neo4j.pasword: unknown key (did you mean neo4j.password?)`,
		`neo4j.uri: expected a string, got a mapping`,
		`qdrant.colection: unknown key (did you mean qdrant.collection?)`,
	},
	"types.bad.yaml": {
		`event.max_text_bytes: invalid size "1.5B": not a whole number of bytes`,
		`kafka.brokers: expected a list of strings, got integer 9092`,
		`kafka.fetch_max_bytes: invalid size "8XB": want e.g. 512KiB, 8MiB or 1048576`,
		`kafka.session_timeout: invalid duration 5: missing unit (e.g. "5s")`,
		`neo4j.password: expected a string, got integer (quote it)`,
		`neo4j.timeout: invalid duration "2 weeks": want e.g. 500ms, 10s, 1h30m or 7d`,
		`pipeline.batch.max_records: invalid integer 10.5`,
		`qdrant.store_text: invalid boolean "maybe" (want true or false)`,
		`qdrant.vector_size: invalid integer "abc"`,
	},
	"kafka.bad.yaml": {
		`kafka.brokers[0]: invalid address "127.0.0.1" (want host:port)`,
		`kafka.brokers[1]: invalid port "port" in "kafka:port"`,
		`kafka.brokers[2]: missing host in ":9092"`,
		`kafka.topics[1]: invalid topic name "bad topic" (letters, digits, '.', '_' and '-' only)`,
		`kafka.topics[2]: duplicate topic "events"`,
		`kafka.topics[3]: invalid topic name ".."`,
		`kafka.group: must not be empty`,
		`kafka.start_offset: unsupported value "newest" (want earliest or latest)`,
		`kafka.isolation: unsupported value "committed" (want read_committed or read_uncommitted)`,
		`kafka.session_timeout: must be positive, got 0s`,
		`kafka.tls.ca_file: set but kafka.tls.enabled is false`,
		`kafka.sasl.mechanism: unsupported value "SCRAM-SHA-1" (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)`,
	},
	"sasl.bad.yaml": {
		`kafka.tls.ca_file: open ../testdata/config/tls/missing-ca.pem: no such file or directory`,
		`kafka.tls.key_file: required when kafka.tls.cert_file is set`,
		`kafka.sasl.user: required with kafka.sasl.mechanism SCRAM-SHA-256`,
		`kafka.sasl.password: required with kafka.sasl.mechanism SCRAM-SHA-256`,
		`redis.addr: must not be empty (want host:port)`,
		`redis.db: must be at least 0, got -1`,
	},
	"neo4j.bad.yaml": {
		`neo4j.uri: unsupported scheme "http" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`,
		`neo4j.password: set but neo4j.user is empty`,
		`neo4j.database: invalid name "my_db" (3 to 63 letters, digits, dots and dashes, starting with a letter)`,
		`neo4j.timeout: must be positive, got 0s`,
		`neo4j.max_connection_pool_size: must be at least 1, got 0`,
	},
	"neo4j-uri.bad.yaml": {
		`neo4j.uri: credentials in the URI are not used; set neo4j.user and neo4j.password`,
		`neo4j.uri: unexpected fragment #frag`,
		`neo4j.uri: missing host`,
		`neo4j.uri: invalid port "99999"`,
		`neo4j.uri: unexpected path "/db" (choose the database with neo4j.database)`,
		`neo4j.uri: a routing context (the query) needs a neo4j scheme, not bolt`,
	},
	"qdrant.bad.yaml": {
		`qdrant.addr: invalid address "qdrant" (want host:port)`,
		`qdrant.collection: invalid collection name "team/chunks" (no < > : " / \ | ? *)`,
		`qdrant.vector_size: must be between 1 and 65536, got 70000`,
		`qdrant.distance: unsupported value "cosine" (want Cosine, Dot, Euclid or Manhattan)`,
		`qdrant.tls.ca_file: open ../testdata/config/tls/nope.pem: no such file or directory`,
		`qdrant.timeout: must be positive, got -1s`,
	},
	"pipeline.bad.yaml": {
		`admin.addr: invalid address "localhost" (want host:port)`,
		`admin.shutdown_timeout: must be positive, got 0s`,
		`admin.max_body_bytes: must be at least 1, got 0`,
		`dlq.topic: "events" is also a source topic in kafka.topics`,
		`dlq.max_replay_count: must be at least 0, got -1`,
		`log.level: unsupported value "verbose" (want trace, debug, info, warn or error)`,
		`pipeline.batch.max_records: must be at least 1, got 0`,
		`pipeline.batch.max_bytes: must be at least 1, got 0`,
		`pipeline.batch.linger: must not be negative, got -5ms`,
		`pipeline.max_inflight_batches: must be at least 1, got 0`,
		`pipeline.max_active_batches: must be at least 0, got -1`,
		`pipeline.tombstone_sweep_interval: must not exceed pipeline.tombstone_retention (1h), got 2h`,
		`pipeline.retry.max_attempts: must be at least 1, got 0`,
		`pipeline.retry.max_backoff: must be at least pipeline.retry.initial_backoff (10s), got 1s`,
		`pipeline.breaker.failure_threshold: must be at least 1, got 0`,
		`event.max_entities: must be at least 0, got -1`,
	},
	"secrets.bad.yaml": {
		`qdrant.api_key_file: open ../testdata/config/secrets/does-not-exist: no such file or directory`,
		`neo4j.password: set together with neo4j.password_file; set only one`,
		`redis.password_file: file "../testdata/config/secrets/empty" is empty`,
	},
	"syntax.bad.yaml": {
		`config file: ../testdata/config/syntax.bad.yaml: yaml: line 1: did not find expected ',' or ']'`,
	},
}

func TestBadFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for name := range badFixtures {
		if !slices.Contains(names, name) {
			t.Errorf("badFixtures lists %s, which is not in %s", name, fixtures)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := badFixtures[name]
			if !ok {
				t.Fatalf("%s has no entry in badFixtures", name)
			}
			c, _, err := Load(LoadOptions{File: filepath.Join(fixtures, name)})
			if err == nil {
				t.Fatalf("Load succeeded; want %d problems", len(want))
			}
			if c != nil {
				t.Errorf("Load returned a config along with its error")
			}
			if !IsConfigError(err) {
				t.Errorf("error %T is not a config error", err)
			}
			got := strings.Split(err.Error(), "\n")
			assertSameLines(t, got, want)
		})
	}
}

// assertSameLines reports lines missing from got and lines not wanted.
func assertSameLines(t *testing.T, got, want []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing problem:\n\t%s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("unexpected problem:\n\t%s", g)
		}
	}
}

func TestGoodFixtures(t *testing.T) {
	tests := map[string]struct {
		warnings []string
		check    func(t *testing.T, c *Config)
	}{
		"empty.good.yaml": {check: func(t *testing.T, c *Config) {
			want := Default()
			assertEqualConfig(t, c, &want)
		}},
		"minimal.good.yaml": {check: func(t *testing.T, c *Config) {
			want := Default()
			want.Kafka.Topics = []string{"orders"}
			assertEqualConfig(t, c, &want)
		}},
		"full.good.yaml": {check: func(t *testing.T, c *Config) {
			eq(t, "kafka.brokers", c.Kafka.Brokers, []string{"kafka-0.kafka:9093", "kafka-1.kafka:9093", "kafka-2.kafka:9093"})
			eq(t, "kafka.rebalance_timeout", c.Kafka.RebalanceTimeout.Duration(), 2*time.Minute)
			eq(t, "kafka.fetch_max_bytes", c.Kafka.FetchMaxBytes, 64*MiB)
			eq(t, "kafka.tls.ca_file", c.Kafka.TLS.CAFile, filepath.Join(fixtures, "tls/ca.pem"))
			eq(t, "kafka.sasl.mechanism", c.Kafka.SASL.Mechanism, SASLScramSHA512)
			eq(t, "kafka.sasl.password", c.Kafka.SASL.Password.Reveal(), "kafka-test-password")
			eq(t, "qdrant.api_key", c.Qdrant.APIKey.Reveal(), "qdrant-test-key")
			eq(t, "qdrant.store_text", c.Qdrant.StoreText, false)
			eq(t, "neo4j.uri", c.Neo4j.URI, "neo4j+s://neo4j.example.com:7687")
			eq(t, "neo4j.password", c.Neo4j.Password.Reveal(), "neo4j-test-password") // "\r\n" dropped
			eq(t, "admin.addr", c.Admin.Addr, ":8080")
			eq(t, "pipeline.tombstone_retention", c.Pipeline.TombstoneRetention.Duration(), 14*24*time.Hour)
			eq(t, "pipeline.retry.max_elapsed", c.Pipeline.Retry.MaxElapsed.Duration(), time.Minute)
			eq(t, "event.max_text_bytes", c.Event.MaxTextBytes, 512*KiB)
			eq(t, "event.max_id_bytes (default)", c.Event.MaxIDBytes, ByteSize(512))
		}},
		"units.good.yaml": {check: func(t *testing.T, c *Config) {
			eq(t, "kafka.brokers", c.Kafka.Brokers, []string{"127.0.0.1:9092", "127.0.0.1:9093"})
			eq(t, "kafka.fetch_max_bytes", c.Kafka.FetchMaxBytes, ByteSize(1048576))
			eq(t, "kafka.session_timeout", c.Kafka.SessionTimeout.Duration(), 90*time.Second)
			eq(t, "pipeline.batch.max_bytes", c.Pipeline.Batch.MaxBytes, ByteSize(512000))
			eq(t, "pipeline.batch.linger", c.Pipeline.Batch.Linger, Duration(0))
			eq(t, "pipeline.tombstone_retention", c.Pipeline.TombstoneRetention.Duration(), 36*time.Hour)
			eq(t, "event.max_text_bytes", c.Event.MaxTextBytes, ByteSize(1572864))
			eq(t, "event.max_string_bytes", c.Event.MaxStringBytes, ByteSize(2048))
		}},
		"neo4j-routing.good.yaml": {
			warnings: []string{
				"kafka.sasl.password is written in the config file ../testdata/config/neo4j-routing.good.yaml; prefer RAGSTREAM_KAFKA__SASL__PASSWORD or kafka.sasl.password_file",
				"neo4j.password is written in the config file ../testdata/config/neo4j-routing.good.yaml; prefer RAGSTREAM_NEO4J__PASSWORD or neo4j.password_file",
				"kafka.sasl.mechanism PLAIN without kafka.tls.enabled sends the password in clear text",
				"neo4j.uri scheme neo4j+ssc accepts any server certificate",
			},
			check: func(t *testing.T, c *Config) {
				eq(t, "neo4j.database", c.Neo4j.Database, "")
				eq(t, "neo4j.password", c.Neo4j.Password.Reveal(), "neo4j-inline")
			},
		},
	}
	files, err := filepath.Glob(filepath.Join(fixtures, "*.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d good fixtures on disk, %d in the table", len(files), len(tests))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			tc, ok := tests[name]
			if !ok {
				t.Fatalf("%s has no entry in the table", name)
			}
			c, warnings, err := Load(LoadOptions{File: f})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			assertSameLines(t, warnings, tc.warnings)
			tc.check(t, c)
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
