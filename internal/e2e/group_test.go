package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
)

// assigned returns the partitions a worker holds now.
func (w *worker) assigned() []int32 {
	var ps []int32
	for _, s := range w.c.Status() {
		ps = append(ps, s.Partition)
	}
	return ps
}

// split reports whether the workers hold disjoint, non-empty sets of
// partitions that together cover all n.
func split(n int32, ws ...*worker) (bool, string) {
	seen := map[int32]string{}
	desc := ""
	for _, w := range ws {
		ps := w.assigned()
		desc += fmt.Sprintf("%s%v ", w.name, ps)
		if len(ps) == 0 {
			return false, desc
		}
		for _, p := range ps {
			if _, dup := seen[p]; dup {
				return false, desc
			}
			seen[p] = w.name
		}
	}
	return len(seen) == int(n), desc
}

// TestWorkersShareTheGroup runs two workers in one group, then a third,
// then stops one of them mid-stream: they split the partitions among them
// at each stage, and together produce exactly the expected state.
func TestWorkersShareTheGroup(t *testing.T) {
	const partitions = 6
	e := newEnv(t, envOptions{partitions: partitions})
	o := sample.DefaultOptions()
	o.Seed = 5
	recs := sample.Generate(4000, e.sampleOptions(o))
	produced := e.produce(e.toKafka(recs))
	w := foldWant(t, produced)
	st := w.crossCheck(t, recs)
	collection := e.collectionName("group")
	group := e.name("group")
	ends := e.endOffsets()
	start := func(name string) *worker {
		return e.startWorker(workerConfig{name: name, group: group, collection: collection,
			options: func(o *pipeline.Options) { o.MaxRecords = 100 }})
	}
	// until waits for cond, sampling every 20 ms, and fails the test when
	// the stream is committed first or the wait runs out.
	until := func(what string, share float64, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		last := ""
		for {
			ok, desc := cond()
			last = desc
			done, total, err := e.progress(group, ends)
			if ok && err == nil && float64(done) >= share*float64(total) {
				t.Logf("%s: %s at %d of %d records committed", what, desc, done, total)
				if done == total {
					t.Fatalf("%s: the stream was already committed; the test needs it mid-stream", what)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 3m (last: %s, %d of %d committed)", what, last, done, total)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	a, b := start("a"), start("b")
	until("two workers split the partitions", 0.1, func() (bool, string) { return split(partitions, a, b) })
	c := start("c")
	until("three workers split the partitions", 0.3, func() (bool, string) { return split(partitions, a, b, c) })
	a.stop(t)
	until("a left; b and c took its partitions", 0, func() (bool, string) { return split(partitions, b, c) })
	e.waitCommitted(group, commitWait, b, c)
	if n := slices.Concat(b.assigned(), c.assigned()); len(n) != partitions {
		t.Errorf("b and c hold %v at the end, want all %d partitions", n, partitions)
	}
	b.stop(t)
	c.stop(t)
	e.checkCounts(collection, st)
	e.mustMatch(collection, w)
}
