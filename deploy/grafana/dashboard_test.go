package grafana

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/metrics"
)

type target struct {
	Expr         string          `json:"expr"`
	LegendFormat string          `json:"legendFormat"`
	RefID        string          `json:"refId"`
	Datasource   json.RawMessage `json:"datasource"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	metricRe = regexp.MustCompile(`ragstream_[a-z0-9_]+`)
	byRe     = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendRe = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// exported maps every series name the registry exports (histograms with
// their _bucket, _sum and _count series) to the labels it carries.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	for _, d := range metrics.New(buildinfo.Get()).Definitions() {
		out[d.Name] = d.Labels
		if d.Type == "histogram" {
			out[d.Name+"_bucket"] = append(slices.Clone(d.Labels), "le")
			out[d.Name+"_sum"] = d.Labels
			out[d.Name+"_count"] = d.Labels
		}
	}
	return out
}

func load(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatalf("ragstream.json: %v", err)
	}
	return d
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// checkExpr returns the ragstream_ series expr names and its problems: a
// metric the registry does not export, or a label it groups or labels by
// that none of its metrics carries.
func checkExpr(expr, legend string, known map[string][]string) (names, problems []string) {
	names = metricRe.FindAllString(expr, -1)
	if len(names) == 0 {
		problems = append(problems, fmt.Sprintf("query %q names no ragstream_ metric", expr))
	}
	labels := map[string]bool{}
	for _, n := range names {
		ls, ok := known[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("query names %s, which the registry does not export", n))
			continue
		}
		for _, l := range ls {
			labels[l] = true
		}
	}
	var used []string
	for _, m := range byRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			used = append(used, strings.TrimSpace(l))
		}
	}
	for _, m := range legendRe.FindAllStringSubmatch(legend, -1) {
		used = append(used, m[1])
	}
	for _, l := range used {
		if l != "" && !labels[l] {
			problems = append(problems, fmt.Sprintf("label %q is not a label of %v", l, names))
		}
	}
	return names, problems
}

func TestEveryQueryNamesAnExportedMetric(t *testing.T) {
	d := load(t)
	known := exported(t)
	used := map[string]bool{}
	for _, p := range flatten(d.Panels) {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names, problems := checkExpr(tg.Expr, tg.LegendFormat, known)
			for _, pr := range problems {
				t.Errorf("panel %q: %s", p.Title, pr)
			}
			for _, n := range names {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
			}
			if !strings.Contains(string(tg.Datasource), "${DS_PROMETHEUS}") {
				t.Errorf("panel %q target %s does not use the DS_PROMETHEUS data source: %s", p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		_, problems := checkExpr(q.Query, "", known)
		for _, pr := range problems {
			t.Errorf("variable %s: %s", v.Name, pr)
		}
	}
	// The list of what the dashboard shows.
	for _, m := range []string{
		"ragstream_records_consumed_total", "ragstream_records_processed_total",
		"ragstream_consumer_lag", "ragstream_e2e_latency_seconds",
		"ragstream_sink_duration_seconds", "ragstream_batch_records",
		"ragstream_partitions_paused", "ragstream_http_requests_total",
		"ragstream_http_request_duration_seconds",
		// Failure handling: breakers, retries, pauses, DLQ records by class.
		"ragstream_breaker_state", "ragstream_sink_retries_total",
		"ragstream_dlq_records_total", "ragstream_sink_up",
	} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	var hasDS bool
	for _, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" && v.Type == "datasource" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no DS_PROMETHEUS data source variable")
	}
	ids := map[int]string{}
	for _, p := range flatten(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type != "row" && !strings.Contains(string(p.Datasource), "${DS_PROMETHEUS}") {
			t.Errorf("panel %q does not use the DS_PROMETHEUS data source", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") {
				t.Errorf("panel %q: unbalanced parentheses in %q", p.Title, tg.Expr)
			}
		}
	}
	// Panels of one row must not overlap.
	ps := flatten(d.Panels)
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			a, b := ps[i].GridPos, ps[j].GridPos
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("panels %q and %q overlap", ps[i].Title, ps[j].Title)
			}
		}
	}
}

// TestCheckExprCatchesMistakes keeps the checker honest: the mistakes it
// exists for are reported.
func TestCheckExprCatchesMistakes(t *testing.T) {
	known := exported(t)
	for _, tc := range []struct{ expr, legend string }{
		{`rate(ragstream_records_consumed[5m])`, ""},
		{`sum by (sink) (rate(ragstream_records_consumed_total[5m]))`, ""},
		{`rate(ragstream_records_consumed_total[5m])`, "{{partition}}"},
		{`ragstream_consumer_lag_bucket`, ""},
		{`up`, ""},
	} {
		if _, problems := checkExpr(tc.expr, tc.legend, known); len(problems) == 0 {
			t.Errorf("checkExpr accepted %q / %q", tc.expr, tc.legend)
		}
	}
}
