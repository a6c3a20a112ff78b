// Package metrics holds every Prometheus metric ragstream exports, on a
// private registry, with typed recording methods so the code that records
// a value cannot misspell a name or a label.
//
// Every metric is named ragstream_<what>[_<unit>][_total] and listed, with
// its labels and meaning, in docs/metrics.md; a test holds the two in step,
// and another holds the Grafana dashboard (deploy/grafana) to names this
// registry exports. Label values are bounded by construction: topics and
// partitions come from configuration and the cluster, routes from the
// admin server's route templates, and every other label from the constants
// below.
package metrics

import (
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/logging"
)

// Namespace prefixes every metric of ragstream's own.
const Namespace = "ragstream"

// Record outcomes: the outcome label of ragstream_records_processed_total
// (pipeline.Outcome's String values).
const (
	OutcomeApplied      = "applied"
	OutcomeSkippedStale = "skipped_stale"
	OutcomeFailed       = "failed"
	OutcomeDeadLettered = "dead_lettered"
)

// Outcomes lists every outcome label value.
var Outcomes = []string{OutcomeApplied, OutcomeSkippedStale, OutcomeFailed, OutcomeDeadLettered}

// Pipeline stages: the stage label of ragstream_stage_duration_seconds.
const (
	StageDecode = "decode"
	StageFold   = "fold"
	StageSink   = "sink"
	StageCommit = "commit"
	// StageWait is the wait of a partition for a place among the batches
	// decoded or being written at once (pipeline.max_active_batches).
	StageWait = "wait"
)

// Sink call results: the result label of ragstream_sink_duration_seconds,
// "ok" or the class of the error the call returned.
const (
	ResultOK        = "ok"
	ResultTransient = "transient"
	ResultPermanent = "permanent"
	ResultDown      = "down"
)

// BreakerState is the value of ragstream_breaker_state.
type BreakerState int

// Breaker states, in the order of gobreaker's State values.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

// DLQ classes and stages: the labels of ragstream_dlq_records_total, the
// values of the ragstream.error.class and ragstream.error.stage headers
// (DESIGN.md §5).
const (
	DLQClassDecode        = "decode"
	DLQClassSchema        = "schema"
	DLQClassStoreRejected = "store_rejected"

	DLQStageDecode     = "decode"
	DLQStageValidate   = "validate"
	DLQStageSinkNeo4j  = "sink.neo4j"
	DLQStageSinkQdrant = "sink.qdrant"
)

// Cache lookup results: the result label of ragstream_cache_requests_total.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// Definition describes one metric for documentation and tests.
type Definition struct {
	Name   string   // full name, ragstream_ prefix included
	Type   string   // counter, gauge or histogram
	Labels []string // variable label names, in order
	Help   string
}

// Metrics is ragstream's set of metrics on its private registry. The zero
// value is not usable; call New. All methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	defs    []Definition
	own     []prometheus.Collector
	handler http.Handler
	log     zerolog.Logger

	buildInfo *prometheus.GaugeVec

	consumed     *prometheus.CounterVec
	processed    *prometheus.CounterVec
	unkeyed      *prometheus.CounterVec
	batchRecords prometheus.Histogram
	batchBytes   prometheus.Histogram
	stage        *prometheus.HistogramVec
	sink         *prometheus.HistogramVec
	paused       *prometheus.GaugeVec
	lag          *prometheus.GaugeVec
	lagErrors    prometheus.Counter
	e2e          prometheus.Histogram
	commits      prometheus.Counter
	commitErrors prometheus.Counter

	dlq      *prometheus.CounterVec
	retries  *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
	sinkUp   *prometheus.GaugeVec
	ready    prometheus.Gauge
	depUp    *prometheus.GaugeVec
	rlFallbk prometheus.Gauge
	cache    *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	pausedMu  sync.Mutex
	pausedSet map[string]map[int32]struct{}

	lagMu     sync.Mutex
	lagSeries map[lagKey]struct{}
}

// Option configures New.
type Option func(*Metrics)

// WithLogger gives the metrics their logger: errors of the /metrics handler
// and of the lag collector are logged there. Without it they are not logged
// (they are still counted).
func WithLogger(l zerolog.Logger) Option {
	return func(m *Metrics) { m.log = l }
}

// Latency buckets, in seconds. Stage and sink calls range from a
// sub-millisecond fold to a multi-second retried write; end-to-end latency
// includes consumer lag, so it reaches an hour.
var (
	callBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	e2eBuckets  = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	httpBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// Batch sizes up to pipeline.batch.max_records (1000 by default) and
	// pipeline.batch.max_bytes (8 MiB by default), with room above.
	recordBuckets = prometheus.ExponentialBuckets(1, 2, 14)    // 1 … 8192
	byteBuckets   = prometheus.ExponentialBuckets(1024, 4, 10) // 1 KiB … 256 MiB
)

// New returns ragstream's metrics registered on a fresh private registry,
// together with the Go runtime and process collectors and
// ragstream_build_info{version, commit, go_version} = 1.
func New(build buildinfo.Info, opts ...Option) *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		log:       zerolog.Nop(),
		pausedSet: make(map[string]map[int32]struct{}),
		lagSeries: make(map[lagKey]struct{}),
	}
	for _, o := range opts {
		o(m)
	}

	m.buildInfo = m.gaugeVec("build_info",
		"Always 1; the labels say which build is running.",
		"version", "commit", "go_version")

	m.consumed = m.counterVec("records_consumed_total",
		"Records fetched from Kafka and handed to the pipeline.", "topic")
	m.processed = m.counterVec("records_processed_total",
		"Records whose fate is decided, by outcome: applied, skipped_stale, failed, dead_lettered.", "topic", "outcome")
	m.unkeyed = m.counterVec("records_unkeyed_total",
		"Records consumed without a Kafka key; they lose the per-key ordering guarantee.", "topic")
	m.batchRecords = m.histogram("batch_records",
		"Records per batch handed to the sinks.", recordBuckets)
	m.batchBytes = m.histogram("batch_bytes",
		"Bytes (record keys and values) per batch handed to the sinks.", byteBuckets)
	m.stage = m.histogramVec("stage_duration_seconds",
		"Time one batch spends in a pipeline stage: wait (for a place among the active batches), decode, fold, sink, commit.", callBuckets, "stage")
	m.sink = m.histogramVec("sink_duration_seconds",
		"Duration of one sink call, by sink, operation and result (ok, transient, permanent, down).", callBuckets, "sink", "op", "result")
	m.paused = m.gaugeVec("partitions_paused",
		"Partitions of the topic whose fetching is paused because a sink is down.", "topic")
	m.lag = m.gaugeVec("consumer_lag",
		"Records behind: the partition's end offset minus the group's committed offset (the log start offset when nothing is committed).", "topic", "partition")
	m.lagErrors = m.counter("consumer_lag_refresh_errors_total",
		"Failed refreshes of ragstream_consumer_lag; the gauge keeps its last values meanwhile.")
	m.e2e = m.histogram("e2e_latency_seconds",
		"From the event's ts (or the Kafka record timestamp when it has none) to the commit of its offset.", e2eBuckets)
	m.commits = m.counter("commits_total",
		"Offset commits that Kafka acknowledged.")
	m.commitErrors = m.counter("commit_errors_total",
		"Offset commits that failed.")

	m.dlq = m.counterVec("dlq_records_total",
		"Records acknowledged by the dead-letter topic, by error class and stage.", "class", "stage")
	m.retries = m.counterVec("sink_retries_total",
		"Retries of transient sink errors.", "sink")
	m.breaker = m.gaugeVec("breaker_state",
		"Circuit breaker state per sink: 0 closed, 1 half-open, 2 open.", "sink")
	m.sinkUp = m.gaugeVec("sink_up",
		"1 while the sink accepts writes, 0 while it reports itself down.", "sink")
	m.ready = m.gauge("ready",
		"1 while /health/ready answers 200, else 0.")
	m.depUp = m.gaugeVec("dependency_up",
		"1 while the readiness check or condition of the dependency passes, else 0.", "dependency")
	m.rlFallbk = m.gauge("ratelimit_fallback",
		"1 while the rate limiter runs on its local fallback because Redis is unreachable.")
	m.cache = m.counterVec("cache_requests_total",
		"Cache lookups by result: hit or miss.", "result")

	m.httpRequests = m.counterVec("http_requests_total",
		"HTTP requests served by the admin port, by route template, method and status code.", "route", "method", "code")
	m.httpDuration = m.histogramVec("http_request_duration_seconds",
		"Latency of HTTP requests served by the admin port, by route template and method.", httpBuckets, "route", "method")

	m.buildInfo.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)
	for _, r := range []string{CacheHit, CacheMiss} {
		m.cache.WithLabelValues(r)
	}
	for _, cs := range [][2]string{
		{DLQClassDecode, DLQStageDecode},
		{DLQClassSchema, DLQStageValidate},
		{DLQClassStoreRejected, DLQStageSinkNeo4j},
		{DLQClassStoreRejected, DLQStageSinkQdrant},
	} {
		m.dlq.WithLabelValues(cs[0], cs[1])
	}

	m.reg.MustRegister(
		m,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      logging.StdLogger(m.log, zerolog.ErrorLevel, "metrics"),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
		// Scrapes are cheap; the bound only protects against a flood.
		MaxRequestsInFlight: 8,
	}))
	return m
}

// Registry returns the private registry, for tests and for collectors that
// live elsewhere (a client library's own metrics).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics/protobuf when the scraper asks), instrumented with
// promhttp_metric_handler_requests_total.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Definitions returns the description of every ragstream_ metric, in the
// order they are defined.
func (m *Metrics) Definitions() []Definition {
	out := make([]Definition, len(m.defs))
	for i, d := range m.defs {
		d.Labels = slices.Clone(d.Labels)
		out[i] = d
	}
	return out
}

// Describe implements prometheus.Collector over ragstream's own metrics.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.own {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector over ragstream's own metrics.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.own {
		c.Collect(ch)
	}
}

func (m *Metrics) define(name, typ, help string, labels []string, c prometheus.Collector) {
	m.defs = append(m.defs, Definition{Name: Namespace + "_" + name, Type: typ, Labels: labels, Help: help})
	m.own = append(m.own, c)
}

func (m *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	m.define(name, "counter", help, nil, c)
	return c
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.define(name, "counter", help, labels, c)
	return c
}

func (m *Metrics) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
	m.define(name, "gauge", help, nil, g)
	return g
}

func (m *Metrics) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.define(name, "gauge", help, labels, g)
	return g
}

func (m *Metrics) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	m.define(name, "histogram", help, nil, h)
	return h
}

func (m *Metrics) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	m.define(name, "histogram", help, labels, h)
	return h
}
