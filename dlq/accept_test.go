package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// TestAcceptance runs the acceptance end to end on kfake: the
// pipeline's consumer with in-memory stores and this package's Writer.
//
//  1. While the DLQ refuses produces, nothing at or after a poison record
//     is committed (nothing is dropped, the partition waits).
//  2. After recovery exactly the poison records are in the DLQ, once each,
//     byte-identical, with their class and stage; every offset commits.
//  3. After fixing the cause (the store accepts the record), replaying the
//     store_rejected record lands it, under its original correlation id.
//  4. A record that fails again returns to the DLQ with replay_count 1,
//     then 2, and is refused past the maximum (2).
func TestAcceptance(t *testing.T) {
	src := unique("events")
	c := newCluster(t, "kfake", src, 2)
	dlqTopic := src + ".dlq"
	good := func(id string, p int32) *kgo.Record {
		return pipelinetest.Event{Tenant: "acme", ID: id, Version: 1}.Record(src, p, "")
	}
	stored := c.produce(t,
		good("g0", 0),
		pipelinetest.Raw(src, 0, "acme/bad", "{not json"),
		good("g1", 0),
		good("g2", 1),
		good("r1", 1), // the store refuses it until the cause is fixed
		&kgo.Record{Topic: src, Partition: 1, Key: []byte("acme/s1"),
			Value: pipelinetest.Event{Tenant: "acme", ID: "s1", Dims: 3}.Value()}, // wrong vector length
		good("g3", 1),
	)
	poison := map[string]*kgo.Record{"acme/bad": stored[1], "acme/r1": stored[4], "acme/s1": stored[5]}

	w := newWriter(t, c, WriterConfig{ConnectHeaders: true, ProduceTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := w.EnsureTopic(ctx, src); err != nil {
		t.Fatalf("EnsureTopic: %v", err)
	}
	var down atomic.Bool
	var refused atomic.Int32
	down.Store(true)
	refuseProduce(c, dlqTopic, kerr.NotEnoughReplicas.Code, down.Load, &refused)

	qdrant, neo := pipelinetest.NewStore("qdrant"), pipelinetest.NewStore("neo4j")
	qdrant.RejectIf(func(r *pipeline.Record) error {
		if r.Key().ID == "r1" {
			return errors.New("payload refused: field too large")
		}
		return nil
	})
	group := unique("group")
	runConsumer(t, c, src, group, qdrant, neo, w)

	// 1. The DLQ is down: the pipeline keeps trying (and pauses the
	// partitions), and nothing at or after a poison record is committed.
	waitFor(t, 20*time.Second, "several refused DLQ produces", func() bool { return refused.Load() >= 3 })
	if got := c.committed(t, group, src); got[0] > 1 || got[1] > 1 {
		t.Fatalf("committed %v while the DLQ refuses every produce; want at most the poison offsets (p0: 1, p1: 1)", got)
	}
	if got := c.readAll(t, dlqTopic); len(got) != 0 {
		t.Fatalf("DLQ holds %d records while it refuses every produce", len(got))
	}

	// 2. Recovery.
	down.Store(false)
	waitCommitted(t, c, group, src, map[int32]int64{0: 3, 1: 4})
	dead := c.readAll(t, dlqTopic)
	if len(dead) != len(poison) {
		t.Fatalf("DLQ holds %d records %v, want exactly the %d poison records once each", len(dead), keys(dead), len(poison))
	}
	wantClass := map[string][2]string{"acme/bad": {"decode", "decode"}, "acme/r1": {"store_rejected", "sink.qdrant"},
		"acme/s1": {"schema", "validate"}}
	for _, d := range dead {
		s, ok := poison[string(d.Key)]
		if !ok {
			t.Fatalf("DLQ holds %q, not a poison record", d.Key)
		}
		delete(poison, string(d.Key))
		if string(d.Value) != string(s.Value) || !d.Timestamp.Equal(s.Timestamp) {
			t.Errorf("%s: DLQ value/timestamp %q/%v, want %q/%v", d.Key, d.Value, d.Timestamp, s.Value, s.Timestamp)
		}
		e := NewEntry(d)
		if wc := wantClass[string(d.Key)]; e.Class != wc[0] || e.Stage != wc[1] || len(e.Problems) > 0 {
			t.Errorf("%s: class %q stage %q problems %v, want %q %q", d.Key, e.Class, e.Stage, e.Problems, wc[0], wc[1])
		}
		if e.SourceTopic != src || e.SourcePartition != s.Partition || e.SourceOffset != s.Offset || e.ReplayCount != 0 {
			t.Errorf("%s: source %s/%d@%d replay %d, want %s/%d@%d replay 0", d.Key, e.SourceTopic,
				e.SourcePartition, e.SourceOffset, e.ReplayCount, src, s.Partition, s.Offset)
		}
	}
	for _, g := range []string{"g0", "g1", "g2", "g3"} {
		if _, ok := neo.Get(pipeline.Key{Tenant: "acme", ID: g}); !ok {
			t.Errorf("good record %s is not in the stores", g)
		}
	}

	// 3. Fix the cause and replay the store's refusals.
	qdrant.RejectIf(nil)
	rep, err := Replay(ctx, c.opts(), dlqTopic, Filter{Class: "store_rejected"}, ReplayOptions{MaxReplayCount: 2})
	if err != nil || rep.Replayed != 1 {
		t.Fatalf("replay of store_rejected: %+v, %v; want 1 replayed", rep, err)
	}
	r1 := pipeline.Key{Tenant: "acme", ID: "r1"}
	waitFor(t, 20*time.Second, "the replayed record in the stores", func() bool {
		_, a := qdrant.Get(r1)
		_, b := neo.Get(r1)
		return a && b
	})
	if e, _ := qdrant.Get(r1); e.CorrelationID != fmt.Sprintf("%s/1/%d", src, stored[4].Offset) {
		t.Errorf("replayed record stored with correlation id %q, want the original's derived id %s/1/%d",
			e.CorrelationID, src, stored[4].Offset)
	}

	// 4. A record that fails again comes back with replay_count 1, then 2,
	// and is refused at the maximum.
	latest := func() Entry {
		var last Entry
		last.ReplayCount = -1
		if err := Inspect(ctx, c.opts(), dlqTopic, Filter{Class: "decode"}, func(e Entry) error {
			if e.ReplayCount > last.ReplayCount {
				last = e
			}
			return nil
		}); err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		return last
	}
	for n := 1; n <= 3; n++ {
		e := latest()
		if e.ReplayCount != n-1 || string(e.Key) != "acme/bad" {
			t.Fatalf("latest decode failure in the DLQ: %q with replay_count %d, want acme/bad with %d", e.Key, e.ReplayCount, n-1)
		}
		one := Filter{Class: "decode", Partitions: []int32{e.Partition}, Offsets: &OffsetRange{From: e.Offset, To: e.Offset}}
		rep, err := Replay(ctx, c.opts(), dlqTopic, one, ReplayOptions{MaxReplayCount: 2})
		if err != nil {
			t.Fatalf("replay %d: %v", n, err)
		}
		if n == 3 {
			if rep.Replayed != 0 || rep.Refused != 1 || rep.RefusedRecords[0].ReplayCount != 2 ||
				!strings.Contains(rep.RefusedRecords[0].Reason, "maximum 2") {
				t.Fatalf("replay past the maximum: %+v; want it refused, naming the maximum", rep)
			}
			break
		}
		if rep.Replayed != 1 || rep.Refused != 0 {
			t.Fatalf("replay %d: %+v; want 1 replayed", n, rep)
		}
		waitFor(t, 20*time.Second, fmt.Sprintf("the record back in the DLQ with replay_count %d", n), func() bool {
			return latest().ReplayCount == n
		})
	}
}

// runConsumer runs the pipeline's consumer on src until the test ends.
func runConsumer(t *testing.T, c *cluster, src, group string, auth pipeline.Authority, sink pipeline.Sink, dl pipeline.DeadLetter) {
	t.Helper()
	logs := &logBuf{}
	opts := pipeline.Options{
		Group: group, Topics: []string{src},
		SessionTimeout: 3 * time.Second, RebalanceTimeout: 5 * time.Second, RevokeTimeout: 2 * time.Second,
		DrainTimeout: 4 * time.Second, MaxRecords: 50, Linger: 20 * time.Millisecond,
		CommitInterval: 10 * time.Millisecond, SinkDownBackoff: 20 * time.Millisecond, SinkDownMaxBackoff: 100 * time.Millisecond,
		Retry: pipeline.RetryOptions{MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, MaxElapsed: 2 * time.Second},
		Limits: event.DefaultLimits(pipelinetest.Dims),
	}
	cons, err := pipeline.New(opts, append(c.opts(), kgo.HeartbeatInterval(100*time.Millisecond)),
		auth, sink, dl, zerolog.New(logs).Level(zerolog.InfoLevel), pipeline.Hooks{})
	if err != nil {
		t.Fatalf("pipeline.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("consumer did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("consumer log:\n%s", logs.String())
		}
	})
}

// committed returns the group's committed offsets of topic by partition.
func (c *cluster) committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := c.admin(t).FetchOffsetsForTopics(ctx, group, topic)
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

func waitCommitted(t testing.TB, c *cluster, group, topic string, want map[int32]int64) {
	t.Helper()
	var got map[int32]int64
	waitFor(t, 30*time.Second, "the commit", func() bool {
		got = c.committed(t, group, topic)
		for p, o := range want {
			if got[p] != o {
				return false
			}
		}
		return true
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
		time.Sleep(20 * time.Millisecond)
	}
}
