package neo4j

import (
	"context"
	"sync"
)

// turnQueue hands out the sink's MaxConcurrentTx transaction turns in the
// order they were asked for, except that a call isolating the culprits of a
// refused batch (pipeline.Isolating) goes ahead of the others: its
// partition holds its whole batch back until the search ends, and a
// partition that queued behind every other one for each step of a search
// fell behind them all, which stretched a run with a few refused records
// well beyond its clean time.
type turnQueue struct {
	mu   sync.Mutex
	free int
	// waiting holds the queued calls: [0] those isolating culprits, served
	// first, [1] the rest.
	waiting [2][]*turnWaiter
}

type turnWaiter struct {
	ready   chan struct{} // closed when the turn is handed over
	granted bool          // set under mu with the close
}

func newTurnQueue(n int) *turnQueue { return &turnQueue{free: n} }

// acquire waits for a turn until ctx ends or stall closes (nil: never); it
// returns ctx's cause or errStalled then, and the turn is not held.
func (q *turnQueue) acquire(ctx context.Context, stall <-chan struct{}, first bool) error {
	q.mu.Lock()
	if q.free > 0 {
		// Turns are handed straight to waiters, so a free one has none.
		q.free--
		q.mu.Unlock()
		return nil
	}
	w := &turnWaiter{ready: make(chan struct{})}
	i := 1
	if first {
		i = 0
	}
	q.waiting[i] = append(q.waiting[i], w)
	q.mu.Unlock()

	var err error
	select {
	case <-w.ready:
		return nil
	case <-stall:
		err = errStalled
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	q.mu.Lock()
	if w.granted {
		// Handed over while giving up: pass it on.
		q.mu.Unlock()
		q.release()
		return err
	}
	for i := range q.waiting {
		for j, o := range q.waiting[i] {
			if o == w {
				q.waiting[i] = append(q.waiting[i][:j], q.waiting[i][j+1:]...)
				break
			}
		}
	}
	q.mu.Unlock()
	return err
}

// release gives a turn back: to the first isolating call queued, else the
// first call queued, else to the free turns.
func (q *turnQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.waiting {
		if len(q.waiting[i]) > 0 {
			w := q.waiting[i][0]
			q.waiting[i][0] = nil
			q.waiting[i] = q.waiting[i][1:]
			w.granted = true
			close(w.ready)
			return
		}
	}
	q.free++
}
