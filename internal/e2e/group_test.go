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
// at each stage, and together produce exactly the expected state. The
// stream is produced in three parts, one per stage, so that each stage has
// work to do however fast the machine is.
func TestWorkersShareTheGroup(t *testing.T) {
	const partitions = 6
	e := newEnv(t, envOptions{partitions: partitions})
	o := sample.DefaultOptions()
	o.Seed = 5
	recs := sample.Generate(2400, e.sampleOptions(o))
	kafkaRecs := e.toKafka(recs)
	third := len(kafkaRecs) / 3
	collection := e.collectionName("group")
	group := e.name("group")
	start := func(name string) *worker {
		return e.startWorker(workerConfig{name: name, group: group, collection: collection,
			options: func(o *pipeline.Options) { o.MaxRecords = 100 }})
	}
	// until waits for the workers to split the partitions, sampling every
	// 20 ms.
	until := func(what string, ws ...*worker) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ok, desc := split(partitions, ws...)
			if ok {
				t.Logf("%s: %s", what, desc)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 3m (last: %s)", what, desc)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	produced := e.produce(kafkaRecs[:third])
	a, b := start("a"), start("b")
	until("two workers split the partitions", a, b)
	produced = append(produced, e.produce(kafkaRecs[third:2*third])...)
	c := start("c")
	until("three workers split the partitions", a, b, c)
	produced = append(produced, e.produce(kafkaRecs[2*third:])...)
	ends := e.endOffsets()
	done, total, err := e.progress(group, ends)
	if err != nil {
		t.Fatal(err)
	}
	if done == total {
		t.Fatalf("the stream was committed before a left; the test needs a mid-stream departure")
	}
	t.Logf("a leaves at %d of %d records committed", done, total)
	a.stop(t)
	until("a left; b and c took its partitions", b, c)
	e.waitCommitted(group, commitWait, b, c)
	if n := slices.Concat(b.assigned(), c.assigned()); len(n) != partitions {
		t.Errorf("b and c hold %v at the end, want all %d partitions", n, partitions)
	}
	b.stop(t)
	c.stop(t)
	w := foldWant(t, produced)
	st := w.crossCheck(t, recs)
	e.checkCounts(collection, st)
	e.mustMatch(collection, w)
}
