package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/metrics"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/breaker"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
	"github.com/ragstream/ragstream/sinks/qdrant"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// TestQdrantOutageBreaker runs a worker whose Qdrant answers every upsert
// with Unavailable for five seconds while a stream arrives: Qdrant's breaker
// opens, readiness is 503 naming qdrant, nothing is dead-lettered and no
// offset is committed; after the five seconds the half-open probe succeeds,
// everything lands in both stores once, and readiness is 200 again.
func TestQdrantOutageBreaker(t *testing.T) {
	standIn := qdranttest.Start(t)
	tw := startTestWorker(t, testenv.Neo4jURI(t), func(c *config.Config) {
		c.Qdrant.Addr = standIn.Addr()
		c.Pipeline.Breaker.OpenTimeout = config.Duration(time.Second)
	})
	waitFor(t, time.Minute, "readiness 200", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })

	topic := tw.cfg.Kafka.Topics[0]
	tenant := unique("outage")
	t.Cleanup(func() { deleteTenants(t, []string{tenant}) })
	const n = 90
	recs := make([]*kgo.Record, n)
	for i := range recs {
		ev := pipelinetest.Event{Tenant: tenant, ID: fmt.Sprintf("c%03d", i), Version: 1,
			Dims: tw.cfg.Qdrant.VectorSize, Entities: []string{fmt.Sprintf("e%d", i%7)}}
		recs[i] = ev.Record(topic, int32(i%3), "")
	}
	const outage = 5 * time.Second
	standIn.Faults().FailFor("Upsert", codes.Unavailable, outage)
	injected := time.Now()
	produceTo(t, tw.cfg.Kafka.Brokers, recs)

	// While Qdrant refuses upserts: readiness names it, nothing is
	// committed. The outage may be over before a poll sees it only on a
	// machine too loaded to schedule the worker: then the test says so.
	sawDown := false
	for time.Since(injected) < outage-500*time.Millisecond {
		code, body := tw.ready(t)
		if q := body.Checks["qdrant"]; code == http.StatusServiceUnavailable && !q.OK {
			if !strings.Contains(q.Error, "circuit breaker") || !strings.Contains(q.Error, "Unavailable") {
				t.Errorf("readiness says qdrant is down for %q, want the breaker and Qdrant's error", q.Error)
			}
			for _, other := range []string{"kafka", "neo4j"} {
				if c := body.Checks[other]; !c.OK {
					t.Errorf("while Qdrant is down, %s is reported down too: %+v", other, c)
				}
			}
			sawDown = true
			if got := committedOffsets(t, tw.cfg.Kafka.Brokers, tw.cfg.Kafka.Group, topic); len(got) > 0 {
				t.Errorf("committed %v while Qdrant refuses every upsert", got)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawDown {
		t.Fatalf("readiness never reported qdrant down during a %s outage", outage)
	}

	want := map[int32]int64{0: n / 3, 1: n / 3, 2: n / 3}
	waitFor(t, 2*time.Minute, "every offset committed", func() bool {
		got := committedOffsets(t, tw.cfg.Kafka.Brokers, tw.cfg.Kafka.Group, topic)
		return got[0] == want[0] && got[1] == want[1] && got[2] == want[2]
	})
	waitFor(t, time.Minute, "readiness 200 after the outage", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	points, err := tw.qdrant.Client().Count(ctx, &qc.CountPoints{CollectionName: tw.cfg.Qdrant.Collection,
		Filter: &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeyword(qdrant.FieldTenant, tenant)}}, Exact: qc.PtrOf(true)})
	if err != nil {
		t.Fatal(err)
	}
	if points != n {
		t.Errorf("Qdrant holds %d points of the stream, want %d", points, n)
	}
	res, err := neo4jExec(ctx, neo4jtest.Connect(t), "MATCH (c:Chunk {tenant: $t}) RETURN count(c) AS n", map[string]any{"t": tenant})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := res.Records[0].Get("n"); got != int64(n) {
		t.Errorf("Neo4j holds %v chunks of the stream, want %d", got, n)
	}
	if got := len(readTopic(t, tw.cfg.Kafka.Brokers, dlq.TopicFor(tw.cfg.DLQ.Topic, topic))); got != 0 {
		t.Errorf("the DLQ holds %d records after a Qdrant outage, want none", got)
	}

	f := metricstest.ScrapeURL(t, http.DefaultClient, tw.base+"/metrics")
	value := func(name string, labels map[string]string) float64 { v, _ := f.Value(name, labels); return v }
	if v := value("ragstream_sink_retries_total", map[string]string{"sink": "qdrant"}); v == 0 {
		t.Error("ragstream_sink_retries_total{sink=qdrant} is 0 after an outage")
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"ragstream_breaker_state", map[string]string{"sink": "qdrant"}},
		{"ragstream_partitions_paused", map[string]string{"topic": topic}},
		{"ragstream_dlq_records_total", map[string]string{"class": "store_rejected", "stage": "sink.qdrant"}},
	} {
		if v := value(c.name, c.labels); v != 0 {
			t.Errorf("%s%v = %v after recovery, want 0", c.name, c.labels, v)
		}
	}
	if v := value("ragstream_sink_up", map[string]string{"sink": "qdrant"}); v != 1 {
		t.Errorf("ragstream_sink_up{sink=qdrant} = %v after recovery, want 1", v)
	}
}

// TestQdrantCallsTimeOut: a Qdrant that does not answer (the stand-in holds
// every call) makes a write fail as transient after qdrant.timeout, rather
// than hang.
func TestQdrantCallsTimeOut(t *testing.T) {
	standIn := qdranttest.Start(t)
	const timeout = 500 * time.Millisecond
	cfg := config.Default()
	s, err := qdrant.New(qdrant.Config{Addr: standIn.Addr(), Collection: unique("timeout_"), VectorSize: 4,
		Distance: "Cosine", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	const frozen = time.Minute
	standIn.Faults().SetLatency(frozen)
	t.Cleanup(func() { standIn.Faults().SetLatency(0) })
	ev := pipelinetest.Event{Tenant: "acme", ID: "a", Version: 1}
	r := &pipeline.Record{Src: ev.Record("t", 0, "")}
	r.Event.Tenant, r.Event.ID, r.Event.Vector = "acme", "a", []float32{1, 2, 3, 4}
	start := time.Now()
	err = s.Write(ctx, []pipeline.Write{{Key: r.Key(), Action: pipeline.ActionUpsert, Version: 1, Record: r}})
	took := time.Since(start)
	if err == nil || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("write to a frozen Qdrant: %v (class %v), want a transient error", err, pipeline.ClassOf(err))
	}
	if took >= frozen/2 {
		t.Errorf("write to a frozen Qdrant returned after %s with qdrant.timeout %s", took, timeout)
	}
	if d := cfg.Qdrant.Timeout.Duration(); d != 10*time.Second {
		t.Errorf("default qdrant.timeout %s, want 10s", d)
	}
	if d := cfg.Neo4j.Timeout.Duration(); d != 5*time.Second {
		t.Errorf("default neo4j.timeout %s, want 5s", d)
	}
	if d := cfg.DLQ.ProduceTimeout.Duration(); d != 3*time.Second {
		t.Errorf("default dlq.produce_timeout %s, want 3s", d)
	}
}

// fakeReporter is an admin.StatusReporter that remembers the last report
// of each component.
type fakeReporter struct {
	mu   sync.Mutex
	down map[string]error
}

func (r *fakeReporter) ReportDown(c string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[c] = err
}

func (r *fakeReporter) ReportUp(c string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, c)
}

// TestBreakerListener: each transition of a store's breaker sets its
// breaker-state and sink-up gauges, and open or half-open reports the store
// down with the failure that opened it, closed reports it up.
func TestBreakerListener(t *testing.T) {
	m := metrics.New(buildinfo.Get())
	m.InitSinks("qdrant")
	rep := &fakeReporter{down: map[string]error{}}
	listen := breakerListener(m, rep, zerolog.Nop())
	cause := errors.New("qdrant upsert: Unavailable")
	for _, tc := range []struct {
		to       breaker.State
		wantDown bool
		state    float64
		up       float64
	}{
		{breaker.Open, true, 2, 0},
		{breaker.HalfOpen, true, 1, 0},
		{breaker.Closed, false, 0, 1},
	} {
		var err error
		if tc.to != breaker.Closed {
			err = cause
		}
		listen(breaker.Change{Store: "qdrant", To: tc.to, Err: err, At: time.Now()})
		f := metricstest.Scrape(t, m.Handler())
		if v, _ := f.Value("ragstream_breaker_state", map[string]string{"sink": "qdrant"}); v != tc.state {
			t.Errorf("%v: breaker_state %v, want %v", tc.to, v, tc.state)
		}
		if v, _ := f.Value("ragstream_sink_up", map[string]string{"sink": "qdrant"}); v != tc.up {
			t.Errorf("%v: sink_up %v, want %v", tc.to, v, tc.up)
		}
		rep.mu.Lock()
		reason, down := rep.down["qdrant"]
		rep.mu.Unlock()
		if down != tc.wantDown || down && !errors.Is(reason, cause) {
			t.Errorf("%v: reported down %v (%v), want %v with the cause", tc.to, down, reason, tc.wantDown)
		}
	}
}

// produceTo produces recs (with their Topic and Partition) and waits for
// every acknowledgement.
func produceTo(t *testing.T, brokers []string, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// committedOffsets returns the group's committed offsets of topic.
func committedOffsets(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	os, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p, o := range os[topic] {
		if o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out
}

// readTopic returns every record of topic up to its end offsets at the
// time of the call; none when the topic does not exist.
func readTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			left += o.Offset
		}
	})
	var out []*kgo.Record
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d records missing", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			left--
		})
	}
	return out
}
