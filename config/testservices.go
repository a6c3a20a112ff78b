package config

import "strings"

// Environment variables through which tests find real services, set by the
// scripts that start them (DESIGN.md §10). They are not configuration: Load
// ignores every RAGSTREAM_TEST_* variable.
const (
	// EnvTestKafkaBrokers is a comma-separated list of Kafka host:port.
	EnvTestKafkaBrokers = envTestPrefix + "KAFKA_BROKERS"
	// EnvTestNeo4jURI is a Bolt URI of a Neo4j 5 server.
	EnvTestNeo4jURI = envTestPrefix + "NEO4J_URI"
	// EnvTestRedisAddr is a Redis host:port.
	EnvTestRedisAddr = envTestPrefix + "REDIS_ADDR"
	// EnvTestQdrantAddr is the gRPC host:port of a Qdrant server.
	EnvTestQdrantAddr = envTestPrefix + "QDRANT_ADDR"
)

// TestServices are the real services a test may use; an empty field means
// the service was not started. Under CI=true a test that needs a missing
// service must fail, not skip.
type TestServices struct {
	KafkaBrokers []string
	Neo4jURI     string
	RedisAddr    string
	QdrantAddr   string
}

// LookupTestServices reads the RAGSTREAM_TEST_* variables from environ (in
// os.Environ's form).
func LookupTestServices(environ []string) TestServices {
	var s TestServices
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case EnvTestKafkaBrokers:
			s.KafkaBrokers = splitList(value)
		case EnvTestNeo4jURI:
			s.Neo4jURI = strings.TrimSpace(value)
		case EnvTestRedisAddr:
			s.RedisAddr = strings.TrimSpace(value)
		case EnvTestQdrantAddr:
			s.QdrantAddr = strings.TrimSpace(value)
		}
	}
	return s
}
