package neo4j

import (
	"context"

	"github.com/ragstream/ragstream/pipeline"
)

// earlyFollow is the follower's write of a batch's new keys, which runs
// beside the transaction's statements instead of after them (see attempt).
//
// A key new to the store (no chunk stored: absent, or a deletion marker)
// has no point in the follower either, so its write can be undone exactly:
// deleting the point puts the follower back where it was. Written ahead,
// a follower's refusal of such a write (a Qdrant culprit) is known while
// the statements run, which stop there: the refused transaction costs what
// ran until then instead of every statement of the batch. Writes to stored
// chunks still go after the statements, since their previous points could
// not be put back.
type earlyFollow struct {
	writes []pipeline.Write
	done   chan error
	err    error
	joined bool
}

// splitEarly returns the writes that may go to the follower early (upserts
// of keys with no stored chunk) and the rest, each in the order of writes.
func splitEarly(writes []pipeline.Write, stored map[pipeline.Key]pipeline.Stored) (early, late []pipeline.Write) {
	n := 0
	for _, w := range writes {
		if w.Action == pipeline.ActionUpsert && stored[w.Key].State != pipeline.Present {
			n++
		}
	}
	if n == 0 {
		return nil, writes
	}
	early = make([]pipeline.Write, 0, n)
	late = make([]pipeline.Write, 0, len(writes)-n)
	for _, w := range writes {
		if w.Action == pipeline.ActionUpsert && stored[w.Key].State != pipeline.Present {
			early = append(early, w)
		} else {
			late = append(late, w)
		}
	}
	return early, late
}

// startEarly calls follow with writes in a goroutine of its own.
func startEarly(ctx context.Context, writes []pipeline.Write, follow func(context.Context, []pipeline.Write) error) *earlyFollow {
	e := &earlyFollow{writes: writes, done: make(chan error, 1)}
	ctx = context.WithValue(ctx, overlapKey{}, true)
	go func() { e.done <- follow(ctx, writes) }()
	return e
}

// failed returns the follower's error, as a *followError, when it has
// already failed; it does not wait.
func (e *earlyFollow) failed() error {
	if !e.joined {
		select {
		case err := <-e.done:
			e.err, e.joined = err, true
		default:
			return nil
		}
	}
	if e.err != nil {
		return &followError{e.err}
	}
	return nil
}

// wait waits for the follower and returns its error.
func (e *earlyFollow) wait() error {
	if !e.joined {
		e.err, e.joined = <-e.done, true
	}
	return e.err
}

// undoEarly deletes the points of writes, which went to the follower ahead
// of a transaction that then failed: every key was new, so the follower is
// back where it was before the batch. The deletes go through follow, so
// the pipeline's memory of what the follower holds stays exact.
func undoEarly(ctx context.Context, writes []pipeline.Write, follow func(context.Context, []pipeline.Write) error) error {
	seen := make(map[pipeline.Key]bool, len(writes))
	undo := make([]pipeline.Write, 0, len(writes))
	for _, w := range writes {
		if seen[w.Key] {
			continue
		}
		seen[w.Key] = true
		w.Action = pipeline.ActionDelete
		undo = append(undo, w)
	}
	return follow(ctx, undo)
}

// overlapKey marks the context of a follower call that runs beside the
// transaction's statements (FollowOverlaps).
type overlapKey struct{}

// FollowOverlaps reports whether ctx is that of a follower call Apply
// makes while its statements run (the early write of new keys): its time
// is part of the transaction's, not added to it, so the worker's metrics
// do not subtract it from the Neo4j call's duration.
func FollowOverlaps(ctx context.Context) bool {
	v, _ := ctx.Value(overlapKey{}).(bool)
	return v
}
