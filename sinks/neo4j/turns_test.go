package neo4j

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// TestTurnWaitEndsWhenTheTransactionAheadStalls: a call queued for a
// transaction turn keeps waiting beyond its Timeout while the turn is held
// by a transaction that progresses (backpressure, not a failure), and gives
// up at once with a transient error when the transaction ahead fails on the
// server (signalStall, what Apply does on a timeout or a lost connection):
// on a frozen server every queued call fails within one timeout, and the
// breaker sees them.
func TestTurnWaitEndsWhenTheTransactionAheadStalls(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	s, drv := testSink(t, Config{Timeout: timeout, MaxConcurrentTx: 1})
	tenant := newTenant(t, drv)
	var bt batcher
	holdTurn(t, s) // the only turn, held as a long transaction would

	waiter := bt.batch(upsert(tenant, "waiter", 1, ts(1), []event.Entity{ent("w", "Person", "W", nil)}, nil))
	waiterDone := make(chan error, 1)
	go func() {
		waiterDone <- s.Apply(context.Background(), waiter, func(context.Context, []pipeline.Write) error {
			return errors.New("the waiter got a turn while the test held the only one")
		})
	}()
	select {
	case err := <-waiterDone:
		t.Fatalf("the queued call returned %v after less than %s, while the turn was held by a progressing transaction", err, 3*timeout)
	case <-time.After(3 * timeout):
	}
	s.signalStall() // the transaction ahead failed on the server
	var err error
	select {
	case err = <-waiterDone:
	case <-time.After(time.Minute):
		s.turns.release()
		t.Fatal("the queued call was still waiting a minute after the transaction ahead failed")
	}
	s.turns.release()
	if err == nil {
		t.Fatal("the queued call succeeded while the only turn was held")
	}
	if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
		t.Errorf("the queued call failed with class %s (%v), want transient", c, err)
	}
	if !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "turn") {
		t.Errorf("the queued call failed with %q, which does not say the transaction ahead failed", err)
	}
	for i, r := range waiter.Records {
		if r.Outcome != pipeline.OutcomePending {
			t.Errorf("queued call's record %d has outcome %s, want pending", i, r.Outcome)
		}
	}
	if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: "waiter"}) RETURN count(c)`, map[string]any{"t": tenant}); n != 0 {
		t.Errorf("the queued call wrote %d chunks", n)
	}

	// With the turn free again, the next call takes it and writes.
	apply(t, s, bt.batch(upsert(tenant, "after", 1, ts(2), nil, nil)))
	if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: "after"}) RETURN count(c)`, map[string]any{"t": tenant}); n != 1 {
		t.Errorf("the call after the stall wrote %d chunks, want 1", n)
	}
}

func TestServerStalled(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"deadline", fmt.Errorf("run: %w", context.DeadlineExceeded), true},
		{"connectivity", &neo4j.ConnectivityError{Inner: errors.New("broken pipe")}, true},
		{"driver gave up on a timeout", &neo4j.TransactionExecutionLimit{Errors: []error{errors.New("deadlock"), context.DeadlineExceeded}}, true},
		{"driver gave up on deadlocks", &neo4j.TransactionExecutionLimit{Errors: []error{errors.New("deadlock")}}, false},
		{"cancelled", context.Canceled, false},
		{"refused", &neo4j.Neo4jError{Code: "Neo.ClientError.Schema.ConstraintValidationFailed"}, false},
	} {
		if got := serverStalled(c.err); got != c.want {
			t.Errorf("%s: serverStalled = %v, want %v", c.name, got, c.want)
		}
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

// TestTurnWaitCounted: the time a call queues for a transaction turn is
// added to its WithTurnWait counter, so the worker's metrics can leave it
// out of the time spent in Neo4j.
func TestTurnWaitCounted(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{Timeout: time.Minute, MaxConcurrentTx: 1})
	tenant := newTenant(t, drv)
	var bt batcher
	holdTurn(t, s) // the only turn, held by another transaction
	const held = 400 * time.Millisecond
	time.AfterFunc(held, func() { s.turns.release() })
	var waited time.Duration
	start := time.Now()
	if err := s.Apply(WithTurnWait(context.Background(), &waited), bt.batch(upsert(tenant, "c", 1, ts(0), nil, nil)),
		func(context.Context, []pipeline.Write) error { return nil }); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if waited < held*3/4 || waited > took {
		t.Errorf("counted %s of turn wait in a call of %s that waited about %s for the turn", waited, took, held)
	}
}

// holdTurn takes one of s's transaction turns, as another transaction
// would; the test gives it back with s.turns.release().
func holdTurn(t *testing.T, s *Sink) {
	t.Helper()
	if err := s.turns.acquire(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
}

// TestTurnQueueServesIsolatingFirst: turns go to the calls queued in the
// order they queued, except that calls isolating culprits go first; a call
// that gives up leaves the queue.
func TestTurnQueueServesIsolatingFirst(t *testing.T) {
	q := newTurnQueue(1)
	if err := q.acquire(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 8)
	waiting := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.waiting[0]) + len(q.waiting[1])
	}
	queue := func(name string, first bool, ctx context.Context) <-chan error {
		before := waiting()
		done := make(chan error, 1)
		go func() {
			err := q.acquire(ctx, nil, first)
			if err == nil {
				order <- name
			}
			done <- err
		}()
		// Wait until it is queued, so the queue order is the test's.
		for deadline := time.Now().Add(10 * time.Second); waiting() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never queued", name)
			}
		}
		return done
	}
	gone, cancel := context.WithCancel(context.Background())
	a := queue("a", false, context.Background())
	b := queue("b", false, context.Background())
	c := queue("c", false, gone)
	iso1 := queue("isolating-1", true, context.Background())
	iso2 := queue("isolating-2", true, context.Background())
	cancel()
	if err := <-c; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled call returned %v, want context.Canceled", err)
	}
	var got []string
	for _, done := range []<-chan error{iso1, iso2, a, b} {
		q.release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got = append(got, <-order)
	}
	if want := []string{"isolating-1", "isolating-2", "a", "b"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("turns went to %v, want %v", got, want)
	}
	q.release()
	if q.free != 1 || waiting() != 0 {
		t.Errorf("after every call: %d free turns and %d waiting, want 1 and 0", q.free, waiting())
	}
}
