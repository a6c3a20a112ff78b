package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// TestBatchesClose checks that a batch closes on whichever of MaxRecords,
// MaxBytes and Linger comes first, and that every partition is written in
// offset order.
func TestBatchesClose(t *testing.T) {
	recSize := len(simpleStream("t", 1, 1, 0)[0].Key) + len(simpleStream("t", 1, 1, 0)[0].Value)
	tests := []struct {
		name       string
		n          int
		maxRecords int
		maxBytes   int
		linger     time.Duration
		trickle    bool // produce one record at a time, 30ms apart
		check      func(t *testing.T, batches []pipeline.BatchStats)
	}{
		{name: "count", n: 100, maxRecords: 10, linger: time.Minute,
			check: func(t *testing.T, bs []pipeline.BatchStats) {
				for _, b := range bs {
					if b.Records != 10 {
						t.Errorf("batch at %d has %d records, want 10", b.FirstOffset, b.Records)
					}
				}
			}},
		// Batches larger than the Records a partition keeps between
		// batches (1,000): the next batch takes fresh ones past those.
		{name: "count large", n: 7500, maxRecords: 2500, linger: time.Minute,
			check: func(t *testing.T, bs []pipeline.BatchStats) {
				if len(bs) != 3 {
					t.Errorf("got %d batches, want 3 of 2500", len(bs))
				}
				for _, b := range bs {
					if b.Records != 2500 {
						t.Errorf("batch at %d has %d records, want 2500", b.FirstOffset, b.Records)
					}
				}
			}},
		{name: "bytes", n: 99, maxRecords: 1000, maxBytes: 3*recSize + recSize/2, linger: 300 * time.Millisecond,
			check: func(t *testing.T, bs []pipeline.BatchStats) {
				for _, b := range bs {
					if b.Records != 3 || b.Bytes > 3*recSize+recSize/2 {
						t.Errorf("batch at %d has %d records, %d bytes; want 3 records within %d bytes",
							b.FirstOffset, b.Records, b.Bytes, 3*recSize+recSize/2)
					}
				}
			}},
		{name: "linger", n: 5, maxRecords: 1000, linger: time.Second, trickle: true,
			check: func(t *testing.T, bs []pipeline.BatchStats) {
				if len(bs) != 1 || bs[0].Records != 5 {
					t.Errorf("got %d batches (%v), want one of 5 records closed by linger", len(bs), bs)
				}
			}},
		{name: "no linger", n: 5, maxRecords: 1000, linger: pipeline.ZeroLinger, trickle: true,
			check: func(t *testing.T, bs []pipeline.BatchStats) {
				if len(bs) != 5 {
					t.Errorf("got %d batches, want 5: with no linger a batch closes when nothing more is buffered", len(bs))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("batches"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, tc.n, 0)
			if !tc.trickle {
				cl.produce(t, recs...)
			}
			auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			var log batchLog
			o := testOptions(group, topic)
			o.MaxRecords, o.MaxBytes, o.Linger = tc.maxRecords, tc.maxBytes, tc.linger
			start(t, cl, o, auth, sink, nil, pipeline.Hooks{Batch: log.hook})
			if tc.trickle {
				for _, r := range recs {
					cl.produce(t, r)
					time.Sleep(30 * time.Millisecond)
				}
			}
			waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)
			tc.check(t, log.all())
			checkOrder(t, auth, topic, 1)
			if got := len(auth.Offsets(topic, 0)); got != tc.n {
				t.Errorf("authority applied %d records, want %d", got, tc.n)
			}
		})
	}
}

// TestCommitNeverPassesUnwritten commits under transient store failures,
// lost replies and delays, and checks at every commit that each record
// below the committed offset is in the authority.
func TestCommitNeverPassesUnwritten(t *testing.T) {
	topic, group := uniq("commit"), uniq("g")
	const parts = 4
	cl := newKfake(t, topic, parts)
	recs := simpleStream(topic, parts, 2000, 0)
	cl.produce(t, recs...)

	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	auth.SetDelay(2 * time.Millisecond)
	stopFaults := make(chan struct{})
	var faults sync.WaitGroup
	faults.Go(func() {
		// A bounded number of faults, spaced so that the pipeline
		// outpaces them: faults faster than the retries would keep the
		// stores down for good.
		for i := range 45 {
			select {
			case <-stopFaults:
				return
			case <-time.After(10 * time.Millisecond):
			}
			switch i % 3 {
			case 0:
				sink.FailNext(1, pipeline.Transient(errors.New("qdrant unavailable")))
			case 1:
				auth.CrashAfterCommit(1)
			case 2:
				auth.FailNext(2, pipeline.Transient(errors.New("deadlock")))
			}
		}
	})
	defer func() { close(stopFaults); faults.Wait() }()

	var commits, violations atomic.Int64
	var firstViolation atomic.Value
	hooks := pipeline.Hooks{Committed: func(s pipeline.CommitStats) {
		commits.Add(1)
		applied := map[int64]bool{}
		for _, o := range auth.Offsets(s.Topic, s.Partition) {
			applied[o] = true
		}
		for o := int64(0); o < s.Offset; o++ {
			if !applied[o] {
				violations.Add(1)
				firstViolation.CompareAndSwap(nil, s)
				return
			}
		}
	}}
	start(t, cl, testOptions(group, topic), auth, sink, nil, hooks)
	waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d commits passed a record not in the authority; first %+v", v, firstViolation.Load())
	}
	if commits.Load() == 0 {
		t.Fatal("no commit observed")
	}
	want, err := pipelinetest.Expect(pipelinetest.Dims, recs)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "authority", auth.State(), want)
	sameState(t, "sink", sink.State(), want)
}

// TestTombstoneDeletes checks that a null value deletes its key in both
// stores, remembering the version, so an older upsert after it stays out.
func TestTombstoneDeletes(t *testing.T) {
	topic, group := uniq("tomb"), uniq("g")
	cl := newKfake(t, topic, 1)
	recs := []*kgo.Record{
		pipelinetest.Event{Tenant: "acme", ID: "a", Version: 3}.Record(topic, 0, ""),
		pipelinetest.Event{Tenant: "acme", ID: "b", Version: 1}.Record(topic, 0, ""),
	}
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	start(t, cl, testOptions(group, topic), auth, sink, nil, pipeline.Hooks{})
	waitCommitted(t, cl, group, topic, ends(recs), 10*time.Second)
	more := []*kgo.Record{
		pipelinetest.Tombstone(topic, 0, "acme", "a"),
		pipelinetest.Event{Tenant: "acme", ID: "a", Version: 2}.Record(topic, 0, ""), // older: stays out
	}
	cl.produce(t, more...)
	waitCommitted(t, cl, group, topic, ends(more), 10*time.Second)

	for _, s := range []*pipelinetest.Store{auth, sink} {
		e, _ := s.Get(pipeline.Key{Tenant: "acme", ID: "a"})
		if e.State != pipeline.Deleted || e.Version != 3 {
			t.Errorf("%s: acme/a = %+v, want deleted at version 3", s.Name(), e)
		}
		if e, _ := s.Get(pipeline.Key{Tenant: "acme", ID: "b"}); e.State != pipeline.Present {
			t.Errorf("%s: acme/b = %+v, want present", s.Name(), e)
		}
	}
	deletes := 0
	for _, l := range sink.Log() {
		if l.Key.ID == "a" && l.Action == pipeline.ActionDelete {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("sink received %d deletes of acme/a, want 1", deletes)
	}
}

// TestTransientAndSinkDown checks that transient errors are retried within
// the batch and that a store down pauses the partition and resumes it.
func TestTransientAndSinkDown(t *testing.T) {
	tests := []struct {
		name        string
		inject      func(auth, sink *pipelinetest.Store)
		wantRetries int64
		wantPause   bool
	}{
		{name: "transient", inject: func(a, _ *pipelinetest.Store) {
			a.FailNext(2, pipeline.Transient(errors.New("neo4j deadlock")))
		}, wantRetries: 2},
		{name: "sink down", inject: func(_, s *pipelinetest.Store) {
			s.FailNext(2, pipeline.SinkDown(errors.New("qdrant: collection missing")))
		}, wantPause: true},
		{name: "retries exhausted", inject: func(a, _ *pipelinetest.Store) {
			a.FailNext(5, errors.New("unclassified: connection reset")) // 4 attempts per cycle
		}, wantRetries: 3, wantPause: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("retry"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 20, 0)
			auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			tc.inject(auth, sink)
			var retries atomic.Int64
			var paused, resumed atomic.Bool
			hooks := pipeline.Hooks{
				Retry: func(_ string, _ int32, store string, _ pipeline.Class, _ error) {
					if store == "neo4j" {
						retries.Add(1)
					}
				},
				Paused: func(_ string, _ int32, r pipeline.PauseReason) {
					if r == pipeline.PauseSinkDown {
						paused.Store(true)
					}
				},
				Resumed: func(_ string, _ int32, r pipeline.PauseReason) {
					if r == pipeline.PauseSinkDown {
						resumed.Store(true)
					}
				},
			}
			cl.produce(t, recs...)
			start(t, cl, testOptions(group, topic), auth, sink, nil, hooks)
			waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)
			if got := retries.Load(); got < tc.wantRetries {
				t.Errorf("%d retries, want at least %d", got, tc.wantRetries)
			}
			if paused.Load() != tc.wantPause || resumed.Load() != tc.wantPause {
				t.Errorf("sink-down pause %v, resume %v; want %v", paused.Load(), resumed.Load(), tc.wantPause)
			}
			want, _ := pipelinetest.Expect(pipelinetest.Dims, recs)
			sameState(t, "authority", auth.State(), want)
			sameState(t, "sink", sink.State(), want)
		})
	}
}

// TestBackpressure blocks the stores with 100k records in the topic: each
// partition must hold at most MaxInflightBatches-1 batches of records plus
// one fetch, with its fetching paused, and everything must flow once the
// stores return.
func TestBackpressure(t *testing.T) {
	if testing.Short() {
		t.Skip("produces 100k records")
	}
	topic, group := uniq("bp"), uniq("g")
	const parts = 2
	cl := newKfake(t, topic, parts)
	recs := simpleStream(topic, parts, 100_000, 0)
	// Uncompressed record batches of at most 16 KiB, so that a fetch's
	// record count is bounded by its bytes.
	const fetchBytes = 16 << 10
	cl.produceWith(t, []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(fetchBytes)}, recs...)
	smallest := len(recs[0].Key) + len(recs[0].Value)
	for _, r := range recs {
		smallest = min(smallest, len(r.Key)+len(r.Value))
	}

	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	unblock := auth.Block()
	defer unblock()
	var consumed [parts]atomic.Int64
	var bpPaused atomic.Int64
	hooks := pipeline.Hooks{
		Consumed: func(_ string, p int32, n, _ int) { consumed[p].Add(int64(n)) },
		Paused: func(_ string, _ int32, r pipeline.PauseReason) {
			if r == pipeline.PauseBackpressure {
				bpPaused.Add(1)
			}
		},
	}
	o := testOptions(group, topic)
	o.MaxRecords, o.MaxInflightBatches, o.Linger = 500, 2, pipeline.ZeroLinger
	o.FetchMaxPartitionBytes = fetchBytes
	r := start(t, cl, o, auth, sink, nil, hooks)
	// A fetch returns up to fetchBytes for a partition, or one record
	// batch whole when the first is larger (at most fetchBytes here too).
	limit := int64(o.MaxRecords*(o.MaxInflightBatches-1) + 2*fetchBytes/smallest)
	t.Logf("limit %d records (smallest record %d bytes)", limit, smallest)

	waitFor(t, 10*time.Second, "both partitions paused", func() bool {
		st := r.c.Status()
		n := 0
		for _, s := range st {
			if s.Paused&pipeline.PauseBackpressure != 0 {
				n++
			}
		}
		return n == parts
	})
	time.Sleep(500 * time.Millisecond) // give fetching every chance to overrun
	for p := range parts {
		if got := consumed[p].Load(); got > limit || got == 0 {
			t.Errorf("partition %d: %d records handed to the worker with the store blocked, want 1..%d", p, got, limit)
		}
	}
	for _, s := range r.c.Status() {
		if int64(s.Buffered) > limit {
			t.Errorf("partition %d buffers %d records, want at most %d", s.Partition, s.Buffered, limit)
		}
	}
	unblock()
	waitCommitted(t, cl, group, topic, ends(recs), 120*time.Second)
	checkOrder(t, auth, topic, parts)
	if got := len(auth.Offsets(topic, 0)) + len(auth.Offsets(topic, 1)); got != len(recs) {
		t.Errorf("authority applied %d records, want %d", got, len(recs))
	}
}

// TestDrain checks the graceful stop: the batch in flight when the context
// is cancelled finishes and is committed, and nothing unwritten is; with a
// store that never returns, the batch is abandoned uncommitted within the
// drain deadline.
func TestDrain(t *testing.T) {
	t.Run("finishes in-flight", func(t *testing.T) {
		topic, group := uniq("drain"), uniq("g")
		cl := newKfake(t, topic, 1)
		recs := simpleStream(topic, 1, 200, 0)
		cl.produce(t, recs...)
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		auth.SetDelay(150 * time.Millisecond)
		o := testOptions(group, topic)
		o.MaxRecords = 10
		r := start(t, cl, o, auth, sink, nil, pipeline.Hooks{})
		waitFor(t, 10*time.Second, "three batches", func() bool { return len(auth.Offsets(topic, 0)) >= 30 })
		calls := auth.Calls()
		waitFor(t, 10*time.Second, "a batch in flight", func() bool { return auth.Calls() > calls })
		r.stop(t)
		applied := len(auth.Offsets(topic, 0))
		if applied%10 != 0 || applied < 40 {
			t.Errorf("applied %d records, want whole batches including the one in flight at cancel", applied)
		}
		if got := cl.committed(t, group, topic)[0]; got != int64(applied) {
			t.Errorf("committed %d after drain, want %d (every applied record, nothing more)", got, applied)
		}
	})
	t.Run("deadline abandons", func(t *testing.T) {
		topic, group := uniq("drain"), uniq("g")
		cl := newKfake(t, topic, 1)
		recs := simpleStream(topic, 1, 30, 0)
		cl.produce(t, recs[:10]...)
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		o := testOptions(group, topic)
		o.MaxRecords, o.DrainTimeout = 10, 400*time.Millisecond
		r := start(t, cl, o, auth, sink, nil, pipeline.Hooks{})
		waitCommitted(t, cl, group, topic, map[int32]int64{0: 10}, 10*time.Second)
		unblock := auth.Block()
		defer unblock()
		calls := auth.Calls()
		cl.produce(t, recs[10:]...)
		waitFor(t, 10*time.Second, "a batch in flight", func() bool { return auth.Calls() > calls })
		began := time.Now()
		r.stop(t)
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("stop took %s with a drain deadline of %s", d, o.DrainTimeout)
		}
		if got := cl.committed(t, group, topic)[0]; got != 10 {
			t.Errorf("committed %d, want 10: the abandoned batch must stay uncommitted", got)
		}
		if auth.Cancelled() == 0 {
			t.Error("the blocked store call was not cancelled")
		}
		if !strings.Contains(r.logs.String(), "abandoned uncommitted") {
			t.Errorf("log does not say the batch was abandoned:\n%s", r.logs.String())
		}
	})
}

// TestRevoke adds a second member while the first is writing: the revoked
// partitions' in-flight batches are finished and committed before the
// other member takes them, so no record is applied twice; with the store
// stuck, the batch is abandoned at the revoke deadline and nothing of it is
// committed.
func TestRevoke(t *testing.T) {
	t.Run("commits finished batch", func(t *testing.T) {
		topic, group := uniq("revoke"), uniq("g")
		const parts = 4
		cl := newKfake(t, topic, parts)
		recs := simpleStream(topic, parts, 400, 0)
		cl.produce(t, recs...)
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		auth.SetDelay(40 * time.Millisecond)
		o := testOptions(group, topic)
		o.MaxRecords = 10
		var revokedA atomic.Int64
		var logA, logB batchLog
		start(t, cl, o, auth, sink, nil, pipeline.Hooks{Batch: logA.hook,
			Revoked: func(_ string, _ int32, lost bool) {
				if !lost {
					revokedA.Add(1)
				}
			}})
		waitFor(t, 10*time.Second, "first member writing", func() bool { return logA.records.Load() >= 20 })
		start(t, cl, o, auth, sink, nil, pipeline.Hooks{Batch: logB.hook})
		waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
		if revokedA.Load() == 0 {
			t.Fatal("the first member had no partition revoked")
		}
		if logB.records.Load() == 0 {
			t.Error("the second member wrote nothing")
		}
		checkOrder(t, auth, topic, parts) // fails on a record applied twice
		want, _ := pipelinetest.Expect(pipelinetest.Dims, recs)
		sameState(t, "authority", auth.State(), want)
	})
	t.Run("store stuck abandons", func(t *testing.T) {
		topic, group := uniq("revoke"), uniq("g")
		const parts = 2
		cl := newKfake(t, topic, parts)
		recs := simpleStream(topic, parts, 40, 0)
		cl.produce(t, recs...)
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		unblock := auth.Block()
		defer unblock()
		o := testOptions(group, topic)
		o.MaxRecords, o.RevokeTimeout = 10, 300*time.Millisecond
		var revoked atomic.Int64
		a := start(t, cl, o, auth, sink, nil, pipeline.Hooks{Revoked: func(string, int32, bool) { revoked.Add(1) }})
		waitFor(t, 10*time.Second, "a batch in flight", func() bool { return auth.Calls() > 0 })
		start(t, cl, o, auth, sink, nil, pipeline.Hooks{})
		waitFor(t, 20*time.Second, "a revocation", func() bool { return revoked.Load() > 0 })
		if got := cl.committed(t, group, topic); len(got) != 0 {
			t.Errorf("committed %v while the store was stuck, want nothing", got)
		}
		if !strings.Contains(a.logs.String(), "revoke deadline") {
			t.Errorf("log does not report the abandoned batch:\n%s", a.logs.String())
		}
		unblock()
		waitCommitted(t, cl, group, topic, ends(recs), 30*time.Second)
		want, _ := pipelinetest.Expect(pipelinetest.Dims, recs)
		sameState(t, "authority", auth.State(), want)
	})
}

// TestLost fences the member while a batch is in flight and another
// finished batch waits for its commit: the write is cancelled, nothing more
// is committed, and after rejoining the member writes everything.
func TestLost(t *testing.T) {
	topic, group := uniq("lost"), uniq("g")
	cl := newKfake(t, topic, 1)
	recs := simpleStream(topic, 1, 20, 0)
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	unblock1 := auth.BlockAfter(1) // batch 1 passes, 2 waits
	defer unblock1()
	var lost atomic.Int64
	var batches atomic.Int64
	o := testOptions(group, topic)
	o.MaxRecords, o.Linger = 5, pipeline.ZeroLinger
	// The first batch is committed at once; the second waits for the next
	// commit slot, which only comes after the loss.
	o.CommitInterval = time.Minute
	r := start(t, cl, o, auth, sink, nil, pipeline.Hooks{
		Batch: func(pipeline.BatchStats) { batches.Add(1) },
		Revoked: func(_ string, _ int32, l bool) {
			if l {
				lost.Add(1)
			}
		}})
	waitCommitted(t, cl, group, topic, map[int32]int64{0: 5}, 10*time.Second)
	waitFor(t, 10*time.Second, "the second batch at the store", func() bool { return auth.Calls() == 2 })
	unblock := auth.BlockAfter(0) // from now on every call waits
	defer unblock()
	unblock1() // but the second batch goes through
	waitFor(t, 10*time.Second, "the second batch written", func() bool { return batches.Load() == 2 })
	waitFor(t, 10*time.Second, "the third batch in flight", func() bool { return auth.Calls() == 3 })
	cl.fake.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	waitFor(t, 10*time.Second, "the partition lost", func() bool { return lost.Load() > 0 })
	if auth.Cancelled() == 0 {
		t.Error("the in-flight write was not cancelled")
	}
	time.Sleep(100 * time.Millisecond)
	if got := cl.committed(t, group, topic)[0]; got != 5 {
		t.Errorf("committed %d after the loss, want 5: a lost partition commits nothing more", got)
	}
	unblock()
	waitFor(t, 30*time.Second, "every record written after rejoining", func() bool {
		seen := map[int64]bool{}
		for _, o := range auth.Offsets(topic, 0) {
			seen[o] = true
		}
		return len(seen) == len(recs)
	})
	r.stop(t) // the drain commits what the commit interval held back
	if got := cl.committed(t, group, topic)[0]; got != int64(len(recs)) {
		t.Errorf("committed %d after the drain, want %d", got, len(recs))
	}
	checkOrderPerAssignment(t, auth, topic, 1)
	want, _ := pipelinetest.Expect(pipelinetest.Dims, recs)
	sameState(t, "authority", auth.State(), want)
}

// deadLetters is a DeadLetter that keeps what it is sent.
type deadLetters struct {
	mu   sync.Mutex
	recs []dead
}

type dead struct {
	partition int32
	offset    int64
	stage     string
	class     string
	corr      string
}

func (d *deadLetters) Send(_ context.Context, recs []*pipeline.Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		d.recs = append(d.recs, dead{r.Src.Partition, r.Src.Offset, r.Stage, pipeline.ErrorClass(r.Err), r.CorrelationID})
	}
	return nil
}

func (d *deadLetters) all() []dead {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dead(nil), d.recs...)
}

// TestBadRecords puts one record that cannot be written at offset 5 of
// partition 0. Without a DLQ the partition stops loudly there — written
// nowhere, committed up to it, the other partitions unaffected; with one it
// goes to the DLQ and the partition goes on.
func TestBadRecords(t *testing.T) {
	tests := []struct {
		name   string
		bad    func(topic string) *kgo.Record
		reject bool // the authority refuses record "bad" for its content
		stage  string
		class  string
	}{
		{name: "not json", stage: pipeline.StageDecode, class: "decode",
			bad: func(topic string) *kgo.Record { return pipelinetest.Raw(topic, 0, "acme/x", `{"id": "x",`) }},
		{name: "schema", stage: pipeline.StageValidate, class: "schema",
			bad: func(topic string) *kgo.Record {
				return pipelinetest.Raw(topic, 0, "acme/x", `{"id":"x","tenant":"acme","text":"no vector"}`)
			}},
		{name: "key disagrees", stage: pipeline.StageValidate, class: "schema",
			bad: func(topic string) *kgo.Record {
				return pipelinetest.Raw(topic, 0, "acme/other", string(pipelinetest.Event{Tenant: "acme", ID: "x"}.Value()))
			}},
		{name: "no key no value", stage: pipeline.StageValidate, class: "schema",
			bad: func(topic string) *kgo.Record { return &kgo.Record{Topic: topic, Partition: 0} }},
		{name: "store refuses", reject: true, stage: "sink.neo4j", class: "store_rejected",
			bad: func(topic string) *kgo.Record {
				return pipelinetest.Event{Tenant: "acme", ID: "bad", Version: 1}.Record(topic, 0, "corr-bad")
			}},
	}
	for _, tc := range tests {
		for _, withDLQ := range []bool{false, true} {
			name := tc.name + "/no dlq"
			if withDLQ {
				name = tc.name + "/dlq"
			}
			t.Run(name, func(t *testing.T) {
				topic, group := uniq("bad"), uniq("g")
				const parts = 3
				cl := newKfake(t, topic, parts)
				var recs []*kgo.Record
				for i := range 5 {
					recs = append(recs, pipelinetest.Event{Tenant: "acme", ID: "before" + string(rune('a'+i)), Version: 1}.Record(topic, 0, ""))
				}
				recs = append(recs, tc.bad(topic))
				for i := range 5 {
					recs = append(recs, pipelinetest.Event{Tenant: "acme", ID: "after" + string(rune('a'+i)), Version: 1}.Record(topic, 0, ""))
				}
				others := simpleStream(topic, parts, 60, 0)
				var rest []*kgo.Record
				for _, r := range others {
					if r.Partition != 0 {
						rest = append(rest, r)
					}
				}
				recs = append(recs, rest...)
				cl.produce(t, recs...)

				auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
				if tc.reject {
					auth.RejectIf(func(r *pipeline.Record) error {
						if r.Event.ID == "bad" {
							return errors.New("constraint violated")
						}
						return nil
					})
				}
				var dl *deadLetters
				var dlArg pipeline.DeadLetter
				if withDLQ {
					dl = &deadLetters{}
					dlArg = dl
				}
				var stopped atomic.Int64
				o := testOptions(group, topic)
				o.MaxRecords = 3
				r := start(t, cl, o, auth, sink, dlArg, pipeline.Hooks{Stopped: func(string, int32, error) { stopped.Add(1) }})

				want := ends(recs)
				if !withDLQ {
					want[0] = 5
				}
				waitCommitted(t, cl, group, topic, want, 20*time.Second)
				offs := auth.Offsets(topic, 0)
				if withDLQ {
					got := dl.all()
					if len(got) != 1 || got[0].offset != 5 || got[0].stage != tc.stage || got[0].class != tc.class {
						t.Fatalf("dead letters %+v, want one at offset 5, stage %s, class %s", got, tc.stage, tc.class)
					}
					if len(offs) != 10 {
						t.Errorf("partition 0: applied %v, want the 10 good records", offs)
					}
					if err := r.c.Err(); err != nil {
						t.Errorf("Err() = %v with a DLQ, want nil", err)
					}
					return
				}
				time.Sleep(100 * time.Millisecond) // give a wrong commit past the record time to land
				if got := cl.committed(t, group, topic)[0]; got != 5 {
					t.Errorf("partition 0 committed %d, want 5 (up to the bad record)", got)
				}
				if len(offs) != 5 || offs[len(offs)-1] != 4 {
					t.Errorf("partition 0: applied %v, want offsets 0..4 and nothing at or after the bad record", offs)
				}
				for _, l := range sink.Log() {
					if l.Partition == 0 && l.Offset >= 5 {
						t.Errorf("sink received a write of offset %d at or after the bad record", l.Offset)
					}
				}
				var se *pipeline.StoppedError
				if err := r.c.Err(); !errors.As(err, &se) || se.Partition != 0 || se.Offset != 5 || se.Stage != tc.stage {
					t.Fatalf("Err() = %v, want a StoppedError at partition 0 offset 5, stage %s", err, tc.stage)
				}
				if !strings.Contains(r.c.Err().Error(), topic+"/0") || !strings.Contains(r.c.Err().Error(), "offset 5") {
					t.Errorf("error %q does not name the coordinates", r.c.Err())
				}
				if stopped.Load() != 1 {
					t.Errorf("Stopped hook called %d times, want 1", stopped.Load())
				}
				logs := r.logs.String()
				if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, `"offset":5`) || !strings.Contains(logs, `"partition":0`) {
					t.Errorf("no error log line with the coordinates:\n%s", logs)
				}
				for _, s := range r.c.Status() {
					if s.Partition == 0 && s.Paused&pipeline.PauseStopped == 0 {
						t.Errorf("partition 0 status %+v, want paused as stopped", s)
					}
				}
			})
		}
	}
}
