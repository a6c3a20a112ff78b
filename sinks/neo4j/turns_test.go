package neo4j

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// TestTurnWaitEndsAtTimeout: while every transaction turn is held (here by a
// call whose follower hangs, as a call on a frozen server does), a call
// waiting for a turn fails with a transient error within its own Timeout
// instead of queueing until a turn frees: neo4j.timeout covers the wait for
// the turn too, so a frozen server fails every queued call and its breaker
// sees them.
func TestTurnWaitEndsAtTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s, drv := testSink(t, Config{Timeout: timeout, MaxConcurrentTx: 1})
	tenant := newTenant(t, drv)
	var bt batcher

	holding := make(chan struct{})
	release := make(chan struct{})
	holderDone := make(chan error, 1)
	go func() {
		b := bt.batch(upsert(tenant, "holder", 1, ts(0), nil, nil))
		holderDone <- s.Apply(context.Background(), b, func(context.Context, []pipeline.Write) error {
			close(holding)
			<-release // hangs, deaf to its context, like a frozen store
			return nil
		})
	}()
	select {
	case <-holding:
	case err := <-holderDone:
		t.Fatalf("the holding call returned %v before its follower ran", err)
	case <-time.After(time.Minute):
		t.Fatal("the holding call never reached its follower")
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		<-holderDone
	}()

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
		close(release)
		released = true
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
