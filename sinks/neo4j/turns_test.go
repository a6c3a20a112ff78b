package neo4j

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// TestTurnWaitEndsAtTimeout: while every transaction turn is held (here
// taken by the test, as the statements of a call on a frozen server hold
// it), a call waiting for a turn fails with a transient error within its
// own Timeout instead of queueing until a turn frees: neo4j.timeout covers
// the wait for the turn too, so a frozen server fails every queued call and
// its breaker sees them.
func TestTurnWaitEndsAtTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s, drv := testSink(t, Config{Timeout: timeout, MaxConcurrentTx: 1})
	tenant := newTenant(t, drv)
	var bt batcher
	s.turns <- struct{}{} // the only turn, held for the whole test
	defer func() { <-s.turns }()

	waiter := bt.batch(upsert(tenant, "waiter", 1, ts(1), []event.Entity{ent("w", "Person", "W", nil)}, nil))
	waiterDone := make(chan error, 1)
	go func() {
		waiterDone <- s.Apply(context.Background(), waiter, func(context.Context, []pipeline.Write) error {
			return errors.New("the waiter got a turn while the holder held the only one")
		})
	}()
	// Generous: the bound is "before the holder lets go", not a speed.
	const patience = 15 * timeout
	var err error
	select {
	case err = <-waiterDone:
	case <-time.After(patience):
		t.Fatalf("a call waiting for a transaction turn was still waiting after %s (neo4j.timeout %s): the timeout does not cover the wait for a turn", patience, timeout)
	}
	if err == nil {
		t.Fatal("the waiting call succeeded while the only turn was held")
	}
	if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
		t.Errorf("the waiting call failed with class %s (%v), want transient", c, err)
	}
	if !strings.Contains(err.Error(), "turn") || !strings.Contains(err.Error(), "neo4j.timeout") {
		t.Errorf("the waiting call failed with %q, which does not say it got no transaction turn within neo4j.timeout", err)
	}
	for i, r := range waiter.Records {
		if r.Outcome != pipeline.OutcomePending {
			t.Errorf("waiting call's record %d has outcome %s, want pending", i, r.Outcome)
		}
	}
	if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: "waiter"}) RETURN count(c)`, map[string]any{"t": tenant}); n != 0 {
		t.Errorf("the waiting call wrote %d chunks", n)
	}
}

// TestTurnFreeDuringFollow: a call gives its transaction turn back once its
// statements are done, so the next batch's statements run while it waits
// for the other store and commits. With one turn, the first call's
// follower waits until a second call (other keys) has been applied.
func TestTurnFreeDuringFollow(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{Timeout: time.Minute, MaxConcurrentTx: 1})
	tenant := newTenant(t, drv)
	var bt batcher
	first := bt.batch(upsert(tenant, "first", 1, ts(0), []event.Entity{ent("a", "Person", "A", nil)}, nil))
	second := bt.batch(upsert(tenant, "second", 1, ts(1), []event.Entity{ent("b", "Person", "B", nil)}, nil))

	following := make(chan struct{})
	secondDone := make(chan error, 1)
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.Apply(context.Background(), first, func(ctx context.Context, _ []pipeline.Write) error {
			close(following)
			select {
			case err := <-secondDone:
				if err != nil {
					return fmt.Errorf("second call: %w", err)
				}
				return nil
			case <-time.After(30 * time.Second):
				return errors.New("the second call did not finish while the first one's follower ran: the turn is still held")
			}
		})
	}()
	<-following
	go func() {
		secondDone <- s.Apply(context.Background(), second, func(context.Context, []pipeline.Write) error { return nil })
	}()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"first", "second"} {
		if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: $id}) RETURN count(c)`, map[string]any{"t": tenant, "id": id}); n != 1 {
			t.Errorf("chunk %s: %d nodes, want 1", id, n)
		}
	}
}
