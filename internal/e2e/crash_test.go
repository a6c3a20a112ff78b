package e2e

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
)

// crashStream is the stream of the crash tests: the default mix.
func crashStream(e *env) sample.Options {
	o := sample.DefaultOptions()
	o.Seed = 3
	return e.sampleOptions(o)
}

// killPlan picks the moments of the kills: each kill waits until the group
// has committed a random further share of the stream (the target is below
// the stream's end, so the kill lands mid-stream), then a few random
// milliseconds more. A commit of one partition is observed while the
// others are anywhere in their batches.
type killPlan struct {
	rng *rand.Rand
}

func newKillPlan(t *testing.T) killPlan {
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill plan seed %d", seed)
	return killPlan{rng: rand.New(rand.NewPCG(seed, 11))}
}

// waitForKill waits until the group's progress passes a random point
// between done and total, then a jitter of up to 50 ms (short, so that a
// fast machine does not finish the stream meanwhile); it returns the
// committed count just before the kill, or total when the stream finished
// first.
func (k killPlan) waitForKill(e *env, group string, ends map[int32]int64, alive func() bool) (before, total int64) {
	e.t.Helper()
	done, total, err := e.progress(group, ends)
	if err != nil {
		e.t.Fatalf("progress: %v", err)
	}
	target := done + 1 + int64(k.rng.Float64()*0.2*float64(total-done))
	deadline := time.Now().Add(commitWait)
	for done < target && done < total {
		if !alive() {
			e.t.Fatalf("the worker ended before it was killed")
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("group %s stuck at %d of %d records", group, done, total)
		}
		time.Sleep(10 * time.Millisecond)
		if d, _, err := e.progress(group, ends); err == nil {
			done = d
		}
	}
	time.Sleep(time.Duration(k.rng.IntN(50)) * time.Millisecond)
	before, _, _ = e.progress(group, ends)
	return before, total
}

// TestCrashSafetyContextCancel kills the in-process worker — its context
// cancelled, sometimes with a drain deadline too short to finish the batch
// in hand, so the batch is abandoned mid-write — at random points of the
// stream several times, restarting it each time with other batch sizes.
// The final state must equal the expected state and a clean run's, field by
// field (ingested_at and the deletion markers' deleted_at aside: they are
// times of the run).
func TestCrashSafetyContextCancel(t *testing.T) {
	e := newEnv(t, envOptions{partitions: 4})
	recs := sample.Generate(1200, crashStream(e))
	produced := e.produce(e.toKafka(recs))
	w := foldWant(t, produced)
	st := w.crossCheck(t, recs)

	cleanCol := e.collectionName("clean")
	clean := e.startWorker(workerConfig{name: "clean", group: e.name("clean"), collection: cleanCol})
	e.waitCommitted(e.name("clean"), commitWait, clean)
	clean.stop(t)
	e.checkCounts(cleanCol, st)
	cleanState := e.mustMatch(cleanCol, w)
	if t.Failed() {
		return
	}
	e.wipeGraph(t)

	crashCol := e.collectionName("crash")
	group := e.name("crash")
	plan := newKillPlan(t)
	ends := e.endOffsets()
	midStream := 0
	for i := 0; i < 8 && midStream < 4; i++ {
		maxRecords := []int{10, 37, 100, 200}[plan.rng.IntN(4)]
		drain := 30 * time.Second
		if plan.rng.IntN(3) > 0 {
			drain = time.Millisecond // the batch in hand is abandoned
		}
		wk := e.startWorker(workerConfig{name: "crash", group: group, collection: crashCol,
			options: func(o *pipeline.Options) { o.MaxRecords, o.DrainTimeout = maxRecords, drain }})
		before, total := plan.waitForKill(e, group, ends, func() bool {
			select {
			case <-wk.done:
				return false
			default:
				return true
			}
		})
		wk.stop(t)
		after, _, _ := e.progress(group, ends)
		t.Logf("kill %d (batches of %d, drain %s): %d of %d committed before, %d after", i+1, maxRecords, drain, before, total, after)
		if before < total {
			midStream++
		}
		if after == total {
			break
		}
	}
	if midStream < 3 {
		t.Errorf("only %d kills landed mid-stream; the test needs several", midStream)
	}
	last := e.startWorker(workerConfig{name: "crash-final", group: group, collection: crashCol})
	e.waitCommitted(group, commitWait, last)
	last.stop(t)
	e.checkCounts(crashCol, st)
	crashState := e.mustMatch(crashCol, w)
	p := problems{list: sameState(cleanState, crashState, "deleted_at")}
	p.report(t, "stores after the crashes against the clean run")
}
