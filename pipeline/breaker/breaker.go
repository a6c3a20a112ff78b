// Package breaker puts a circuit breaker (sony/gobreaker) in front of each
// store the pipeline writes to — the version authority, the sink and the
// dead-letter queue — so that a store that is down is not hammered by every
// partition, every partition writing to it pauses, and readiness names it
// (DESIGN.md §5).
//
// What a breaker counts, per call:
//   - a transient error (timeout, Unavailable, deadlock) is a failure;
//     FailureThreshold of them in a row open the breaker;
//   - a sink-down error (the store's own answer: authentication refused, a
//     missing collection or database, a statement ragstream got wrong)
//     opens it at once, and so does Trip, which the consumer calls when a
//     retry cycle runs out or a batch is refused in a way no record
//     explains;
//   - a permanent error is a success: the store answered, and the record
//     is at fault, not the store;
//   - a call whose caller gave up (context cancelled: shutdown, revocation)
//     and, for the authority, a failure of the follower inside its
//     transaction count as neither.
//
// While the breaker is open, calls fail at once with a pipeline.SinkDown
// *OpenError, which the consumer answers by pausing the partition; the
// error's Wait channel closes when the breaker half-opens after
// OpenTimeout (and again when it closes or re-opens), so the paused
// partitions try again together. HalfOpenMaxRequests probes go through a
// half-open breaker; that many successes close it, one failure re-opens it.
// Every transition is reported to the onChange callback given to New, which
// cmd uses for readiness and metrics.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
)

// State is a breaker's state; its values are those of the
// ragstream_breaker_state metric.
type State int8

// The states, in gobreaker's order.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return HalfOpen
	case gobreaker.StateOpen:
		return Open
	}
	return Closed
}

// Settings configure a breaker (config pipeline.breaker).
type Settings struct {
	// FailureThreshold is how many failed calls in a row open the breaker.
	FailureThreshold int
	// OpenTimeout is how long an open breaker refuses calls before it
	// lets probes through (half-open).
	OpenTimeout time.Duration
	// HalfOpenMaxRequests is how many probes a half-open breaker lets
	// through at once; that many successes in a row close it.
	HalfOpenMaxRequests int
}

// SettingsFrom returns the Settings of the pipeline.breaker section.
func SettingsFrom(c config.Breaker) Settings {
	return Settings{FailureThreshold: c.FailureThreshold, OpenTimeout: c.OpenTimeout.Duration(),
		HalfOpenMaxRequests: c.HalfOpenMaxRequests}
}

func (s Settings) validate() error {
	var errs []error
	if s.FailureThreshold < 1 {
		errs = append(errs, fmt.Errorf("breaker: FailureThreshold (pipeline.breaker.failure_threshold) must be at least 1, got %d", s.FailureThreshold))
	}
	if s.OpenTimeout <= 0 {
		errs = append(errs, fmt.Errorf("breaker: OpenTimeout (pipeline.breaker.open_timeout) must be positive, got %s", s.OpenTimeout))
	}
	if s.HalfOpenMaxRequests < 1 {
		errs = append(errs, fmt.Errorf("breaker: HalfOpenMaxRequests (pipeline.breaker.half_open_max_requests) must be at least 1, got %d", s.HalfOpenMaxRequests))
	}
	return errors.Join(errs...)
}

// Change is one transition of a breaker.
type Change struct {
	// Store is the breaker's store: "neo4j", "qdrant", "dlq".
	Store    string
	From, To State
	// Err is the failure that opened the breaker; nil once it closed.
	Err error
	At  time.Time
}

// Breaker is the circuit breaker of one store. Wrap the store with
// Authority, Sink or DeadLetter; all its methods are safe for concurrent
// use.
type Breaker struct {
	store    string
	s        Settings
	cb       *gobreaker.CircuitBreaker[struct{}]
	onChange func(Change)
	// tripping counts calls in progress whose failure must open the
	// breaker at once (a sink-down answer, Trip); ReadyToTrip reads it.
	tripping atomic.Int32

	mu      sync.Mutex
	state   State
	last    error // the last failure counted
	cause   error // the failure that opened the breaker
	since   time.Time
	wake    chan struct{} // closed on the next transition (or half-open nudge)
	timer   *time.Timer
	stopped bool
}

// New returns the closed breaker of store. onChange, when not nil, is
// called on every transition, in order; it runs while the breaker holds
// its lock, so it must be quick and must not call the breaker.
func New(store string, s Settings, onChange func(Change)) (*Breaker, error) {
	if store == "" {
		return nil, errors.New("breaker: empty store name")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	b := &Breaker{store: store, s: s, onChange: onChange, since: time.Now(), wake: make(chan struct{})}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        store,
		MaxRequests: uint32(s.HalfOpenMaxRequests),
		Timeout:     s.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return b.tripping.Load() > 0 || c.ConsecutiveFailures >= uint32(s.FailureThreshold)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) { b.changed(stateOf(from), stateOf(to)) },
		IsSuccessful: func(err error) bool {
			var v *verdict
			return err == nil || errors.As(err, &v) && v.kind == success
		},
		IsExcluded: func(err error) bool {
			var v *verdict
			return errors.As(err, &v) && v.kind == excluded
		},
	})
	return b, nil
}

// Store returns the name of the breaker's store.
func (b *Breaker) Store() string { return b.store }

// State returns the current state. An open breaker whose OpenTimeout has
// passed turns half-open here.
func (b *Breaker) State() State { return stateOf(b.cb.State()) }

// Stop ends the timer that half-opens an open breaker; call it when the
// stores close. The breaker still works, but an open one then half-opens
// only on the next call.
func (b *Breaker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
}

// Trip opens the breaker at once for err (pipeline.Tripper): the consumer
// calls it when a retry cycle of the store ran out, or the store refused a
// batch in a way no record explains. A breaker already open stays as it is.
func (b *Breaker) Trip(err error) {
	b.tripping.Add(1)
	defer b.tripping.Add(-1)
	_, _ = b.cb.Execute(func() (struct{}, error) {
		b.noteFailure(err)
		return struct{}{}, &verdict{err: err, kind: failure}
	})
}

// OpenError is the error of a call the breaker refused. Wrapped in
// pipeline.SinkDown, it pauses the partition; Wait (pipeline.Waiter) says
// when to try again.
type OpenError struct {
	Store string
	// State is Open, or HalfOpen when the probes it allows are in flight.
	State State
	// Since is when the breaker entered State.
	Since time.Time
	// Cause is the failure that opened the breaker.
	Cause error
	wait  <-chan struct{}
}

func (e *OpenError) Error() string {
	msg := fmt.Sprintf("%s circuit breaker %s for %s", e.Store, e.State, time.Since(e.Since).Round(time.Millisecond))
	if e.State == HalfOpen {
		msg += " (probe in flight)"
	}
	if e.Cause != nil {
		msg += ": opened by: " + e.Cause.Error()
	}
	return msg
}

// Wait returns a channel closed when the breaker changes state.
func (e *OpenError) Wait() <-chan struct{} { return e.wait }

var _ pipeline.Waiter = (*OpenError)(nil)

// verdict is what a call's error means to the breaker.
type verdict struct {
	err  error
	kind uint8
}

const (
	success uint8 = iota
	failure
	excluded
)

func (v *verdict) Error() string { return v.err.Error() }

// judge decides what a call's outcome counts as. notMine, when not nil,
// tells errors of another store that surfaced through this one (the
// follower's inside the authority's transaction).
func judge(ctx context.Context, err error, notMine func(error) bool) uint8 {
	switch {
	case err == nil:
		return success
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up (shutdown, revocation, loss): the store may
		// be fine. A deadline is the caller's retry budget running out
		// while the store did not answer: a failure.
		return excluded
	case notMine != nil && notMine(err):
		return excluded
	case pipeline.ClassOf(err) == pipeline.ClassPermanent:
		return success
	}
	return failure
}

// do runs call through the breaker.
func (b *Breaker) do(ctx context.Context, call func(context.Context) error, notMine func(error) bool) error {
	b.mu.Lock()
	wait, before := b.wake, b.state
	b.mu.Unlock()
	ran, tripping := false, false
	defer func() {
		if tripping {
			b.tripping.Add(-1)
		}
	}()
	var callErr error
	_, err := b.cb.Execute(func() (struct{}, error) {
		ran = true
		callErr = call(ctx)
		kind := judge(ctx, callErr, notMine)
		if kind == failure {
			b.noteFailure(callErr)
			if pipeline.ClassOf(callErr) == pipeline.ClassSinkDown {
				tripping = true
				b.tripping.Add(1)
			}
		}
		if callErr == nil {
			return struct{}{}, nil
		}
		return struct{}{}, &verdict{err: callErr, kind: kind}
	})
	if !ran {
		state := Open
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			state = HalfOpen
		}
		b.mu.Lock()
		oe := &OpenError{Store: b.store, State: state, Since: b.since, Cause: b.cause, wait: wait}
		b.mu.Unlock()
		return pipeline.SinkDown(oe)
	}
	if before == HalfOpen {
		// A probe ended without closing or re-opening the breaker (it was
		// excluded, or more probes are needed): let the partitions waiting
		// for a probe slot try.
		b.nudge()
	}
	return callErr
}

func (b *Breaker) noteFailure(err error) {
	b.mu.Lock()
	b.last = err
	b.mu.Unlock()
}

// nudge wakes the waiters while the breaker stays half-open.
func (b *Breaker) nudge() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == HalfOpen {
		close(b.wake)
		b.wake = make(chan struct{})
	}
}

// changed records a transition; gobreaker calls it with its lock held.
func (b *Breaker) changed(from, to State) {
	now := time.Now()
	b.mu.Lock()
	b.state, b.since = to, now
	switch to {
	case Open:
		b.cause = b.last
		b.armLocked(b.s.OpenTimeout)
	case Closed:
		b.cause = nil
	}
	if to != Open && b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	close(b.wake)
	b.wake = make(chan struct{})
	ch := Change{Store: b.store, From: from, To: to, Err: b.cause, At: now}
	b.mu.Unlock()
	if b.onChange != nil {
		b.onChange(ch)
	}
}

// armLocked makes the breaker half-open d from now, so the partitions
// waiting on it are woken without a call having to come first.
func (b *Breaker) armLocked(d time.Duration) {
	if b.stopped {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = time.AfterFunc(d, b.poke)
}

// poke asks gobreaker for the state, which turns an expired open breaker
// half-open (and calls changed). A timer that fires a hair early tries
// again shortly.
func (b *Breaker) poke() {
	if b.cb.State() != gobreaker.StateOpen {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open {
		b.armLocked(5 * time.Millisecond)
	}
}
