// Package grafana holds ragstream's Grafana dashboard, ragstream.json,
// built only from metrics the registry of internal/metrics exports (a test
// holds it to that). Import it in Grafana (it asks for a Prometheus data
// source, the DS_PROMETHEUS variable) or provision it from this directory.
package grafana

import _ "embed"

// Dashboard is ragstream.json, for tools that serve or provision it.
//
//go:embed ragstream.json
var Dashboard []byte
