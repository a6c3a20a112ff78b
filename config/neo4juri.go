package config

import (
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Neo4jSchemes are the URI schemes of the Neo4j Go driver: bolt (one
// server), neo4j (routing, for clusters; also fine for one server), their
// "+s" forms (TLS, verified) and "+ssc" forms (TLS, self-signed certificate
// accepted), and bolt+unix (a Unix socket path).
var Neo4jSchemes = []string{"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc", "bolt+unix"}

// neo4jURI checks a URI the way the driver will read it, so that a bad URI
// fails at start-up with its key rather than at the first connection. The
// URI is never echoed: it could carry credentials.
func neo4jURI(ps *problems, key, raw string) {
	if raw == "" {
		ps.add(key, "must not be empty (want e.g. bolt://127.0.0.1:7687)")
		return
	}
	if !strings.Contains(raw, "://") {
		ps.add(key, "missing scheme (want e.g. bolt://%s)", strings.TrimPrefix(raw, "//"))
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		ps.add(key, "invalid URI: %v", err)
		return
	}
	if !slices.Contains(Neo4jSchemes, u.Scheme) {
		ps.add(key, "unsupported scheme %q (want %s)", u.Scheme, strings.Join(Neo4jSchemes, ", "))
		return
	}
	if u.User != nil {
		ps.add(key, "credentials in the URI are not used; set neo4j.user and neo4j.password")
	}
	if u.Fragment != "" {
		ps.add(key, "unexpected fragment #%s", u.Fragment)
	}
	if u.Scheme == "bolt+unix" {
		if u.Host != "" {
			ps.add(key, "bolt+unix takes a socket path and no host (bolt+unix:///path/to/socket)")
		}
		if u.Path == "" {
			ps.add(key, "bolt+unix needs a socket path (bolt+unix:///path/to/socket)")
		}
		return
	}
	if u.Hostname() == "" {
		ps.add(key, "missing host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			ps.add(key, "invalid port %q", p)
		}
	}
	if u.Path != "" && u.Path != "/" {
		ps.add(key, "unexpected path %q (choose the database with neo4j.database)", u.Path)
	}
	if u.RawQuery == "" {
		return
	}
	if strings.HasPrefix(u.Scheme, "bolt") {
		ps.add(key, "a routing context (the query) needs a neo4j scheme, not %s", u.Scheme)
		return
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		ps.add(key, "invalid routing context: %v", err)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		switch {
		case k == "address":
			ps.add(key, "routing context key \"address\" is reserved")
		case len(vs) > 1:
			ps.add(key, "duplicate routing context key %q", k)
		case strings.TrimSpace(vs[0]) == "":
			ps.add(key, "empty value for routing context key %q", k)
		}
	}
}
