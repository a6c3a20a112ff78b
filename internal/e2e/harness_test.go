package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/sinks/neo4j"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
	"github.com/ragstream/ragstream/sinks/qdrant"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// dims is the vector size of every test stream (the production default).
const dims = 384

// The machine running these tests is small and shared: every wait is
// generous, and no assertion is about speed.
const (
	commitWait  = 10 * time.Minute // a whole stream committed
	storeCall   = 2 * time.Minute  // one store call of a test or of the sinks
	pollEvery   = 200 * time.Millisecond
	kafkaCallTO = 30 * time.Second
)

func TestMain(m *testing.M) {
	zerolog.TimeFieldFormat = "15:04:05.000000"
	// The go-client warns through slog on every client made with an API key
	// over plain gRPC, which every test against the stand-in is; the rest
	// of slog's output stays.
	// (A fresh handler: wrapping slog's default one would loop through the
	// log package once SetDefault redirects it.)
	slog.SetDefault(slog.New(quietHandler{slog.NewTextHandler(os.Stderr, nil)}))
	code := m.Run()
	cleanupBinary()
	os.Exit(code)
}

// quietHandler drops the go-client's plaintext API key warning.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "API key is being used without TLS") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// env is one test's share of the services: a topic of its own, tenants of
// its own (a unique prefix), a Qdrant target and the shared Neo4j. Everything
// it creates is removed when the test ends.
type env struct {
	t          *testing.T
	id         string // unique, lowercase hex
	brokers    []string
	adm        *kadm.Client
	topic      string
	partitions int32
	tenants    []string
	qt         qdranttest.TargetInfo
	qc         *qc.Client
	drv        neo4jdrv.DriverWithContext
	// standIn is set when the test runs on a stand-in it started itself.
	standIn *qdranttest.Server
}

// envOptions shape newEnv.
type envOptions struct {
	partitions int32
	// standIn runs the test on this stand-in instead of qdranttest.Target:
	// only for tests that need its fault injection.
	standIn *qdranttest.Server
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	drv := neo4jtest.Connect(t)
	e := &env{t: t, id: uniqueID(), brokers: brokers, drv: drv, partitions: max(o.partitions, 1)}
	if o.standIn != nil {
		host, port := o.standIn.HostPort()
		e.qt, e.standIn = qdranttest.TargetInfo{Host: host, Port: port}, o.standIn
	} else {
		e.qt = qdranttest.Target(t)
	}
	e.qc = e.qt.Client(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	e.adm = kadm.NewClient(cl)
	prefix := "e2e" + e.id
	for _, base := range sample.DefaultTenants {
		e.tenants = append(e.tenants, prefix+"-"+base)
	}
	t.Cleanup(func() { e.wipeGraph(t) })
	e.topic = e.createTopic("ragstream-e2e-"+e.id, e.partitions)
	return e
}

func uniqueID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// drvURI is the Bolt URI of the shared Neo4j.
func (e *env) drvURI() string { return testenv.Neo4jURI(e.t) }

// name returns a unique name for a group, collection or client.
func (e *env) name(kind string) string { return "e2e-" + e.id + "-" + kind }

// collectionName returns a unique Qdrant collection name and deletes the
// collection when the test ends (a real Qdrant keeps it otherwise).
func (e *env) collectionName(kind string) string {
	name := "e2e_" + e.id + "_" + kind
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeCall)
		defer cancel()
		if err := e.qc.DeleteCollection(ctx, name); err != nil && e.qt.Real {
			e.t.Logf("delete collection %s: %v", name, err)
		}
	})
	return name
}

// sampleOptions returns o with this test's tenants.
func (e *env) sampleOptions(o sample.Options) sample.Options {
	o.Tenants = e.tenants
	o.Dims = dims
	return o
}

func (e *env) createTopic(name string, partitions int32) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaCallTO)
	defer cancel()
	resp, err := e.adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		e.t.Fatalf("create topic %s (%d partitions): %v", name, partitions, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), kafkaCallTO)
		defer cancel()
		_, _ = e.adm.DeleteTopics(ctx, name)
	})
	// A topic is usable once every partition has a leader.
	deadline := time.Now().Add(kafkaCallTO)
	for {
		md, err := e.adm.Metadata(ctx, name)
		if err == nil {
			if td, ok := md.Topics[name]; ok && td.Err == nil && len(td.Partitions) == int(partitions) {
				ready := true
				for _, p := range td.Partitions {
					ready = ready && p.Err == nil && p.Leader >= 0
				}
				if ready {
					return name
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("topic %s has no leaders after %s: %v", name, kafkaCallTO, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wipeGraph deletes every node of the test's tenants.
func (e *env) wipeGraph(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sess := e.drv.NewSession(ctx, neo4jdrv.SessionConfig{})
	defer sess.Close(ctx)
	// CALL { } IN TRANSACTIONS needs an implicit transaction (Run), and keeps
	// a large tenant's delete within the heap.
	res, err := sess.Run(ctx, `
MATCH (n) WHERE (n:Chunk OR n:Entity OR n:ChunkTombstone) AND n.tenant IN $tenants
CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS`, map[string]any{"tenants": e.tenants})
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		t.Errorf("clean up the graph of tenants %v: %v", e.tenants, err)
	}
}

// toKafka turns sample records into records of the test's topic.
func (e *env) toKafka(recs []sample.Record) []*kgo.Record {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: e.topic, Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader(h))
		}
		out[i] = kr
	}
	return out
}

// produce writes recs to the test's topic and waits for every ack;
// afterwards each record carries its partition and offset. Records keyed
// alike land in one partition in order (Kafka's default partitioner). A
// record with Partition >= 0 and manual set goes to that partition.
func (e *env) produce(recs []*kgo.Record) []*kgo.Record {
	return e.produceTo(recs, false)
}

// produceManual writes recs to the partitions they name.
func (e *env) produceManual(recs []*kgo.Record) []*kgo.Record {
	return e.produceTo(recs, true)
}

func (e *env) produceTo(recs []*kgo.Record, manual bool) []*kgo.Record {
	e.t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(e.brokers...), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(len(recs) + 1)}
	if manual {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		e.t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Topic = e.topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce %d records to %s: %v", len(recs), e.topic, err)
	}
	return recs
}

// endOffsets returns the topic's end offset by partition.
func (e *env) endOffsets() map[int32]int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaCallTO)
	defer cancel()
	ends, err := e.adm.ListEndOffsets(ctx, e.topic)
	if err != nil {
		e.t.Fatalf("end offsets of %s: %v", e.topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			e.t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// committed returns the group's committed offsets of the topic by
// partition (partitions without a commit are absent).
func (e *env) committed(group string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kafkaCallTO)
	defer cancel()
	os, err := e.adm.FetchOffsetsForTopics(ctx, group, e.topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	out := map[int32]int64{}
	for p, o := range os[e.topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("offset of %s/%d: %w", e.topic, p, o.Err)
		}
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// progress returns how many records of the topic the group has committed,
// and how many there are.
func (e *env) progress(group string, ends map[int32]int64) (done, total int64, err error) {
	c, err := e.committed(group)
	if err != nil {
		return 0, 0, err
	}
	for p, end := range ends {
		total += end
		done += min(c[p], end)
	}
	return done, total, nil
}

// waitCommitted waits until the group has committed every record of the
// topic. It fails the test when a worker's partition stops (Err) or the
// wait runs out.
func (e *env) waitCommitted(group string, within time.Duration, ws ...*worker) {
	e.t.Helper()
	ends := e.endOffsets()
	deadline := time.Now().Add(within)
	for {
		for _, w := range ws {
			if err := w.c.Err(); err != nil {
				e.t.Fatalf("worker %s stopped a partition: %v", w.name, err)
			}
		}
		done, total, err := e.progress(group, ends)
		if err == nil && done == total {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("group %s committed %d of %d records within %s (last error %v)", group, done, total, within, err)
		}
		time.Sleep(pollEvery)
	}
}

// logBuf collects a worker's log lines; a failed test prints their tail.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// workerConfig configures an in-process worker.
type workerConfig struct {
	// name is the Kafka client id and the name in failure messages.
	name       string
	group      string
	collection string
	// options adjusts the pipeline options after the test defaults.
	options func(*pipeline.Options)
	hooks   pipeline.Hooks
	// follower replaces the Qdrant sink (the wait=false probe).
	follower func(*qdrant.Sink) pipeline.Sink
}

// worker is an in-process ragstream worker: pipeline.Consumer with the real
// Neo4j authority and the real Qdrant sink.
type worker struct {
	name   string
	c      *pipeline.Consumer
	logs   *logBuf
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// testOptions are the pipeline options of the tests: production defaults,
// with group timeouts short enough that a member leaving or joining is
// handled within seconds.
func testOptions(group, topic string) pipeline.Options {
	return pipeline.Options{
		Group:              group,
		Topics:             []string{topic},
		SessionTimeout:     10 * time.Second,
		RebalanceTimeout:   60 * time.Second,
		RevokeTimeout:      30 * time.Second,
		DrainTimeout:       30 * time.Second,
		CommitInterval:     20 * time.Millisecond,
		SinkDownBackoff:    200 * time.Millisecond,
		SinkDownMaxBackoff: 2 * time.Second,
		Retry: pipeline.RetryOptions{MaxAttempts: 10, InitialBackoff: 50 * time.Millisecond,
			MaxBackoff: 2 * time.Second, MaxElapsed: storeCall},
		Limits: event.Limits{Dims: dims},
	}
}

var (
	graphSetupOnce sync.Once
	graphSetupErr  error
)

// startWorker starts a worker that runs until stop or the end of the test.
func (e *env) startWorker(wc workerConfig) *worker {
	t := e.t
	t.Helper()
	n4, err := neo4j.New(neo4j.Config{URI: testenv.Neo4jURI(t), Timeout: storeCall, StoreText: true})
	if err != nil {
		t.Fatalf("neo4j sink: %v", err)
	}
	t.Cleanup(func() { _ = n4.Close(context.Background()) })
	graphSetupOnce.Do(func() {
		// Other test packages may create the same constraints at the same
		// moment; IF NOT EXISTS makes a retry safe.
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), storeCall)
			graphSetupErr = n4.Setup(ctx)
			cancel()
			if graphSetupErr == nil {
				return
			}
			time.Sleep(time.Second)
		}
	})
	if graphSetupErr != nil {
		t.Fatalf("neo4j setup: %v", graphSetupErr)
	}
	// The first connection of a driver must not be opened by two goroutines
	// at once: neo4j-go-driver v5.28.4 initialises its connector lazily
	// without synchronisation (connector.go:55), a data race -race reports.
	// ragstream run opens it in Setup before the consumer starts; so does
	// this Ping.
	pctx, pcancel := context.WithTimeout(context.Background(), storeCall)
	defer pcancel()
	if err := n4.Ping(pctx); err != nil {
		t.Fatalf("neo4j ping: %v", err)
	}
	qs, err := qdrant.New(qdrant.Config{Addr: e.qt.Addr(), APIKey: e.qt.APIKey, Collection: wc.collection,
		VectorSize: dims, Distance: "Cosine", Timeout: storeCall, StoreText: true})
	if err != nil {
		t.Fatalf("qdrant sink: %v", err)
	}
	t.Cleanup(func() { _ = qs.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), storeCall)
	defer cancel()
	if err := qs.Setup(ctx); err != nil {
		t.Fatalf("qdrant setup of %s: %v", wc.collection, err)
	}
	var follower pipeline.Sink = qs
	if wc.follower != nil {
		follower = wc.follower(qs)
	}
	opts := testOptions(wc.group, e.topic)
	if wc.options != nil {
		wc.options(&opts)
	}
	logs := &logBuf{}
	log := zerolog.New(logs).With().Timestamp().Str("worker", wc.name).Logger().Level(zerolog.InfoLevel)
	kopts := []kgo.Opt{kgo.SeedBrokers(e.brokers...), kgo.ClientID(wc.name)}
	c, err := pipeline.New(opts, kopts, n4, follower, nil, log, wc.hooks)
	if err != nil {
		t.Fatalf("pipeline.New: %v", err)
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	w := &worker{name: wc.name, c: c, logs: logs, cancel: runCancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = c.Run(runCtx)
	}()
	t.Cleanup(func() {
		w.stop(t)
		if t.Failed() {
			t.Logf("log of worker %s:\n%s", w.name, tail(logs.String(), 60))
		}
	})
	return w
}

// stop cancels the worker's context and waits for Run, which must return
// nil: the context-cancel kill of the crash tests is this graceful path.
func (w *worker) stop(t testing.TB) {
	t.Helper()
	w.once.Do(func() {
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(3 * time.Minute):
			t.Errorf("worker %s did not stop within 3m", w.name)
			return
		}
		if w.err != nil {
			t.Errorf("worker %s: Run: %v", w.name, w.err)
		}
	})
}
