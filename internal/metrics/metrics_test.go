package metrics

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testBuild = buildinfo.Info{Version: "1.2.3", Commit: "abc123", GoVersion: "go1.26.8"}

// exercise records a value in every metric, so that every family shows up
// in a scrape.
func exercise(m *Metrics) {
	m.InitTopics("events")
	m.InitSinks("qdrant", "neo4j")
	m.RecordsConsumed("events", 10)
	m.Processed("events", OutcomeApplied, 7)
	m.Processed("events", OutcomeSkippedStale, 2)
	m.Processed("events", OutcomeFailed, 1)
	m.Unkeyed("events", 1)
	m.ObserveBatch(10, 4096)
	m.ObserveStage(StageDecode, time.Millisecond)
	m.ObserveSink("qdrant", "upsert", ResultOK, 3*time.Millisecond)
	m.SetPaused("events", 0, true)
	m.lag.WithLabelValues("events", "0").Set(5)
	m.lagErrors.Inc()
	m.ObserveE2E(2 * time.Second)
	m.Committed(nil)
	m.Committed(errors.New("rebalance in progress"))
	m.DeadLettered(DLQClassSchema, DLQStageValidate, 1)
	m.SinkRetry("neo4j")
	m.SetBreakerState("neo4j", BreakerOpen)
	m.SetSinkUp("neo4j", false)
	m.SetReady(true)
	m.SetDependencyUp("kafka", true)
	m.SetRateLimitFallback(false)
	m.CacheRequest(CacheHit)
	m.ObserveHTTP("/health/ready", "GET", 200, time.Millisecond)
}

func TestRegistryPassesLint(t *testing.T) {
	m := New(testBuild)
	exercise(m)
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	problems, err = testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint (whole registry) %s: %s", p.Metric, p.Text)
	}
}

func TestDefinitionsAreWhatTheRegistryExports(t *testing.T) {
	m := New(testBuild)
	exercise(m)
	fams := metricstest.Scrape(t, m.Handler())

	defs := m.Definitions()
	var defined []string
	for _, d := range defs {
		defined = append(defined, d.Name)
		fam, ok := fams[d.Name]
		if !ok {
			t.Errorf("%s is defined but not exported", d.Name)
			continue
		}
		if got := strings.ToLower(fam.GetType().String()); got != d.Type {
			t.Errorf("%s: exported as %s, defined as %s", d.Name, got, d.Type)
		}
		if fam.GetHelp() != d.Help {
			t.Errorf("%s: help %q, defined %q", d.Name, fam.GetHelp(), d.Help)
		}
		for _, ls := range fams.LabelSets(d.Name) {
			var names []string
			for n := range ls {
				names = append(names, n)
			}
			slices.Sort(names)
			want := slices.Sorted(slices.Values(d.Labels))
			if !slices.Equal(names, want) {
				t.Errorf("%s: labels %v, defined %v", d.Name, names, want)
			}
		}
	}
	slices.Sort(defined)
	if got := fams.Names("ragstream_"); !slices.Equal(got, defined) {
		t.Errorf("exported ragstream_ families\n %v\ndefined\n %v", got, defined)
	}
	for _, prefix := range []string{"go_", "process_", "promhttp_"} {
		if len(fams.Names(prefix)) == 0 {
			t.Errorf("no %s metrics exported", prefix)
		}
	}
}

func TestExposition(t *testing.T) {
	m := New(testBuild)
	m.InitTopics("events", "audit")
	m.RecordsConsumed("events", 3)
	m.RecordsConsumed("events", 2)
	m.RecordsConsumed("events", 0)
	m.Processed("events", OutcomeApplied, 4)
	m.Processed("events", OutcomeDeadLettered, 1)
	m.SetPaused("events", 1, true)
	m.SetPaused("events", 1, true) // idempotent
	m.SetPaused("events", 2, true)
	m.SetPaused("events", 2, false)
	m.SetPaused("events", 7, false) // resuming a running partition
	m.ObserveHTTP("/v1/query", "BREW", 418, time.Millisecond)
	m.ObserveE2E(-time.Second)
	m.ObserveE2ESince(time.Unix(100, 0), time.Unix(99, 0), time.Unix(90, 0))
	m.Committed(nil)

	fams := metricstest.Scrape(t, m.Handler())
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ragstream_build_info", map[string]string{"version": "1.2.3", "commit": "abc123", "go_version": "go1.26.8"}, 1},
		{"ragstream_records_consumed_total", map[string]string{"topic": "events"}, 5},
		{"ragstream_records_consumed_total", map[string]string{"topic": "audit"}, 0},
		{"ragstream_records_processed_total", map[string]string{"topic": "events", "outcome": "applied"}, 4},
		{"ragstream_records_processed_total", map[string]string{"topic": "events", "outcome": "dead_lettered"}, 1},
		{"ragstream_records_processed_total", map[string]string{"topic": "audit", "outcome": "skipped_stale"}, 0},
		{"ragstream_partitions_paused", map[string]string{"topic": "events"}, 1},
		{"ragstream_partitions_paused", map[string]string{"topic": "audit"}, 0},
		{"ragstream_http_requests_total", map[string]string{"route": "/v1/query", "method": "OTHER", "code": "418"}, 1},
		{"ragstream_e2e_latency_seconds", nil, 3},
		{"ragstream_commits_total", nil, 1},
		{"ragstream_dlq_records_total", map[string]string{"class": "store_rejected", "stage": "sink.neo4j"}, 0},
		{"ragstream_cache_requests_total", map[string]string{"result": "miss"}, 0},
	} {
		got, ok := fams.Value(tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// The negative e2e duration counted as zero: it is in the lowest bucket.
	e2e, _ := fams.Find("ragstream_e2e_latency_seconds", nil)
	if b := e2e.GetHistogram().GetBucket()[0]; b.GetCumulativeCount() != 1 {
		t.Errorf("lowest e2e bucket (le=%v) holds %d, want the one clamped observation", b.GetUpperBound(), b.GetCumulativeCount())
	}
	if s := e2e.GetHistogram().GetSampleSum(); s != 11 {
		t.Errorf("e2e sum = %v, want 0+1+10", s)
	}
	if _, ok := fams.Find("ragstream_http_requests_total", map[string]string{"method": "BREW"}); ok {
		t.Error("an invented method became a label value")
	}
}

// docsPath is docs/metrics.md from this package's directory.
const docsPath = "../../docs/metrics.md"

func TestDocsListEveryMetric(t *testing.T) {
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	m := New(testBuild)
	rows := make(map[string]string)
	for _, line := range strings.Split(doc, "\n") {
		if name := regexp.MustCompile("^\\| `(ragstream_[a-z0-9_]+)`").FindStringSubmatch(line); name != nil {
			rows[name[1]] = line
		}
	}
	known := make(map[string]bool)
	for _, d := range m.Definitions() {
		known[d.Name] = true
		row, ok := rows[d.Name]
		if !ok {
			t.Errorf("docs/metrics.md has no table row for %s", d.Name)
			continue
		}
		cells := strings.Split(row, "|")
		if len(cells) < 5 {
			t.Errorf("row of %s has too few cells: %s", d.Name, row)
			continue
		}
		if typ := strings.TrimSpace(cells[2]); typ != d.Type {
			t.Errorf("docs: %s is a %s, documented as %q", d.Name, d.Type, typ)
		}
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cells[3], -1) {
			labels = append(labels, l[1])
		}
		if !slices.Equal(labels, d.Labels) {
			t.Errorf("docs: %s has labels %v, documented %v", d.Name, d.Labels, labels)
		}
	}
	for _, name := range regexp.MustCompile(`ragstream_[a-z0-9_]+`).FindAllString(doc, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !known[name] && !known[base] {
			t.Errorf("docs/metrics.md names %s, which the registry does not export", name)
		}
	}
}

func TestMetricSeriesAreBoundedByTheirInputs(t *testing.T) {
	m := New(testBuild)
	for i := 0; i < 100; i++ {
		m.ObserveHTTP("/health/live", strings.Repeat("X", i), 200, 0)
	}
	fams := metricstest.Scrape(t, m.Handler())
	if n := len(fams["ragstream_http_requests_total"].GetMetric()); n != 1 {
		t.Errorf("100 invented methods made %d series, want 1", n)
	}
}
