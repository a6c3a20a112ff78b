package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Tripper is implemented by a store — Authority, Sink or DeadLetter —
// wrapped in a circuit breaker (package pipeline/breaker). The consumer
// calls Trip when it concludes by itself that the store is down, which no
// single call shows: a cycle of transient errors ran out of retries, or a
// batch was refused in a way no record explains. The breaker then opens at
// once, so every partition writing to the store pauses and readiness names
// the store (DESIGN.md §5: retries exhausted means sink down).
type Tripper interface {
	Trip(err error)
}

// Waiter is implemented by sink-down errors that know when their store is
// worth another try, such as the error of a call an open circuit breaker
// refused. Wait returns a channel that is closed then (the breaker went
// half-open or closed). A partition paused on such an error tries again as
// soon as it is closed instead of at the end of its backoff, so partitions
// resume together when the half-open probe succeeds.
type Waiter interface {
	Wait() <-chan struct{}
}

// ExhaustedError is the last error of a retry cycle that ran out of its
// budget (Options.Retry: MaxAttempts attempts or MaxElapsed in all). The
// consumer returns it classified SinkDown: the partition pauses and nothing
// is dead-lettered.
type ExhaustedError struct {
	// Store is the Name of the store that kept failing ("dlq" for the
	// dead-letter queue).
	Store    string
	Attempts int
	Elapsed  time.Duration
	Err      error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%s: transient errors for %s after %d attempts: %v",
		e.Store, e.Elapsed.Round(time.Millisecond), e.Attempts, e.Err)
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// trip opens the breaker of store, when it has one, for err.
func trip(store any, err error) {
	if t, ok := store.(Tripper); ok {
		t.Trip(err)
	}
}

// waitOf returns the channel of err's Waiter; nil (never ready) when err
// has none.
func waitOf(err error) <-chan struct{} {
	var w Waiter
	if errors.As(err, &w) {
		return w.Wait()
	}
	return nil
}
