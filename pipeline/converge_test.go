package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// clusters runs a test against kfake and, when RAGSTREAM_TEST_KAFKA_BROKERS
// is set (required under CI=true), against the real Kafka.
func clusters(t *testing.T, partitions int32, run func(t *testing.T, cl *cluster, topic string)) {
	t.Run("kfake", func(t *testing.T) {
		topic := uniq("topic")
		run(t, newKfake(t, topic, partitions), topic)
	})
	t.Run("kafka", func(t *testing.T) {
		topic := uniq("ragstream-test-pipeline")
		run(t, newRealKafka(t, topic, partitions), topic)
	})
}

// TestCrashRestartConverges stops a consumer mid-stream the hard way — the
// drain deadline passes with writes in flight, and stores commit writes
// whose replies are lost — and restarts it: the stores must end in the
// state of a clean run, and agree with each other.
func TestCrashRestartConverges(t *testing.T) {
	const parts = 4
	clusters(t, parts, func(t *testing.T, cl *cluster, topic string) {
		recs := mixedStream(topic, parts, 3000, 7)
		cl.produce(t, recs...)
		want, err := pipelinetest.Expect(pipelinetest.Dims, recs)
		if err != nil {
			t.Fatal(err)
		}

		group := uniq("g")
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		auth.SetDelay(3 * time.Millisecond)
		o := testOptions(group, topic)
		o.MaxRecords, o.DrainTimeout = 40, 30*time.Millisecond
		var applied atomic.Int64
		first := start(t, cl, o, auth, sink, nil, pipeline.Hooks{Batch: func(s pipeline.BatchStats) {
			if applied.Add(int64(s.Records)) > 600 {
				auth.CrashAfterCommit(1) // a reply lost now and then, from here on
			}
		}})
		waitFor(t, 30*time.Second, "a third of the stream", func() bool { return applied.Load() >= 1000 })
		// Writes hang from here on: the drain deadline passes with batches in
		// flight, which are abandoned as a crash would leave them.
		calls := auth.Calls()
		unblock := auth.BlockAfter(0)
		waitFor(t, 10*time.Second, "a write hanging", func() bool { return auth.Calls() > calls })
		first.stop(t)
		unblock()
		if !strings.Contains(first.logs.String(), "abandoned uncommitted") {
			t.Fatalf("no batch was abandoned: the stop was not a crash\n%s", first.logs.String())
		}
		if got := cl.committed(t, group, topic); sum(got) >= int64(len(recs)) {
			t.Fatalf("committed %v before the restart: the crash came too late to test anything", got)
		}

		auth.SetDelay(0)
		auth.CrashAfterCommit(3)
		start(t, cl, o, auth, sink, nil, pipeline.Hooks{})
		waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
		sameState(t, "authority after restart", auth.State(), want)
		sameState(t, "sink after restart", sink.State(), want)

		cleanAuth, cleanSink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		clean := uniq("g-clean")
		start(t, cl, testOptions(clean, topic), cleanAuth, cleanSink, nil, pipeline.Hooks{})
		waitCommitted(t, cl, clean, topic, ends(recs), 60*time.Second)
		sameState(t, "restarted vs clean run", auth.State(), cleanAuth.State())
	})
}

// TestGroupSplit runs two, then three members of one group over the stream,
// and stops one of them mid-stream: the partitions are split among the
// members, every member writes, and the stores end in the state of a single
// clean consumer.
func TestGroupSplit(t *testing.T) {
	const parts = 6
	clusters(t, parts, func(t *testing.T, cl *cluster, topic string) {
		recs := mixedStream(topic, parts, 4000, 11)
		cl.produce(t, recs...)
		want, err := pipelinetest.Expect(pipelinetest.Dims, recs)
		if err != nil {
			t.Fatal(err)
		}
		group := uniq("g")
		auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
		// Slow enough that every partition is still being written when the
		// third member joins and when one leaves (a worker takes what a
		// fetch brings, all of a small stream at once).
		auth.SetDelay(20 * time.Millisecond)
		o := testOptions(group, topic)
		o.MaxRecords = 20

		var wrote [3]atomic.Int64
		var assigned [3]atomic.Int64
		member := func(i int) *running {
			return start(t, cl, o, auth, sink, nil, pipeline.Hooks{
				Batch:    func(s pipeline.BatchStats) { wrote[i].Add(int64(s.Records)) },
				Assigned: func(string, int32) { assigned[i].Add(1) },
			})
		}
		member(0)
		b := member(1)
		waitFor(t, 30*time.Second, "both members writing", func() bool {
			return wrote[0].Load() > 0 && wrote[1].Load() > 0
		})
		member(2)
		waitFor(t, 30*time.Second, "the third member writing", func() bool { return wrote[2].Load() > 0 })
		b.stop(t) // leaves mid-stream; its partitions move to the others
		if total := wrote[0].Load() + wrote[1].Load() + wrote[2].Load(); total >= int64(len(recs)) {
			t.Fatalf("the stream was done (%d records) before the member left", total)
		}
		waitCommitted(t, cl, group, topic, ends(recs), 90*time.Second)
		for i := range 3 {
			if assigned[i].Load() == 0 {
				t.Errorf("member %d was assigned %d partitions", i, assigned[i].Load())
			}
		}
		sameState(t, "authority", auth.State(), want)
		sameState(t, "sink", sink.State(), want)
		checkOrderPerAssignment(t, auth, topic, parts)
	})
}

// checkOrderPerAssignment fails when a partition's records went backwards
// other than by re-applying an uncommitted tail after a move: a replay
// restarts at or below the last applied offset, then climbs again.
func checkOrderPerAssignment(t *testing.T, s *pipelinetest.Store, topic string, parts int32) {
	t.Helper()
	for p := range parts {
		offs := s.Offsets(topic, p)
		seen := map[int64]bool{}
		for i, o := range offs {
			if i > 0 && o <= offs[i-1] && !seen[o] {
				t.Errorf("partition %d: offset %d applied after %d but never before", p, o, offs[i-1])
			}
			seen[o] = true
		}
	}
}

func sum(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// TestBisect makes the authority refuse whole batches that hold one bad
// record without saying which: the batch is bisected, the culprit
// dead-lettered, the rest written. When every record is refused alike the
// store counts as down instead, and nothing is dead-lettered.
func TestBisect(t *testing.T) {
	topic, group := uniq("bisect"), uniq("g")
	cl := newKfake(t, topic, 1)
	recs := simpleStream(topic, 1, 40, 0)
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	auth.RefuseBatchIf(func(r *pipeline.Record) bool { return r.Event.ID == "c000013" })
	dl := &deadLetters{}
	o := testOptions(group, topic)
	o.MaxRecords = 10
	start(t, cl, o, auth, sink, dl, pipeline.Hooks{})
	waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)
	got := dl.all()
	if len(got) != 1 || got[0].offset != 13 || got[0].class != "store_rejected" || got[0].stage != "sink.neo4j" {
		t.Fatalf("dead letters %+v, want offset 13 only, store_rejected at sink.neo4j", got)
	}
	if n := len(auth.State()); n != 39 {
		t.Errorf("authority holds %d chunks, want 39", n)
	}

	t.Run("refused alike", func(t *testing.T) {
		r := startRefusedAlike(t, false)
		r.refuse.Store(false)
		waitCommitted(t, r.cl, r.group, r.topic, ends(r.recs), 20*time.Second)
		if got := r.dl.all(); len(got) != 0 {
			t.Errorf("dead-lettered %+v although the store refused every record alike", got)
		}
	})

	// The follower's refusals are searched with the follower alone
	// (followSink); every write refused alone means the same there.
	t.Run("follower refused alike", func(t *testing.T) {
		r := startRefusedAlike(t, true)
		if n := len(r.auth.State()); n != 0 {
			t.Errorf("the authority holds %d chunks while the follower refuses everything, want 0", n)
		}
		r.refuse.Store(false)
		waitCommitted(t, r.cl, r.group, r.topic, ends(r.recs), 20*time.Second)
		if got := r.dl.all(); len(got) != 0 {
			t.Errorf("dead-lettered %+v although the follower refused every record alike", got)
		}
		want, err := pipelinetest.Expect(pipelinetest.Dims, r.recs)
		if err != nil {
			t.Fatal(err)
		}
		sameState(t, "authority", r.auth.State(), want)
		sameState(t, "follower", r.sink.State(), want)
	})
}

// refusedAlike is a consumer of 10 records whose authority (or, with
// follower, whose follower) refuses every record alike while refuse holds.
type refusedAlike struct {
	cl           *cluster
	topic, group string
	recs         []*kgo.Record
	auth, sink   *pipelinetest.Store
	dl           *deadLetters
	refuse       atomic.Bool
}

// startRefusedAlike starts it and returns once the partition has paused as
// sink down.
func startRefusedAlike(t *testing.T, follower bool) *refusedAlike {
	t.Helper()
	r := &refusedAlike{topic: uniq("bisect"), group: uniq("g"), dl: &deadLetters{}}
	r.cl = newKfake(t, r.topic, 1)
	r.recs = simpleStream(r.topic, 1, 10, 0)
	r.cl.produce(t, r.recs...)
	r.auth, r.sink = pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	r.refuse.Store(true)
	refusing := func(*pipeline.Record) bool { return r.refuse.Load() }
	var sink pipeline.Sink = r.sink
	if follower {
		sink = &wholeRefusingSink{Store: r.sink, bad: refusing}
	} else {
		r.auth.RefuseBatchIf(refusing)
	}
	var down atomic.Bool
	o := testOptions(r.group, r.topic)
	o.MaxRecords = 10
	start(t, r.cl, o, r.auth, sink, r.dl, pipeline.Hooks{Paused: func(_ string, _ int32, pr pipeline.PauseReason) {
		if pr == pipeline.PauseSinkDown {
			down.Store(true)
		}
	}})
	waitFor(t, 10*time.Second, "the partition paused as sink down", down.Load)
	return r
}

// TestDeadLetterDown checks that a DLQ that cannot take records pauses the
// partition (nothing committed past them) until it recovers.
func TestDeadLetterDown(t *testing.T) {
	topic, group := uniq("dlqdown"), uniq("g")
	cl := newKfake(t, topic, 1)
	recs := simpleStream(topic, 1, 5, 0)
	recs = append(recs, pipelinetest.Raw(topic, 0, "acme/x", "not json"))
	recs = append(recs, simpleStream(topic, 1, 3, 0)...)
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	dl := &flakyDeadLetters{failures: 6}
	o := testOptions(group, topic)
	o.MaxRecords = 100
	start(t, cl, o, auth, sink, dl, pipeline.Hooks{})
	waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)
	if dl.sent.Load() != 1 {
		t.Errorf("DLQ acknowledged %d records, want 1", dl.sent.Load())
	}
}

type flakyDeadLetters struct {
	failures int32
	calls    atomic.Int32
	sent     atomic.Int32
}

func (d *flakyDeadLetters) Send(_ context.Context, recs []*pipeline.Record) error {
	if d.calls.Add(1) <= d.failures {
		return errors.New("dlq: broker not available")
	}
	d.sent.Add(int32(len(recs)))
	return nil
}
