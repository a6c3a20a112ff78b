package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cluster is where a test's topics live: an in-process kfake cluster, or
// the real Kafka of RAGSTREAM_TEST_KAFKA_BROKERS.
type cluster struct {
	name  string
	addrs []string
	fake  *kfake.Cluster
}

// clusterKinds are the clusters a test runs against: kfake always, real
// Kafka when configured (skipped, or failed under CI=true, when not).
var clusterKinds = []string{"kfake", "kafka"}

// newCluster returns a cluster of kind with topic of n partitions (when
// topic is not empty).
func newCluster(t *testing.T, kind, topic string, n int32) *cluster {
	t.Helper()
	switch kind {
	case "kfake":
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
		if topic != "" {
			opts = append(opts, kfake.SeedTopics(n, topic))
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			t.Fatalf("kfake: %v", err)
		}
		t.Cleanup(c.Close)
		return &cluster{name: kind, addrs: c.ListenAddrs(), fake: c}
	case "kafka":
		c := &cluster{name: kind, addrs: testenv.KafkaBrokers(t)}
		if topic != "" {
			c.createTopic(t, topic, n)
		}
		return c
	}
	t.Fatalf("unknown cluster kind %q", kind)
	return nil
}

// unique returns a topic name no other test run uses (real Kafka is shared).
func unique(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

func (c *cluster) opts() []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(c.addrs...)} }

func (c *cluster) admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(c.opts()...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates topic and, on real Kafka, deletes it (and its .dlq)
// when the test ends.
func (c *cluster) createTopic(t testing.TB, topic string, n int32, configs ...string) {
	t.Helper()
	cfg := map[string]*string{}
	for i := 0; i+1 < len(configs); i += 2 {
		cfg[configs[i]] = &configs[i+1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.admin(t).CreateTopic(ctx, n, 1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	c.dropAfter(t, topic)
	c.waitTopic(t, topic)
}

// waitTopic waits until the brokers' metadata shows topic with a leader
// for every partition (a real broker learns of a new topic a moment after
// its creation).
func (c *cluster) waitTopic(t testing.TB, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(c.opts()...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) > 0 {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.ErrorCode == 0 && p.Leader >= 0
			}
			if ready {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not in the metadata after 20s (%v)", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropAfter deletes topics from real Kafka when the test ends.
func (c *cluster) dropAfter(t testing.TB, topics ...string) {
	t.Helper()
	if c.fake != nil {
		return
	}
	adm := c.admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topics...)
	})
}

// produce writes recs with their Topic and Partition and returns them as
// the broker stored them (offsets and timestamps set).
func (c *cluster) produce(t testing.TB, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(c.opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
	return recs
}

// readAll returns every record of topic up to its end offsets now, by
// partition and offset order, with an independent plain consumer.
func (c *cluster) readAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := c.admin(t)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	byPart := map[int32][]*kgo.Record{}
	var fetchErrs []error // kept for the failure message
	// Each partition from offset 0, named: no offset reset to resolve on a
	// topic created moments ago (two CI runs waited a minute for some
	// partitions of a fresh DLQ topic with ConsumeTopics, no fetch error).
	// A client that brings nothing for 15 s is replaced by a new one that
	// goes on from the records read so far: one CI run still waited a
	// minute for two partitions, with no fetch error.
	for attempt := 1; len(want) > 0; attempt++ {
		parts := map[int32]kgo.Offset{}
		for p := range want {
			next := int64(0)
			if rs := byPart[p]; len(rs) > 0 {
				next = rs[len(rs)-1].Offset + 1
			}
			parts[p] = kgo.NewOffset().At(next)
		}
		if attempt > 1 {
			t.Logf("reading %s: nothing for 15 s from partitions %v; reading them again with a new client (attempt %d)", topic, want, attempt)
		}
		cl, err := kgo.NewClient(append(c.opts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))...)
		if err != nil {
			t.Fatalf("consumer: %v", err)
		}
		stall, cancelStall := context.WithTimeout(ctx, 15*time.Second)
		for len(want) > 0 && stall.Err() == nil {
			fs := cl.PollFetches(stall)
			fs.EachError(func(_ string, p int32, err error) {
				if len(fetchErrs) < 10 && !errors.Is(err, context.DeadlineExceeded) {
					fetchErrs = append(fetchErrs, fmt.Errorf("partition %d: %w", p, err))
				}
			})
			got := 0
			fs.EachRecord(func(r *kgo.Record) {
				got++
				byPart[r.Partition] = append(byPart[r.Partition], r)
				if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
					delete(want, r.Partition)
				}
			})
			if got > 0 {
				cancelStall()
				stall, cancelStall = context.WithTimeout(ctx, 15*time.Second)
			}
		}
		cancelStall()
		cl.Close()
		if err := ctx.Err(); err != nil && len(want) > 0 {
			t.Fatalf("reading %s: %v (still waiting for %v; fetch errors: %v)", topic, err, want, fetchErrs)
		}
	}
	var out []*kgo.Record
	for p := int32(0); len(byPart) > 0; p++ {
		out = append(out, byPart[p]...)
		delete(byPart, p)
	}
	return out
}

// partitions returns topic's partition count and replication factor.
func (c *cluster) partitions(t testing.TB, topic string) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tds, err := c.admin(t).ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		t.Fatalf("topic %s: missing (%v)", topic, td.Err)
	}
	return len(td.Partitions), len(td.Partitions[0].Replicas)
}

// logBuf collects log lines; a failed test prints them.
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

// newWriter returns a Writer on c, closed when the test ends.
func newWriter(t *testing.T, c *cluster, cfg WriterConfig, extra ...kgo.Opt) *Writer {
	t.Helper()
	logs := &logBuf{}
	w, err := NewWriter(cfg, append(c.opts(), extra...), zerolog.New(logs))
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Close(ctx)
		if t.Failed() {
			t.Logf("writer log:\n%s", logs.String())
		}
	})
	return w
}

// ensure creates source's DLQ topic with a generous deadline, as the
// worker does at start-up: Send's own deadline (ProduceTimeout) is meant
// for a produce, not a topic creation on a busy broker.
func ensure(t testing.TB, w *Writer, source string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.EnsureTopic(ctx, source); err != nil {
		t.Fatalf("EnsureTopic(%s): %v", source, err)
	}
}

// failed wraps src as a record the pipeline dead-letters.
func failed(src *kgo.Record, err error, stage string) *pipeline.Record {
	return &pipeline.Record{Src: src, Err: pipeline.Permanent(err), Stage: stage,
		CorrelationID: pipeline.CorrelationID(src)}
}

func decodeErr(msg string) error { return &event.Error{Class: event.ClassDecode, Msg: msg} }
func schemaErr(field, msg string) error {
	return &event.Error{Class: event.ClassSchema, Field: field, Msg: msg}
}
func storeErr(msg string) error { return errors.New(msg) }

// send calls w.Send with a generous deadline.
func send(t testing.TB, w *Writer, recs ...*pipeline.Record) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Send(ctx, recs)
}

func headerList(hs []kgo.RecordHeader) string {
	var b bytes.Buffer
	for _, h := range hs {
		fmt.Fprintf(&b, "  %s=%q\n", h.Key, h.Value)
	}
	return b.String()
}
