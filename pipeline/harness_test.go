package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

func TestMain(m *testing.M) {
	zerolog.TimeFieldFormat = "15:04:05.000000"
	goleak.VerifyTestMain(m)
}

// cluster is where a test's topic lives: an in-process kfake cluster, or the
// real Kafka of RAGSTREAM_TEST_KAFKA_BROKERS.
type cluster struct {
	addrs []string
	fake  *kfake.Cluster
	real  bool
}

// newKfake starts an in-process cluster with topic of n partitions.
func newKfake(t testing.TB, topic string, n int32) *cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, topic),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &cluster{addrs: c.ListenAddrs(), fake: c}
}

// newRealKafka creates topic (n partitions) on the real test Kafka; it skips,
// or fails under CI=true, when RAGSTREAM_TEST_KAFKA_BROKERS is unset.
func newRealKafka(t testing.TB, topic string, n int32) *cluster {
	t.Helper()
	addrs := testenv.KafkaBrokers(t)
	adm := admin(t, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, n, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s on %v: %v", topic, addrs, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin(t, addrs).DeleteTopics(ctx, topic)
	})
	return &cluster{addrs: addrs, real: true}
}

func admin(t testing.TB, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// produce writes recs (each with its Topic and Partition) and waits for
// every ack; afterwards each record carries its offset.
func (c *cluster) produce(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	c.produceWith(t, nil, recs...)
}

// produceWith is produce with more producer options.
func (c *cluster) produceWith(t testing.TB, opts []kgo.Opt, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1 << 20)}, opts...)...)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// committed returns the group's committed offsets of topic by partition.
func (c *cluster) committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := admin(t, c.addrs).FetchOffsetsForTopics(ctx, group, topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
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

// logBuf collects a consumer's log lines; a failed test prints them.
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

// testOptions are Options with timeouts fit for tests.
func testOptions(group, topic string) pipeline.Options {
	return pipeline.Options{
		Group:              group,
		Topics:             []string{topic},
		SessionTimeout:     6 * time.Second, // Kafka's group.min.session.timeout.ms
		RebalanceTimeout:   10 * time.Second,
		RevokeTimeout:      2 * time.Second,
		DrainTimeout:       4 * time.Second,
		MaxRecords:         50,
		Linger:             20 * time.Millisecond,
		CommitInterval:     10 * time.Millisecond,
		SinkDownBackoff:    20 * time.Millisecond,
		SinkDownMaxBackoff: 100 * time.Millisecond,
		Retry: pipeline.RetryOptions{MaxAttempts: 4, InitialBackoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, MaxElapsed: 5 * time.Second},
		Limits: eventLimits(),
	}
}

// running is a consumer started by start.
type running struct {
	c      *pipeline.Consumer
	logs   *logBuf
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// start runs a consumer until the test ends (or stop).
func start(t testing.TB, cl *cluster, opts pipeline.Options, auth pipeline.Authority, sink pipeline.Sink,
	dl pipeline.DeadLetter, hooks pipeline.Hooks) *running {
	t.Helper()
	logs := &logBuf{}
	log := zerolog.New(logs).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	c, err := pipeline.New(opts, []kgo.Opt{kgo.SeedBrokers(cl.addrs...), kgo.HeartbeatInterval(100 * time.Millisecond)},
		auth, sink, dl, log, hooks)
	if err != nil {
		t.Fatalf("pipeline.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, logs: logs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("consumer log:\n%s", logs.String())
		}
	})
	return r
}

// stop cancels the consumer and waits for Run; Run must return nil.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("Run did not return within 30s of cancel")
		}
		if r.err != nil {
			t.Errorf("Run returned %v, want nil after a clean stop", r.err)
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCommitted waits until the group has committed want for every
// partition of want.
func waitCommitted(t testing.TB, cl *cluster, group, topic string, want map[int32]int64, timeout time.Duration) {
	t.Helper()
	var got map[int32]int64
	deadline := time.Now().Add(timeout)
	for {
		got = cl.committed(t, group, topic)
		ok := true
		for p, o := range want {
			if got[p] != o {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v, want %v (after %s)", got, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ends returns, per partition, the offset after the last of recs.
func ends(recs []*kgo.Record) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range recs {
		if r.Offset+1 > out[r.Partition] {
			out[r.Partition] = r.Offset + 1
		}
	}
	return out
}

// batchLog records the batches a consumer finished.
type batchLog struct {
	mu      sync.Mutex
	batches []pipeline.BatchStats
	records atomic.Int64
}

func (l *batchLog) hook(s pipeline.BatchStats) {
	l.mu.Lock()
	l.batches = append(l.batches, s)
	l.mu.Unlock()
	l.records.Add(int64(s.Records))
}

func (l *batchLog) all() []pipeline.BatchStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pipeline.BatchStats(nil), l.batches...)
}

// checkOrder fails when a store applied a partition's records out of
// offset order or twice.
func checkOrder(t testing.TB, s *pipelinetest.Store, topic string, partitions int32) {
	t.Helper()
	for p := range partitions {
		offs := s.Offsets(topic, p)
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Errorf("partition %d: offset %d applied after %d", p, offs[i], offs[i-1])
				break
			}
		}
	}
}

// sameState fails unless got equals want key by key.
func sameState(t testing.TB, name string, got, want map[pipeline.Key]pipelinetest.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d keys, want %d", name, len(got), len(want))
	}
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if n++; n <= 5 {
				t.Errorf("%s: key %s = %+v (present %v), want %+v", name, k, g, ok, w)
			}
		}
	}
	if n > 5 {
		t.Errorf("%s: %d keys differ in all", name, n)
	}
}

// uniq returns a name unique within the test binary run.
var uniqN atomic.Int64

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, uniqN.Add(1))
}
