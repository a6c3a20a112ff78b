// Package testenv tells integration tests where the real services are.
//
// scripts/services.sh up (make up) starts Apache Kafka, Neo4j and Redis on
// 127.0.0.1 and writes their addresses to .services/env; make test sources it.
// A test asks for an address here and gets it, or, when the variable is unset,
// is skipped on a developer's machine and fails under CI=true: in CI a missing
// service is a broken pipeline, never a reason to pass quietly.
package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// Environment variables written to .services/env by scripts/services.sh up.
const (
	// KafkaBrokersVar holds comma-separated host:port seed brokers.
	KafkaBrokersVar = "RAGSTREAM_TEST_KAFKA_BROKERS"
	// Neo4jURIVar holds the Bolt URI of the shared Neo4j (auth disabled).
	Neo4jURIVar = "RAGSTREAM_TEST_NEO4J_URI"
	// RedisAddrVar holds the host:port of the shared Redis.
	RedisAddrVar = "RAGSTREAM_TEST_REDIS_ADDR"
)

// hint tells a reader how to get the services.
const hint = "start the services with `make up` and `source .services/env`, or run `make test`"

// CI reports whether the tests run under CI (CI=true or another true value
// strconv.ParseBool accepts), where a missing service fails the test.
func CI() bool {
	ci, err := strconv.ParseBool(strings.TrimSpace(os.Getenv("CI")))
	return err == nil && ci
}

// Unavailable stops the test because a service it needs is not there: with
// t.Fatalf under CI, otherwise with t.Skipf. why says what is missing; the
// message adds how to start the services.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s: %s (CI=true: a missing service fails the test)", why, hint)
		return
	}
	t.Skipf("%s: %s", why, hint)
}

// Addr returns the value of envVar, a service address set by
// scripts/services.sh. When it is unset or empty the test fails under
// CI=true and is skipped otherwise, with a message naming envVar and make up.
func Addr(t testing.TB, envVar string) string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(envVar)); v != "" {
		return v
	}
	Unavailable(t, envVar+" is not set")
	return ""
}

// KafkaBrokers returns the seed brokers of the test Kafka cluster from
// RAGSTREAM_TEST_KAFKA_BROKERS.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	raw := Addr(t, KafkaBrokersVar)
	var brokers []string
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 && raw != "" {
		t.Fatalf("%s=%q lists no broker", KafkaBrokersVar, raw)
	}
	return brokers
}

// Neo4jURI returns the Bolt URI of the shared test Neo4j from
// RAGSTREAM_TEST_NEO4J_URI. It runs with authentication disabled.
func Neo4jURI(t testing.TB) string {
	t.Helper()
	return Addr(t, Neo4jURIVar)
}

// RedisAddr returns the host:port of the test Redis from
// RAGSTREAM_TEST_REDIS_ADDR.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return Addr(t, RedisAddrVar)
}
