package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// Culprit isolation (DESIGN.md §5): a batch a store refuses because of some
// of its records is split until only the culprits are left; they go to the
// DLQ with the stage of the store that refused each, and every other record
// is written once, in offset order.

// wholeRefusingSink is a follower that refuses a whole write, without naming
// anything, when it holds a write of a bad record (as Qdrant's
// InvalidArgument does); other writes go to its Store.
type wholeRefusingSink struct {
	*pipelinetest.Store
	bad func(*pipeline.Record) bool
}

func (s *wholeRefusingSink) Write(ctx context.Context, writes []pipeline.Write) error {
	for _, w := range writes {
		if s.bad(w.Record) {
			return pipeline.Permanent(errors.New("qdrant upsert: InvalidArgument: Wrong input: the request holds a bad point"))
		}
	}
	return s.Store.Write(ctx, writes)
}

func hasID(id string) func(*pipeline.Record) bool {
	return func(r *pipeline.Record) bool { return r.Event.ID == id }
}

// TestCulpritStageNamesTheRefusingStore puts a record the authority (neo4j)
// refuses next to one the follower (qdrant) refuses in one batch: each is
// dead-lettered with the stage of the store that refused it, however the
// stores report the refusal, and every other record is in both stores.
func TestCulpritStageNamesTheRefusingStore(t *testing.T) {
	const neo4jBad, qdrantBad = "c000011", "c000012"
	tests := []struct {
		name string
		// refuse sets up the authority to refuse neo4jBad and returns the
		// follower, which refuses qdrantBad.
		refuse func(auth, sink *pipelinetest.Store) pipeline.Sink
	}{
		{"neither store names the record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RefuseBatchIf(hasID(neo4jBad))
			return &wholeRefusingSink{Store: sink, bad: hasID(qdrantBad)}
		}},
		{"the follower names its record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RefuseBatchIf(hasID(neo4jBad))
			sink.RejectIf(func(r *pipeline.Record) error {
				if hasID(qdrantBad)(r) {
					return errors.New("point refused")
				}
				return nil
			})
			return sink
		}},
		{"the authority names its record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RejectIf(func(r *pipeline.Record) error {
				if hasID(neo4jBad)(r) {
					return errors.New("constraint violated")
				}
				return nil
			})
			return &wholeRefusingSink{Store: sink, bad: hasID(qdrantBad)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("stage"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 30, 0)
			cl.produce(t, recs...)
			auth, sinkStore := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			sink := tc.refuse(auth, sinkStore)
			dl := &deadLetters{}
			o := testOptions(group, topic)
			o.MaxRecords = 30
			start(t, cl, o, auth, sink, dl, pipeline.Hooks{})
			waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)

			got := dl.all()
			slices.SortFunc(got, func(a, b dead) int { return int(a.offset - b.offset) })
			want := []struct {
				offset int64
				stage  string
			}{{11, "sink.neo4j"}, {12, "sink.qdrant"}}
			if len(got) != len(want) {
				t.Fatalf("dead letters %+v, want offsets 11 (sink.neo4j) and 12 (sink.qdrant)", got)
			}
			for i, w := range want {
				if got[i].offset != w.offset || got[i].stage != w.stage || got[i].class != pipeline.ErrorClassStoreRejected {
					t.Errorf("dead letter %+v, want offset %d with stage %s and class %s", got[i], w.offset, w.stage, pipeline.ErrorClassStoreRejected)
				}
			}
			good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == 11 || r.Offset == 12 })
			wantState, err := pipelinetest.Expect(pipelinetest.Dims, good)
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, "authority", auth.State(), wantState)
			sameState(t, "follower", sinkStore.State(), wantState)
		})
	}
}

// TestIsolationWritesEachRecordOnce refuses a batch because of one record
// without naming it, among updates of its own key before and after it: the
// culprit alone is dead-lettered, the key ends at the update after it (the
// culprit's higher version is never written), and every other record
// reaches each store once and in offset order — the parts written while
// searching are not applied again.
func TestIsolationWritesEachRecordOnce(t *testing.T) {
	topic, group := uniq("once"), uniq("g")
	cl := newKfake(t, topic, 1)
	var recs []*kgo.Record
	for i := range 40 {
		ev := pipelinetest.Event{Tenant: "acme", ID: fmt.Sprintf("c%06d", i), Version: 1}
		switch i {
		case 20:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 1, Text: "first"}
		case 21:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 9, Text: "refused"}
		case 30:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 2, Text: "second"}
		}
		recs = append(recs, ev.Record(topic, 0, ""))
	}
	cl.produce(t, recs...)
	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	auth.RefuseBatchIf(func(r *pipeline.Record) bool { return r.Event.ID == "k" && r.Event.Version == 9 })
	dl := &deadLetters{}
	o := testOptions(group, topic)
	o.MaxRecords = 40
	var batches batchLog
	start(t, cl, o, auth, sink, dl, pipeline.Hooks{Batch: batches.hook})
	waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)

	if got := dl.all(); len(got) != 1 || got[0].offset != 21 || got[0].stage != "sink.neo4j" {
		t.Fatalf("dead letters %+v, want offset 21 only, at sink.neo4j", got)
	}
	good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == 21 })
	want, err := pipelinetest.Expect(pipelinetest.Dims, good)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "authority", auth.State(), want)
	sameState(t, "follower", sink.State(), want)
	if e := auth.State()[pipeline.Key{Tenant: "acme", ID: "k"}]; e.Version != 2 || e.Text != "second" {
		t.Errorf("key acme/k is at version %d %q, want 2 \"second\"", e.Version, e.Text)
	}
	checkOrder(t, auth, topic, 1)
	var sinkOffsets []int64
	for _, l := range sink.Log() {
		sinkOffsets = append(sinkOffsets, l.Offset)
	}
	for i := 1; i < len(sinkOffsets); i++ {
		if sinkOffsets[i] <= sinkOffsets[i-1] {
			t.Errorf("follower received offset %d after %d: a write repeated or out of order", sinkOffsets[i], sinkOffsets[i-1])
		}
	}
	var recorded int
	for _, b := range batches.all() {
		recorded += b.Records
	}
	if recorded != len(recs) {
		t.Errorf("batches finished %d records, want %d", recorded, len(recs))
	}
}

// suspecting is a store that refuses a batch (as authority) or a write (as
// follower) holding a bad record with a SuspectError naming the records
// suspect says (a constraint violation names a value, not a record);
// other calls go to its Store.
type suspecting struct {
	*pipelinetest.Store
	bad, suspect func(*pipeline.Record) bool
}

func (s *suspecting) refusal(recs []*pipeline.Record) error {
	var sus []*pipeline.Record
	refuse := false
	for _, r := range recs {
		refuse = refuse || s.bad(r)
		if s.suspect(r) {
			sus = append(sus, r)
		}
	}
	if !refuse {
		return nil
	}
	return pipeline.Permanent(&pipeline.SuspectError{Records: sus,
		Err: errors.New("ConstraintValidationFailed: already exists with label `Refused` and property `serial` = 'taken'")})
}

func (s *suspecting) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	var valid []*pipeline.Record
	for _, r := range b.Records {
		if r.Err == nil {
			valid = append(valid, r)
		}
	}
	if err := s.refusal(valid); err != nil {
		return err
	}
	return s.Store.Apply(ctx, b, follow)
}

func (s *suspecting) Write(ctx context.Context, writes []pipeline.Write) error {
	recs := make([]*pipeline.Record, len(writes))
	for i, w := range writes {
		recs[i] = w.Record
	}
	if err := s.refusal(recs); err != nil {
		return err
	}
	return s.Store.Write(ctx, writes)
}

// tracking is an authority that keeps the offsets of every call's valid
// records, and whether the call was marked pipeline.Isolating.
type tracking struct {
	pipeline.Authority
	mu        sync.Mutex
	calls     [][]int64
	isolating []bool
}

func (a *tracking) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	var offs []int64
	for _, r := range b.Records {
		if r.Err == nil {
			offs = append(offs, r.Src.Offset)
		}
	}
	a.mu.Lock()
	a.calls = append(a.calls, offs)
	a.isolating = append(a.isolating, pipeline.Isolating(ctx))
	a.mu.Unlock()
	return a.Authority.Apply(ctx, b, follow)
}

func (a *tracking) callsWith(off int64) (n int, alone bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.calls {
		if slices.Contains(c, off) {
			n++
			alone = alone || len(c) == 1
		}
	}
	return n, alone
}

func (a *tracking) singles() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []int64
	for _, c := range a.calls {
		if len(c) == 1 {
			out = append(out, c[0])
		}
	}
	return out
}

func (a *tracking) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// TestSuspectsTriedAlone: when a store's refusal points at suspects, the
// culprit is tried alone right away — in its batch once, then alone — and
// no record the store did not point at is ever tried alone; a suspect the
// store takes alone (a wrong guess) is written like the rest. The
// authority's suspects cost one transaction each, rolled back, and the
// batch is then written in one more. Nothing is applied twice and both
// stores hold every good record.
func TestSuspectsTriedAlone(t *testing.T) {
	const culprit = 17
	tests := []struct {
		name     string
		follower bool // the follower refuses, else the authority
		suspects []int64
	}{
		{"authority: the culprit alone", false, []int64{culprit}},
		{"authority: the culprit and an innocent record", false, []int64{5, culprit}},
		{"authority: the culprit, with its neighbours", false, []int64{culprit - 1, culprit, culprit + 1}},
		{"follower: the culprit alone", true, []int64{culprit}},
		{"follower: the culprit and an innocent record", true, []int64{5, culprit}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("suspects"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 40, 0)
			cl.produce(t, recs...)
			authStore, sinkStore := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			refusing := &suspecting{
				bad:     func(r *pipeline.Record) bool { return r.Src.Offset == culprit },
				suspect: func(r *pipeline.Record) bool { return slices.Contains(tc.suspects, r.Src.Offset) },
			}
			auth := &tracking{Authority: authStore}
			var sink pipeline.Sink = sinkStore
			stage := "sink.neo4j"
			if tc.follower {
				refusing.Store = sinkStore
				sink, stage = refusing, "sink.qdrant"
			} else {
				refusing.Store = authStore
				auth.Authority = refusing
			}
			dl := &deadLetters{}
			o := testOptions(group, topic)
			o.MaxRecords = 40
			var batches batchLog
			start(t, cl, o, auth, sink, dl, pipeline.Hooks{Batch: batches.hook})
			waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)

			if got := dl.all(); len(got) != 1 || got[0].offset != culprit || got[0].stage != stage {
				t.Fatalf("dead letters %+v, want offset %d only, at %s", got, culprit, stage)
			}
			if n, alone := auth.callsWith(culprit); n > 2 || !alone {
				t.Errorf("the culprit was in %d store calls (alone in one: %v), want 2: its batch, then alone", n, alone)
			}
			for _, off := range auth.singles() {
				if !slices.Contains(tc.suspects, off) {
					t.Errorf("offset %d was tried alone, but the store did not point at it (suspects %v)", off, tc.suspects)
				}
			}
			// The one batch's first call is an ordinary one; every call of
			// the search after it asks to be served first.
			auth.mu.Lock()
			if want := append([]bool{false}, slices.Repeat([]bool{true}, len(auth.isolating)-1)...); !slices.Equal(auth.isolating, want) {
				t.Errorf("calls marked isolating: %v, want %v", auth.isolating, want)
			}
			auth.mu.Unlock()
			if want := len(batches.all()) + len(tc.suspects) + 1; !tc.follower && auth.count() > want {
				t.Errorf("%d store calls for %d batches and %d suspects, want at most %d: the refused batch, each suspect alone, the batch without the culprit",
					auth.count(), len(batches.all()), len(tc.suspects), want)
			}
			good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == culprit })
			want, err := pipelinetest.Expect(pipelinetest.Dims, good)
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, "authority", authStore.State(), want)
			sameState(t, "follower", sinkStore.State(), want)
			checkOrder(t, authStore, topic, 1)
		})
	}
}

// TestNoDLQWritesNothingAfterTheCulprit: without a DLQ a refused record
// stops its partition, and nothing at or after it is written or committed
// (pipeline.StoppedError) — also when the culprit is in the middle of its
// batch and the isolation would otherwise write the records after it.
func TestNoDLQWritesNothingAfterTheCulprit(t *testing.T) {
	const culprit = 17
	bad := func(r *pipeline.Record) bool { return r.Src.Offset == culprit }
	tests := []struct {
		name string
		auth func(s *pipelinetest.Store) pipeline.Authority
	}{
		{"the store names it", func(s *pipelinetest.Store) pipeline.Authority {
			s.RejectIf(func(r *pipeline.Record) error {
				if bad(r) {
					return errors.New("constraint violated")
				}
				return nil
			})
			return s
		}},
		{"the store refuses the batch", func(s *pipelinetest.Store) pipeline.Authority {
			s.RefuseBatchIf(bad)
			return s
		}},
		{"the store points at it", func(s *pipelinetest.Store) pipeline.Authority {
			return &suspecting{Store: s, bad: bad, suspect: bad}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("nodlq"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 40, 0)
			cl.produce(t, recs...)
			store, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			var stopped sync.WaitGroup
			stopped.Add(1)
			var once sync.Once
			o := testOptions(group, topic)
			o.MaxRecords = 40
			start(t, cl, o, tc.auth(store), sink, nil, pipeline.Hooks{Stopped: func(_ string, _ int32, err error) {
				once.Do(stopped.Done)
			}})
			done := make(chan struct{})
			go func() { stopped.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the partition did not stop at the refused record")
			}
			waitCommitted(t, cl, group, topic, map[int32]int64{0: culprit}, 20*time.Second)
			for name, s := range map[string]*pipelinetest.Store{"authority": store, "follower": sink} {
				for _, l := range s.Log() {
					if l.Offset >= culprit {
						t.Errorf("%s holds offset %d, at or after the refused record %d", name, l.Offset, culprit)
					}
				}
				if n := len(s.State()); n != culprit {
					t.Errorf("%s holds %d keys, want the %d before the refused record", name, n, culprit)
				}
			}
		})
	}
}

// countingSink counts the writes (calls) its follower receives.
type countingSink struct {
	pipeline.Sink
	mu    sync.Mutex
	calls int
}

func (s *countingSink) Write(ctx context.Context, writes []pipeline.Write) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	return s.Sink.Write(ctx, writes)
}

// TestFollowerRefusalSearchedInOneTransaction: the follower refuses a batch
// whole, naming no point (a real Qdrant's "Wrong input"), because of two of
// its records, one of them an update between two others of its key. The
// culprits are found by writing halves to the follower alone, inside the
// authority's transaction: the authority applies the batch twice (refused,
// then without the culprits), not once per bisection step; the culprits
// alone are dead-lettered with stage sink.qdrant; the key of the refused
// update ends at the update after it; both stores hold every other record,
// and the follower receives each write once.
func TestFollowerRefusalSearchedInOneTransaction(t *testing.T) {
	topic, group := uniq("fsearch"), uniq("g")
	cl := newKfake(t, topic, 1)
	var recs []*kgo.Record
	for i := range 64 {
		ev := pipelinetest.Event{Tenant: "acme", ID: fmt.Sprintf("c%06d", i), Version: 1}
		switch i {
		case 20:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 1, Text: "first"}
		case 21:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 9, Text: "refused"}
		case 30:
			ev = pipelinetest.Event{Tenant: "acme", ID: "k", Version: 2, Text: "second"}
		}
		recs = append(recs, ev.Record(topic, 0, ""))
	}
	cl.produce(t, recs...)
	authStore, sinkStore := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	auth := &tracking{Authority: authStore}
	bad := func(r *pipeline.Record) bool {
		return (r.Event.ID == "k" && r.Event.Version == 9) || r.Event.ID == "c000050"
	}
	sink := &countingSink{Sink: &wholeRefusingSink{Store: sinkStore, bad: bad}}
	dl := &deadLetters{}
	o := testOptions(group, topic)
	o.MaxRecords = len(recs)
	start(t, cl, o, auth, sink, dl, pipeline.Hooks{})
	waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)

	got := dl.all()
	slices.SortFunc(got, func(a, b dead) int { return int(a.offset - b.offset) })
	if len(got) != 2 || got[0].offset != 21 || got[1].offset != 50 ||
		got[0].stage != "sink.qdrant" || got[1].stage != "sink.qdrant" {
		t.Fatalf("dead letters %+v, want offsets 21 and 50, both at sink.qdrant", got)
	}
	good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == 21 || r.Offset == 50 })
	want, err := pipelinetest.Expect(pipelinetest.Dims, good)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "authority", authStore.State(), want)
	sameState(t, "follower", sinkStore.State(), want)
	if e := authStore.State()[pipeline.Key{Tenant: "acme", ID: "k"}]; e.Version != 2 || e.Text != "second" {
		t.Errorf("key acme/k is at version %d %q, want 2 \"second\"", e.Version, e.Text)
	}
	if n := auth.count(); n != 2 {
		t.Errorf("the authority applied %d times, want 2 (the refused batch, then the batch without its culprits)", n)
	}
	seen := map[int64]bool{}
	for _, l := range sinkStore.Log() {
		if seen[l.Offset] {
			t.Errorf("the follower received the write of offset %d twice", l.Offset)
		}
		seen[l.Offset] = true
	}
	// One whole write, a bisection over 64 writes for two culprits, and the
	// re-folded key: far fewer than a write per record.
	if sink.calls > 24 {
		t.Errorf("the follower was called %d times for 64 writes and 2 culprits", sink.calls)
	}
	t.Logf("authority applies %d, follower calls %d", auth.count(), sink.calls)
}
