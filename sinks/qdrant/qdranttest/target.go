package qdranttest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/qdrant/go-client/qdrant"
)

// Environment variables that point tests at a real Qdrant instead of the
// stand-in.
const (
	// EnvAddr is the gRPC host:port of a real Qdrant (e.g. 127.0.0.1:6334).
	EnvAddr = "RAGSTREAM_TEST_QDRANT_ADDR"
	// EnvAPIKey is that Qdrant's API key, if it has one.
	EnvAPIKey = "RAGSTREAM_TEST_QDRANT_API_KEY"
)

// TargetInfo is the Qdrant a test talks to: a real server named by
// RAGSTREAM_TEST_QDRANT_ADDR, or a stand-in started for the test.
type TargetInfo struct {
	Host   string
	Port   int
	APIKey string
	// Real is true for a server named by RAGSTREAM_TEST_QDRANT_ADDR.
	Real bool
}

// Addr is the target's host:port.
func (ti TargetInfo) Addr() string { return net.JoinHostPort(ti.Host, strconv.Itoa(ti.Port)) }

// Config returns a go-client configuration for the target.
func (ti TargetInfo) Config() *qdrant.Config {
	return &qdrant.Config{Host: ti.Host, Port: ti.Port, APIKey: ti.APIKey, SkipCompatibilityCheck: true}
}

// Client returns a go-client connected to the target, closed when the test ends.
func (ti TargetInfo) Client(t testing.TB) *qdrant.Client {
	t.Helper()
	c, err := qdrant.NewClient(ti.Config())
	if err != nil {
		t.Fatalf("qdranttest: client for %s: %v", ti.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Target returns the Qdrant tests should use: the real one at
// RAGSTREAM_TEST_QDRANT_ADDR (with RAGSTREAM_TEST_QDRANT_API_KEY, if set),
// or else a stand-in on a fresh TCP port, protected by a random API key so
// that tests exercise authentication, and stopped when the test ends.
// Tests reach the target only through an address, so they run unchanged
// against both.
func Target(t testing.TB) TargetInfo {
	t.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" {
		host, port, err := splitHostPort(addr)
		if err != nil {
			t.Fatalf("qdranttest: %s=%q is not host:port: %v", EnvAddr, addr, err)
		}
		return TargetInfo{Host: host, Port: port, APIKey: os.Getenv(EnvAPIKey), Real: true}
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	s := Start(t, WithAPIKey(hex.EncodeToString(key)))
	host, port := s.HostPort()
	return TargetInfo{Host: host, Port: port, APIKey: s.apiKey}
}
