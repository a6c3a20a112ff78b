package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// warnings lists valid settings that are probably mistakes or weaken
// security, for Load to return. None contains a secret.
func (c *Config) warnings() []string {
	var w []string
	add := func(format string, args ...any) { w = append(w, fmt.Sprintf(format, args...)) }

	k := &c.Kafka
	if k.TLS.Enabled && k.TLS.InsecureSkipVerify {
		add("kafka.tls.insecure_skip_verify is on: the brokers' certificates are not verified")
	}
	if k.SASL.Mechanism == SASLPlain && !k.TLS.Enabled {
		add("kafka.sasl.mechanism PLAIN without kafka.tls.enabled sends the password in clear text")
	}

	q := &c.Qdrant
	if q.TLS.Enabled && q.TLS.InsecureSkipVerify {
		add("qdrant.tls.insecure_skip_verify is on: Qdrant's certificate is not verified")
	}
	if host, port, err := net.SplitHostPort(q.Addr); err == nil {
		if q.APIKey != "" && !q.TLS.Enabled && !loopback(host) {
			add("qdrant.api_key is sent in clear text to %s: enable qdrant.tls", host)
		}
		if port == "6333" {
			add("qdrant.addr port 6333 is Qdrant's REST port; ragstream speaks gRPC (port 6334 by default)")
		}
	}

	n := &c.Neo4j
	if u, err := url.Parse(n.URI); err == nil && slices.Contains(Neo4jSchemes, u.Scheme) {
		if strings.HasSuffix(u.Scheme, "+ssc") {
			add("neo4j.uri scheme %s accepts any server certificate", u.Scheme)
		}
		if (u.Scheme == "bolt" || u.Scheme == "neo4j") && n.Password != "" && !loopback(u.Hostname()) {
			add("neo4j.password is sent in clear text to %s: use the %s+s scheme", u.Hostname(), u.Scheme)
		}
		if p := u.Port(); p == "7474" || p == "7473" {
			add("neo4j.uri port %s is Neo4j's HTTP port; Bolt listens on 7687 by default", p)
		}
	}
	return w
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
