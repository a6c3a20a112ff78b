package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/internal/logging"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// syncBuffer collects the worker's log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testWorker is a worker running on a workerEnv: in-process Kafka and a
// Qdrant stand-in of its own by default, with the Neo4j at the env's URI.
type testWorker struct {
	*worker
	env   *workerEnv
	kafka *kfake.Cluster // nil on real Kafka
	base  string         // http://host:port of the admin port
	logs  *syncBuffer

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// workerEnv is what test workers run on: a Kafka with the test's topic, a
// Qdrant and a Neo4j, and the group and collection the workers use. Workers
// started on one env share all of it, so a test can stop a worker and start
// another one with a changed configuration.
type workerEnv struct {
	t          *testing.T
	brokers    []string
	kafka      *kfake.Cluster // nil on real Kafka
	topic      string
	partitions int32
	// standIn is the Qdrant stand-in (its Faults inject failures); nil when
	// the env runs on qdranttest.Target.
	standIn    *qdranttest.Server
	qdrant     qdranttest.TargetInfo
	neo4jURI   string
	group      string
	collection string
}

// envOptions shape newWorkerEnv.
type envOptions struct {
	// realKafka runs on the test Kafka (testenv.KafkaBrokers) with a topic
	// of the test's own, deleted with its DLQ topic when the test ends;
	// otherwise on an in-process kfake cluster.
	realKafka bool
	// partitions of the topic; default 3.
	partitions int32
	// qdrantTarget runs on qdranttest.Target (a real Qdrant when
	// RAGSTREAM_TEST_QDRANT_ADDR is set) instead of a stand-in of the
	// test's own: for tests that need no Qdrant fault injection.
	qdrantTarget bool
}

func startTestWorker(t *testing.T, neo4jURI string, mutate func(*config.Config)) *testWorker {
	t.Helper()
	return newWorkerEnv(t, neo4jURI, envOptions{}).start(mutate)
}

func newWorkerEnv(t *testing.T, neo4jURI string, o envOptions) *workerEnv {
	t.Helper()
	e := &workerEnv{t: t, neo4jURI: neo4jURI, partitions: max(o.partitions, 3),
		topic: unique("events_"), group: unique("group_"), collection: unique("chunks_")}
	if o.realKafka {
		e.brokers = testenv.KafkaBrokers(t)
		createTopic(t, e.brokers, e.topic, e.partitions)
	} else {
		kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(e.partitions, e.topic))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		e.kafka, e.brokers = kc, kc.ListenAddrs()
	}
	if o.qdrantTarget {
		e.qdrant = qdranttest.Target(t)
		if e.qdrant.Real {
			t.Cleanup(func() { deleteCollection(t, e.qdrant, e.collection) })
		}
	} else {
		e.standIn = qdranttest.Start(t)
		host, port := e.standIn.HostPort()
		e.qdrant = qdranttest.TargetInfo{Host: host, Port: port}
	}
	return e
}

// config returns the configuration of the env's workers.
func (e *workerEnv) config() config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = e.brokers
	cfg.Kafka.Topics = []string{e.topic}
	cfg.Kafka.Group = e.group
	cfg.Qdrant.Addr = e.qdrant.Addr()
	cfg.Qdrant.APIKey = config.Secret(e.qdrant.APIKey)
	cfg.Qdrant.Collection = e.collection
	cfg.Neo4j.URI = e.neo4jURI
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Admin.ReadinessInterval = config.Duration(500 * time.Millisecond)
	cfg.Pipeline.Batch.Linger = config.Duration(20 * time.Millisecond)
	return cfg
}

// start starts a worker on the env; it runs until stop or the end of the
// test. mutate adjusts the configuration first.
func (e *workerEnv) start(mutate func(*config.Config)) *testWorker {
	t := e.t
	t.Helper()
	cfg := e.config()
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log, err := logging.New(logs, "info", "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := newWorker(ctx, &cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("newWorker: %v", err)
	}
	tw := &testWorker{worker: w, env: e, kafka: e.kafka, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { tw.done <- w.run(ctx) }()
	t.Cleanup(func() {
		tw.stop(t)
		if t.Failed() {
			t.Logf("log of the worker (tail):\n%s", tailLines(logs.String(), 40))
		}
		// RAGSTREAM_TEST_WORKER_LOG_DIR keeps every worker's whole log.
		if dir := os.Getenv("RAGSTREAM_TEST_WORKER_LOG_DIR"); dir != "" {
			name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+unique("")+".log")
			if err := os.WriteFile(name, []byte(logs.String()), 0o644); err != nil {
				t.Logf("keep the worker log: %v", err)
			}
		}
	})
	waitFor(t, 30*time.Second, "the admin port to listen", func() bool {
		if a := w.server.Addr(); a != "" && !strings.HasSuffix(a, ":0") {
			tw.base = "http://" + a
			return true
		}
		return false
	})
	return tw
}

// stop cancels the worker and waits until run returns, which must be
// without error and within a minute; later calls do nothing.
func (tw *testWorker) stop(t *testing.T) {
	t.Helper()
	tw.once.Do(func() {
		tw.cancel()
		select {
		case err := <-tw.done:
			if err != nil {
				t.Errorf("worker run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("worker did not stop within 60 s of cancellation")
		}
	})
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type readyBody struct {
	Status string `json:"status"`
	Checks map[string]struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"checks"`
}

func (tw *testWorker) ready(t *testing.T) (int, readyBody) {
	t.Helper()
	resp, err := http.Get(tw.base + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body readyBody
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("readiness body %q: %v", b, err)
	}
	return resp.StatusCode, body
}

// TestReadinessFollowsNeo4j stops and then freezes a private Neo4j under a
// running worker: readiness turns 503 naming neo4j within two check
// intervals (plus slack for a noisy machine), and 200 once it is back.
func TestReadinessFollowsNeo4j(t *testing.T) {
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{})
	interval := time.Second
	tw := startTestWorker(t, srv.URI(), func(c *config.Config) {
		c.Admin.ReadinessInterval = config.Duration(interval)
	})
	waitFor(t, 60*time.Second, "readiness 200", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })

	// Two intervals, plus the slack a 2-core machine shared with Neo4j and
	// Kafka needs to schedule the check.
	flip := 2*interval + 3*time.Second
	expectDown := func(how string) {
		t.Helper()
		start := time.Now()
		waitFor(t, flip, "readiness 503 after Neo4j "+how, func() bool { code, _ := tw.ready(t); return code == http.StatusServiceUnavailable })
		code, body := tw.ready(t)
		if c, ok := body.Checks["neo4j"]; code != http.StatusServiceUnavailable || !ok || c.OK || c.Error == "" {
			t.Fatalf("after Neo4j %s: %d %+v, want 503 naming neo4j with its error", how, code, body)
		}
		for _, other := range []string{"kafka", "qdrant"} {
			if !body.Checks[other].OK {
				t.Errorf("after Neo4j %s, %s is reported down too: %+v", how, other, body.Checks[other])
			}
		}
		t.Logf("readiness went 503 %s after Neo4j %s", time.Since(start).Round(10*time.Millisecond), how)
	}

	srv.Stop()
	expectDown("stopped")
	srv.Start()
	waitFor(t, 90*time.Second, "readiness 200 after Neo4j restarted", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })

	srv.Freeze()
	expectDown("frozen")
	srv.Thaw()
	waitFor(t, 60*time.Second, "readiness 200 after Neo4j thawed", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })
}

// TestMetricsCountWhatWasConsumed streams sample events with stale
// re-sends through a worker and reads /metrics with the Prometheus text
// parser: consumed, applied and skipped_stale equal what the stream holds.
// It also checks that every log line the worker wrote is JSON with the
// fields operators filter on.
func TestMetricsCountWhatWasConsumed(t *testing.T) {
	tw := startTestWorker(t, testenv.Neo4jURI(t), nil)
	topic := tw.cfg.Kafka.Topics[0]
	opt := sample.DefaultOptions()
	opt.Tenants = []string{unique("m"), unique("m")}
	// Unkeyed records land in any partition, so how many of them lose to a
	// later keyed event depends on how partitions interleave: leave them out
	// so every outcome is determined.
	opt.Unkeyed = 0
	recs := sample.Generate(2000, opt)
	t.Cleanup(func() { deleteTenants(t, opt.Tenants) })

	// Expected outcomes: the fold over the whole stream gives each record
	// the outcome sequential application gives, whatever the batching.
	dec := event.NewDecoder(event.DefaultLimits(384))
	var valid []*pipeline.Record
	for _, r := range recs {
		ev, err := dec.Decode(r.Key, r.Value)
		if err != nil {
			t.Fatalf("sample record does not decode: %v", err)
		}
		valid = append(valid, &pipeline.Record{Event: ev})
	}
	pipeline.Fold(valid, func(pipeline.Key) pipeline.Stored { return pipeline.Stored{} })
	var applied, stale int
	for _, r := range valid {
		switch r.Outcome {
		case pipeline.OutcomeApplied:
			applied++
		case pipeline.OutcomeSkippedStale:
			stale++
		}
	}
	if stale == 0 {
		t.Fatal("the sample stream has no stale record: the test would prove nothing")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(tw.kafka.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		kr := &kgo.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		cl.Produce(context.Background(), kr, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	scrape := func() metricstest.Families {
		return metricstest.ScrapeURL(t, http.DefaultClient, tw.base+"/metrics")
	}
	value := func(f metricstest.Families, name string, labels map[string]string) float64 {
		v, _ := f.Value(name, labels)
		return v
	}
	waitFor(t, 3*time.Minute, "every record processed", func() bool {
		f := scrape()
		return value(f, "ragstream_records_processed_total", map[string]string{"topic": topic, "outcome": "applied"})+
			value(f, "ragstream_records_processed_total", map[string]string{"topic": topic, "outcome": "skipped_stale"}) >= float64(len(recs))
	})
	f := scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   int
	}{
		{"ragstream_records_consumed_total", map[string]string{"topic": topic}, len(recs)},
		{"ragstream_records_processed_total", map[string]string{"topic": topic, "outcome": "applied"}, applied},
		{"ragstream_records_processed_total", map[string]string{"topic": topic, "outcome": "skipped_stale"}, stale},
		{"ragstream_records_processed_total", map[string]string{"topic": topic, "outcome": "failed"}, 0},
	} {
		if got := value(f, c.name, c.labels); got != float64(c.want) {
			t.Errorf("%s%v = %v, want %d", c.name, c.labels, got, c.want)
		}
	}
	t.Logf("consumed %d: applied %d, skipped_stale %d", len(recs), applied, stale)

	// Every line on the worker's stdout is JSON with ts, level, service,
	// version and msg; pipeline lines name their partition.
	sc := bufio.NewScanner(strings.NewReader(tw.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %d is not JSON: %q", lines, sc.Text())
		}
		for _, k := range []string{"ts", "level", "service", "version", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("log line %d lacks %q: %s", lines, k, sc.Text())
			}
		}
		if m["msg"] == "partition assigned" && (m["topic"] == nil || m["partition"] == nil) {
			t.Errorf("pipeline line without topic/partition: %s", sc.Text())
		}
	}
	if lines == 0 {
		t.Fatal("the worker logged nothing")
	}
}

// deleteTenants removes a test's nodes from the shared Neo4j.
func deleteTenants(t *testing.T, tenants []string) {
	drv := neo4jtest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := neo4jExec(ctx, drv, "MATCH (n) WHERE n.tenant IN $tenants DETACH DELETE n", map[string]any{"tenants": tenants})
	if err != nil {
		t.Logf("cleaning up tenants %v: %v", tenants, err)
	}
}

func neo4jExec(ctx context.Context, drv neo4jdrv.DriverWithContext, q string, params map[string]any) (*neo4jdrv.EagerResult, error) {
	return neo4jdrv.ExecuteQuery(ctx, drv, q, params, neo4jdrv.EagerResultTransformer)
}

// createTopic creates topic on the real test Kafka and waits until every
// partition has a leader. The topic and its DLQ topic are deleted when the
// test ends.
func createTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic, dlq.TopicFor("", topic))
	})
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && len(td.Partitions) == int(partitions) {
				ready := true
				for _, p := range td.Partitions {
					ready = ready && p.Err == nil && p.Leader >= 0
				}
				if ready {
					return
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s has no leaders after a minute: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deleteCollection removes a test's collection from a real Qdrant.
func deleteCollection(t *testing.T, ti qdranttest.TargetInfo, name string) {
	c, err := qc.NewClient(ti.Config())
	if err != nil {
		t.Logf("delete collection %s: %v", name, err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.DeleteCollection(ctx, name); err != nil {
		t.Logf("delete collection %s: %v", name, err)
	}
}
