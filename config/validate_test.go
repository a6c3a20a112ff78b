package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestNeo4jURI(t *testing.T) {
	good := []string{
		"bolt://127.0.0.1:7687",
		"bolt://db.example.com",
		"bolt://[::1]:7687",
		"bolt+s://db.example.com:7687",
		"bolt+ssc://db.example.com",
		"neo4j://db.example.com/",
		"neo4j+s://db.example.com?policy=eu&region=west",
		"neo4j+ssc://10.0.0.5:7687",
		"bolt+unix:///var/run/neo4j/bolt.sock",
	}
	for _, uri := range good {
		t.Run(uri, func(t *testing.T) {
			var ps problems
			neo4jURI(&ps, "neo4j.uri", uri)
			if len(ps) > 0 {
				t.Errorf("rejected: %v", ps.err())
			}
		})
	}
	bad := []struct{ uri, want string }{
		{"http://127.0.0.1:7474", `neo4j.uri: unsupported scheme "http" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`},
		{"https://db.example.com", `neo4j.uri: unsupported scheme "https" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`},
		{"BOLT+x://db", `neo4j.uri: unsupported scheme "bolt+x" (want bolt, bolt+s, bolt+ssc, neo4j, neo4j+s, neo4j+ssc, bolt+unix)`},
		{"", "neo4j.uri: must not be empty (want e.g. bolt://127.0.0.1:7687)"},
		{"127.0.0.1:7687", "neo4j.uri: missing scheme (want e.g. bolt://127.0.0.1:7687)"},
		{"bolt://", "neo4j.uri: missing host"},
		{"bolt://db:0", `neo4j.uri: invalid port "0"`},
		{"bolt+unix://host/sock", "neo4j.uri: bolt+unix takes a socket path and no host (bolt+unix:///path/to/socket)"},
		{"bolt+unix://", "neo4j.uri: bolt+unix needs a socket path (bolt+unix:///path/to/socket)"},
		{"bolt+s://db?policy=eu", "neo4j.uri: a routing context (the query) needs a neo4j scheme, not bolt+s"},
		{"neo4j://db?address=x", `neo4j.uri: routing context key "address" is reserved`},
		{"neo4j://db?a=1&a=2", `neo4j.uri: duplicate routing context key "a"`},
		{"neo4j://db?a=", `neo4j.uri: empty value for routing context key "a"`},
		{"neo4j://db:7687/neo4j", `neo4j.uri: unexpected path "/neo4j" (choose the database with neo4j.database)`},
		{"bolt://db:7687 x", `neo4j.uri: invalid URI: invalid port ":7687 x" after host`},
	}
	for _, tc := range bad {
		t.Run(tc.uri, func(t *testing.T) {
			var ps problems
			neo4jURI(&ps, "neo4j.uri", tc.uri)
			if len(ps) != 1 || ps[0].Error() != tc.want {
				t.Errorf("got %v\nwant %s", ps.err(), tc.want)
			}
		})
	}
	// A password in the URI is refused and never echoed.
	var ps problems
	neo4jURI(&ps, "neo4j.uri", "bolt://neo4j:hunter2@db.example.com:7687")
	if err := ps.err(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("credentials in URI: got %v", err)
	}
}

// TestValidate applies one change to a valid config and expects exactly
// these problems: the checks the fixtures do not already show.
func TestValidate(t *testing.T) {
	ca := filepath.Join(fixtures, "tls/ca.pem")
	long := strings.Repeat("t", 247)
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"no brokers or topics", func(c *Config) { c.Kafka.Brokers, c.Kafka.Topics = nil, []string{} }, []string{
			"kafka.brokers: must not be empty",
			"kafka.topics: must not be empty",
		}},
		{"topic too long for its DLQ", func(c *Config) { c.Kafka.Topics = []string{long} }, []string{
			`kafka.topics[0]: too long to derive its dead-letter topic ("` + long + `" + ".dlq" exceeds 249 characters); set dlq.topic`,
		}},
		{"topic too long for its DLQ, dlq.topic set", func(c *Config) { c.Kafka.Topics = []string{long}; c.DLQ.Topic = "dead" }, nil},
		{"invalid dlq topic", func(c *Config) { c.DLQ.Topic = "dead letters" }, []string{
			`dlq.topic: invalid topic name "dead letters" (letters, digits, '.', '_' and '-' only)`,
		}},
		{"TLS settings while TLS is off", func(c *Config) {
			c.Kafka.TLS.ServerName = "kafka"
			c.Qdrant.TLS.CAFile = ca
		}, []string{
			"kafka.tls.enabled: false, but other kafka.tls settings are given",
			"qdrant.tls.ca_file: set but qdrant.tls.enabled is false",
		}},
		{"key without certificate", func(c *Config) {
			c.Kafka.TLS = KafkaTLS{Enabled: true, KeyFile: filepath.Join(fixtures, "tls/client-key.pem")}
		}, []string{"kafka.tls.cert_file: required when kafka.tls.key_file is set"}},
		{"SASL credentials without mechanism", func(c *Config) {
			c.Kafka.SASL.User, c.Kafka.SASL.Password = "u", "p"
		}, []string{
			"kafka.sasl.user: set but kafka.sasl.mechanism is empty",
			"kafka.sasl.password: set but kafka.sasl.mechanism is empty",
		}},
		{"SASL PLAIN complete", func(c *Config) {
			c.Kafka.SASL = KafkaSASL{Mechanism: SASLPlain, User: "u", Password: "p"}
		}, nil},
		{"qdrant bounds", func(c *Config) {
			c.Qdrant.VectorSize = 0
			c.Qdrant.Collection = strings.Repeat("c", 256)
			c.Qdrant.Addr = "qdrant:0"
		}, []string{
			`qdrant.addr: invalid port "0" in "qdrant:0"`,
			"qdrant.collection: longer than 255 characters",
			"qdrant.vector_size: must be between 1 and 65536, got 0",
		}},
		{"fetch size beyond int32", func(c *Config) { c.Kafka.FetchMaxBytes = 2 * GiB }, []string{
			"kafka.fetch_max_bytes: must be at most 2147483647 (the protocol's int32), got 2147483648",
		}},
		{"partition fetch beyond the fetch", func(c *Config) { c.Kafka.FetchMaxBytes, c.Kafka.FetchMaxPartitionBytes = MiB, 2*MiB }, []string{
			"kafka.fetch_max_partition_bytes: must be at most kafka.fetch_max_bytes (1MiB), got 2MiB",
		}},
		{"qdrant largest vector", func(c *Config) { c.Qdrant.VectorSize = 65536 }, nil},
		{"listen addresses", func(c *Config) { c.Admin.Addr = ":0" }, nil},
		{"dial address needs a host", func(c *Config) { c.Redis.Addr = ":6379" }, []string{
			`redis.addr: missing host in ":6379"`,
		}},
		{"empty neo4j database is the home database", func(c *Config) { c.Neo4j.Database = "" }, nil},
		{"ipv6 broker", func(c *Config) { c.Kafka.Brokers = []string{"[::1]:9092"} }, nil},
		{"durations", func(c *Config) {
			c.Kafka.RebalanceTimeout = 0
			c.Pipeline.DrainTimeout = -1
			c.Pipeline.Batch.Linger = 0
			c.DLQ.ProduceTimeout = 0
			c.Pipeline.LagRefresh = 0
		}, []string{
			"kafka.rebalance_timeout: must be positive, got 0s",
			"dlq.produce_timeout: must be positive, got 0s",
			"pipeline.drain_timeout: must be positive, got -1ns",
			"pipeline.lag_refresh: must be positive, got 0s",
		}},
		{"event limits", func(c *Config) {
			c.Event.MaxIDBytes = 0
			c.Event.MaxEntities = 0
		}, []string{"event.max_id_bytes: must be at least 1, got 0"}},
		{"dev keys ignored outside dev mode", func(c *Config) { c.Dev.KafkaListen = "" }, nil},
		{"dev keys checked in dev mode", func(c *Config) {
			c.DevMode = true
			c.Dev.KafkaListen = ""
			c.Dev.RedisAddr = "redis"
		}, []string{
			"dev.kafka_listen: must not be empty (want host:port)",
			`dev.redis_addr: invalid address "redis" (want host:port)`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed; want %q", tc.want)
			}
			assertSameLines(t, strings.Split(err.Error(), "\n"), tc.want)
		})
	}
}

func TestErrorType(t *testing.T) {
	c := Default()
	c.Kafka.Group = ""
	c.Qdrant.TLS = QdrantTLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	err := c.Validate()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Validate error %T is not *Error", err)
	}
	keys := []string{}
	for _, p := range ce.Problems {
		keys = append(keys, p.Key)
	}
	eq(t, "keys", keys, []string{"kafka.group", "qdrant.tls.ca_file"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA file: %v does not wrap fs.ErrNotExist", err)
	}
	var p Problem
	if !errors.As(err, &p) || p.Key != "kafka.group" {
		t.Errorf("errors.As(Problem) = %+v", p)
	}
	if !IsConfigError(err) || IsConfigError(errors.New("x")) {
		t.Error("IsConfigError")
	}
}
