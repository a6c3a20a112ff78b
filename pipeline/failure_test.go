package pipeline_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/breaker"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// reporter is a fake admin.StatusReporter: it keeps each component's last
// report and every report in order.
type reporter struct {
	mu      sync.Mutex
	down    map[string]error
	history []string
}

func (r *reporter) ReportDown(component string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = map[string]error{}
	}
	r.down[component] = err
	r.history = append(r.history, component+" down: "+err.Error())
}

func (r *reporter) ReportUp(component string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, component)
	r.history = append(r.history, component+" up")
}

// isDown returns component's reason when it is reported down.
func (r *reporter) isDown(component string) (error, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err, ok := r.down[component]
	return err, ok
}

// everDown reports whether component was ever reported down.
func (r *reporter) everDown(component string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.history {
		if strings.HasPrefix(h, component+" down") {
			return true
		}
	}
	return false
}

// guarded are the stores of a test behind one breaker each, wired as cmd
// wires them: every transition goes to a reporter.
type guarded struct {
	auth pipeline.Authority
	sink pipeline.Sink
	dl   pipeline.DeadLetter
	rep  *reporter
	br   map[string]*breaker.Breaker

	mu      sync.Mutex
	changes []breaker.Change
}

func guard(t *testing.T, s breaker.Settings, auth, sink *pipelinetest.Store, dl pipeline.DeadLetter) *guarded {
	t.Helper()
	g := &guarded{rep: &reporter{}, br: map[string]*breaker.Breaker{}}
	onChange := func(c breaker.Change) {
		g.mu.Lock()
		g.changes = append(g.changes, c)
		g.mu.Unlock()
		if c.To == breaker.Closed {
			g.rep.ReportUp(c.Store)
		} else {
			g.rep.ReportDown(c.Store, fmt.Errorf("circuit breaker %s: %w", c.To, c.Err))
		}
	}
	for _, name := range []string{auth.Name(), sink.Name(), "dlq"} {
		b, err := breaker.New(name, s, onChange)
		if err != nil {
			t.Fatalf("breaker %s: %v", name, err)
		}
		t.Cleanup(b.Stop)
		g.br[name] = b
	}
	g.auth, g.sink = g.br[auth.Name()].Authority(auth), g.br[sink.Name()].Sink(sink)
	if dl != nil {
		g.dl = g.br["dlq"].DeadLetter(dl)
	}
	return g
}

// transitions returns the transitions of store's breaker so far.
func (g *guarded) transitions(store string) []breaker.Change {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []breaker.Change
	for _, c := range g.changes {
		if c.Store == store {
			out = append(out, c)
		}
	}
	return out
}

// pauses counts, per partition, the sink-down pauses and resumes.
type pauses struct {
	paused, resumed sync.Map // int32 → *atomic.Int32
}

func (p *pauses) hooks(h *pipeline.Hooks) {
	count := func(m *sync.Map, part int32) {
		v, _ := m.LoadOrStore(part, new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
	}
	h.Paused = func(_ string, part int32, r pipeline.PauseReason) {
		if r == pipeline.PauseSinkDown {
			count(&p.paused, part)
		}
	}
	h.Resumed = func(_ string, part int32, r pipeline.PauseReason) {
		if r == pipeline.PauseSinkDown {
			count(&p.resumed, part)
		}
	}
}

func (p *pauses) count(m *sync.Map, part int32) int32 {
	v, ok := m.Load(part)
	if !ok {
		return 0
	}
	return v.(*atomic.Int32).Load()
}

// sinkDownPaused counts the partitions Status reports paused for a store
// being down.
func sinkDownPaused(c *pipeline.Consumer) int {
	n := 0
	for _, s := range c.Status() {
		if s.Paused&pipeline.PauseSinkDown != 0 {
			n++
		}
	}
	return n
}

// landedOnce fails unless the authority applied every record of recs
// exactly once, in offset order, and the sink received every key once.
func landedOnce(t *testing.T, auth, sink *pipelinetest.Store, recs []*kgo.Record, partitions int32) {
	t.Helper()
	for p := range partitions {
		var want []int64
		for _, r := range recs {
			if r.Partition == p {
				want = append(want, r.Offset)
			}
		}
		if got := auth.Offsets(recs[0].Topic, p); !slices.Equal(got, want) {
			t.Errorf("partition %d: authority applied offsets %v, want each of %v once", p, got, want)
		}
	}
	seen := map[pipeline.Key]int{}
	for _, l := range sink.Log() {
		seen[l.Key]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("sink received key %s %d times, want once", k, n)
		}
	}
	want, _ := pipelinetest.Expect(pipelinetest.Dims, recs)
	sameState(t, "authority", auth.State(), want)
	sameState(t, "sink", sink.State(), want)
}

// TestBreakerPausesAndResumes: a sink that fails with transient errors
// opens its breaker after FailureThreshold failures; every partition then
// pauses its fetching, nothing is committed or dead-lettered, and the
// reporter says the sink is down. Once the sink is back, the half-open
// probe succeeds, the breaker closes, the reporter says up, the partitions
// resume and every record lands exactly once.
func TestBreakerPausesAndResumes(t *testing.T) {
	const parts = 3
	topic, group := uniq("breaker"), uniq("g")
	cl := newKfake(t, topic, parts)
	recs := simpleStream(topic, parts, 60, 0)
	cl.produce(t, recs...)

	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	dl := &pipelinetest.DeadLetters{}
	const outage = 2 * time.Second
	sink.FailFor(outage, pipeline.Transient(errors.New("qdrant upsert: Unavailable")))
	g := guard(t, breaker.Settings{FailureThreshold: 3, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxRequests: 1},
		auth, sink, dl)
	var ps pauses
	var retries atomic.Int32
	hooks := pipeline.Hooks{Retry: func(_ string, _ int32, store string, _ pipeline.Class, _ error) {
		if store == "qdrant" {
			retries.Add(1)
		}
	}}
	ps.hooks(&hooks)
	// A partition pauses for sink down while its batch is in delivery; with
	// a place per partition (MaxActiveBatches) every one has a batch there.
	// With fewer places the others wait for one, their fetching paused by
	// backpressure once their queue is full.
	o := testOptions(group, topic)
	o.MaxActiveBatches = parts
	r := start(t, cl, o, g.auth, g.sink, g.dl, hooks)

	waitFor(t, 20*time.Second, "qdrant reported down", func() bool { _, down := g.rep.isDown("qdrant"); return down })
	reason, _ := g.rep.isDown("qdrant")
	if !strings.Contains(reason.Error(), "Unavailable") {
		t.Errorf("qdrant reported down for %q, want the store's error", reason)
	}
	waitFor(t, 20*time.Second, "every partition paused for sink down", func() bool { return sinkDownPaused(r.c) == parts })
	if got := cl.committed(t, group, topic); len(got) != 0 {
		t.Errorf("committed %v while the sink is down, want nothing", got)
	}
	if _, down := g.rep.isDown("neo4j"); down || g.rep.everDown("dlq") {
		t.Errorf("reports %v: only qdrant is down", g.rep.history)
	}

	waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
	if err, down := g.rep.isDown("qdrant"); down {
		t.Errorf("qdrant still reported down after everything landed: %v", err)
	}
	for name, b := range g.br {
		if s := b.State(); s != breaker.Closed {
			t.Errorf("%s breaker %v at the end, want closed", name, s)
		}
	}
	if n := len(dl.Records()); n != 0 {
		t.Errorf("%d records dead-lettered for a sink outage, want none", n)
	}
	for p := range int32(parts) {
		if ps.count(&ps.paused, p) == 0 || ps.count(&ps.resumed, p) == 0 {
			t.Errorf("partition %d: %d sink-down pauses, %d resumes; want both", p, ps.count(&ps.paused, p), ps.count(&ps.resumed, p))
		}
	}
	if retries.Load() == 0 {
		t.Error("no retry of qdrant's transient errors was reported")
	}
	tr := g.transitions("qdrant")
	if len(tr) < 3 || tr[0].To != breaker.Open || tr[len(tr)-1].To != breaker.Closed {
		t.Errorf("qdrant breaker went %v, want open … half-open → closed", tr)
	}
	if len(g.transitions("neo4j")) != 0 {
		t.Errorf("the neo4j breaker moved (%v) for qdrant's failures inside its transactions", g.transitions("neo4j"))
	}
	landedOnce(t, auth, sink, recs, parts)
}

// TestSinkDownAnswerTripsAtOnce: a store answering with its own condition
// (authentication refused, collection missing) opens its breaker on that
// one answer, without retries, whatever the failure threshold.
func TestSinkDownAnswerTripsAtOnce(t *testing.T) {
	for _, store := range []string{"neo4j", "qdrant"} {
		t.Run(store, func(t *testing.T) {
			topic, group := uniq("down"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 10, 0)
			cl.produce(t, recs...)
			auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			failing := map[string]*pipelinetest.Store{"neo4j": auth, "qdrant": sink}[store]
			failing.FailNext(1, pipeline.SinkDown(fmt.Errorf("%s: authentication refused", store)))
			g := guard(t, breaker.Settings{FailureThreshold: 100, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxRequests: 1},
				auth, sink, nil)
			var retries atomic.Int32
			hooks := pipeline.Hooks{Retry: func(string, int32, string, pipeline.Class, error) { retries.Add(1) }}
			start(t, cl, testOptions(group, topic), g.auth, g.sink, nil, hooks)

			waitCommitted(t, cl, group, topic, ends(recs), 30*time.Second)
			tr := g.transitions(store)
			if len(tr) < 3 || tr[0].To != breaker.Open || !strings.Contains(tr[0].Err.Error(), "authentication refused") ||
				tr[len(tr)-1].To != breaker.Closed {
				t.Errorf("%s breaker went %v, want open (authentication refused) … closed", store, tr)
			}
			if !g.rep.everDown(store) {
				t.Errorf("%s never reported down: %v", store, g.rep.history)
			}
			if n := retries.Load(); n != 0 {
				t.Errorf("%d retries of a sink-down answer, want none", n)
			}
			landedOnce(t, auth, sink, recs, 1)
		})
	}
}

// TestRecordErrorsDoNotTrip: records a store refuses for their content go
// to the DLQ; the store answered, so its breaker does not move even with a
// threshold of one failure.
func TestRecordErrorsDoNotTrip(t *testing.T) {
	topic, group := uniq("reject"), uniq("g")
	cl := newKfake(t, topic, 2)
	recs := simpleStream(topic, 2, 40, 0)
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	sink.RejectIf(func(r *pipeline.Record) error {
		if r.Src.Offset%7 == 3 {
			return errors.New("wrong vector size")
		}
		return nil
	})
	dl := &pipelinetest.DeadLetters{}
	g := guard(t, breaker.Settings{FailureThreshold: 1, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1}, auth, sink, dl)
	start(t, cl, testOptions(group, topic), g.auth, g.sink, g.dl, pipeline.Hooks{})
	waitCommitted(t, cl, group, topic, ends(recs), 30*time.Second)

	var want []string
	for _, r := range recs {
		if r.Offset%7 == 3 {
			want = append(want, fmt.Sprintf("%d@%d store_rejected sink.qdrant", r.Partition, r.Offset))
		}
	}
	var got []string
	for _, d := range dl.Records() {
		got = append(got, fmt.Sprintf("%d@%d %s %s", d.Partition, d.Offset, d.Class, d.Stage))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dead-lettered %v, want %v", got, want)
	}
	g.mu.Lock()
	moved := slices.Clone(g.changes)
	g.mu.Unlock()
	if len(moved) != 0 {
		t.Errorf("breakers moved on record errors: %v", moved)
	}
}

// TestRetryCycleBounds: a cycle of transient errors ends after
// Retry.MaxAttempts attempts, or after Retry.MaxElapsed however many
// attempts are left; either way it trips the store's breaker with an
// ExhaustedError (sink down: nothing is dead-lettered) and the store is
// not called again while the breaker is open.
func TestRetryCycleBounds(t *testing.T) {
	tests := []struct {
		name    string
		retry   pipeline.RetryOptions
		delay   time.Duration
		check   func(t *testing.T, ex *pipeline.ExhaustedError, calls int)
		maxWait time.Duration
	}{
		{name: "attempts", retry: pipeline.RetryOptions{MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, MaxElapsed: time.Hour},
			check: func(t *testing.T, ex *pipeline.ExhaustedError, calls int) {
				if ex.Attempts != 3 || calls != 3 {
					t.Errorf("cycle ended after %d attempts (%d calls), want 3", ex.Attempts, calls)
				}
			}},
		{name: "elapsed", retry: pipeline.RetryOptions{MaxAttempts: 10_000, InitialBackoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, MaxElapsed: 500 * time.Millisecond}, delay: 50 * time.Millisecond,
			check: func(t *testing.T, ex *pipeline.ExhaustedError, calls int) {
				if ex.Attempts < 2 || ex.Attempts >= 10_000 || calls != ex.Attempts {
					t.Errorf("cycle ended after %d attempts (%d calls), want some, far below MaxAttempts", ex.Attempts, calls)
				}
				if ex.Elapsed < 500*time.Millisecond {
					t.Errorf("cycle ended after %s, before MaxElapsed", ex.Elapsed)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("cycle"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 5, 0)
			cl.produce(t, recs...)
			auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			auth.FailFor(time.Hour, pipeline.Transient(errors.New("neo4j: connection refused")))
			auth.SetDelay(tc.delay)
			dl := &pipelinetest.DeadLetters{}
			g := guard(t, breaker.Settings{FailureThreshold: 1_000_000, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1},
				auth, sink, dl)
			o := testOptions(group, topic)
			o.Retry = tc.retry
			var ps pauses
			var hooks pipeline.Hooks
			ps.hooks(&hooks)
			start(t, cl, o, g.auth, g.sink, g.dl, hooks)

			waitFor(t, 30*time.Second, "the neo4j breaker to open", func() bool { return len(g.transitions("neo4j")) > 0 })
			calls := auth.Calls()
			c := g.transitions("neo4j")[0]
			var ex *pipeline.ExhaustedError
			if c.To != breaker.Open || !errors.As(c.Err, &ex) {
				t.Fatalf("neo4j breaker went to %v for %v, want open for an ExhaustedError", c.To, c.Err)
			}
			if ex.Store != "neo4j" || pipeline.ClassOf(c.Err) != pipeline.ClassSinkDown {
				t.Errorf("ExhaustedError of store %q, class %v; want neo4j, sink_down", ex.Store, pipeline.ClassOf(c.Err))
			}
			tc.check(t, ex, calls)
			waitFor(t, 10*time.Second, "the partition to pause", func() bool { return ps.count(&ps.paused, 0) > 0 })
			time.Sleep(200 * time.Millisecond) // paused partitions retry every 20–100 ms
			if got := auth.Calls(); got != calls {
				t.Errorf("neo4j called %d more times with its breaker open", got-calls)
			}
			if len(dl.Records()) != 0 || len(cl.committed(t, group, topic)) != 0 {
				t.Errorf("dead-lettered %v, committed %v with the store down; want nothing", dl.Records(), cl.committed(t, group, topic))
			}
		})
	}
}

// TestCancellationStopsRetries: shutting down ends a retry cycle at once,
// whether it waits for its backoff or for a store call that hangs, and the
// cancelled call does not count against the store's breaker.
func TestCancellationStopsRetries(t *testing.T) {
	// Each case's threshold is one more than the failures it counts, so a
	// counted cancellation would open the breaker.
	tests := []struct {
		name      string
		threshold int
		inject    func(auth *pipelinetest.Store) (started func() bool)
	}{
		{"in a backoff", 2, func(auth *pipelinetest.Store) func() bool {
			auth.FailNext(1, pipeline.Transient(errors.New("neo4j: deadlock")))
			return func() bool { return auth.Calls() >= 1 }
		}},
		{"in a hung call", 1, func(auth *pipelinetest.Store) func() bool {
			unblock := auth.Block()
			_ = unblock // never: the call must end by cancellation
			return func() bool { return auth.Calls() >= 1 }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("cancel"), uniq("g")
			cl := newKfake(t, topic, 1)
			cl.produce(t, simpleStream(topic, 1, 5, 0)...)
			auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			started := tc.inject(auth)
			g := guard(t, breaker.Settings{FailureThreshold: tc.threshold, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1}, auth, sink, nil)
			o := testOptions(group, topic)
			const backoff = 2 * time.Minute
			o.Retry = pipeline.RetryOptions{MaxAttempts: 5, InitialBackoff: backoff, MaxBackoff: backoff, MaxElapsed: time.Hour}
			o.DrainTimeout = time.Second
			r := start(t, cl, o, g.auth, g.sink, nil, pipeline.Hooks{})
			waitFor(t, 20*time.Second, "the first store call", started)

			begin := time.Now()
			r.stop(t)
			if took := time.Since(begin); took > backoff/2 {
				t.Errorf("Run took %s to return after cancel, with a retry pending after %s", took, backoff)
			}
			if n := auth.Calls(); n != 1 {
				t.Errorf("neo4j called %d times, want 1: no retry after cancellation", n)
			}
			if tr := g.transitions("neo4j"); len(tr) != 0 {
				t.Errorf("neo4j breaker moved on a cancellation: %v", tr)
			}
			if len(cl.committed(t, group, topic)) != 0 {
				t.Error("committed an unwritten batch")
			}
		})
	}
}

// TestDeadLetterQueueDown: a dead-letter queue that keeps failing opens its
// own breaker and pauses the partition like a store that is down: nothing
// is committed past the record it cannot take, nothing is dropped, and
// after it recovers the record is in it once and everything lands.
func TestDeadLetterQueueDown(t *testing.T) {
	topic, group := uniq("dlqdown"), uniq("g")
	cl := newKfake(t, topic, 1)
	recs := simpleStream(topic, 1, 5, 0)
	recs = append(recs, pipelinetest.Raw(topic, 0, "acme/bad", "not json"))
	for i := range 3 {
		recs = append(recs, pipelinetest.Event{Tenant: "acme", ID: fmt.Sprintf("late%d", i), Version: 1}.Record(topic, 0, ""))
	}
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	dl := &pipelinetest.DeadLetters{}
	dl.FailFor(2*time.Second, pipeline.Transient(errors.New("dlq: NOT_ENOUGH_REPLICAS")))
	g := guard(t, breaker.Settings{FailureThreshold: 3, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxRequests: 1}, auth, sink, dl)
	r := start(t, cl, testOptions(group, topic), g.auth, g.sink, g.dl, pipeline.Hooks{})

	waitFor(t, 20*time.Second, "dlq reported down", func() bool { _, down := g.rep.isDown("dlq"); return down })
	waitFor(t, 10*time.Second, "the partition paused", func() bool { return sinkDownPaused(r.c) == 1 })
	if got := cl.committed(t, group, topic); len(got) != 0 {
		t.Errorf("committed %v while the DLQ is down, want nothing", got)
	}
	waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
	got := dl.Records()
	if len(got) != 1 || got[0].Offset != 5 || got[0].Class != pipeline.ErrorClassDecode || got[0].Stage != pipeline.StageDecode {
		t.Errorf("DLQ holds %+v, want the record at offset 5 once (decode)", got)
	}
	if _, down := g.rep.isDown("dlq"); down {
		t.Error("dlq still reported down after it recovered")
	}
	good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == 5 })
	want, _ := pipelinetest.Expect(pipelinetest.Dims, good)
	sameState(t, "authority", auth.State(), want)
	sameState(t, "sink", sink.State(), want)
}
