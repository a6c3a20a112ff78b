// Package pipelinetest holds in-memory stores for testing the pipeline, in
// the spirit of net/http/httptest: Store implements both pipeline.Authority
// and pipeline.Sink faithfully (the version fold, per-key state, deletion
// markers), records what it was given, and fails on demand; DeadLetters is
// a dead-letter queue that does the same; NullSink and NullAuthority cost
// nothing, for benchmarks.
package pipelinetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ragstream/ragstream/pipeline"
)

// Entry is a key's state in a Store.
type Entry struct {
	State   pipeline.StoredState
	Version int64
	// Content of a Present chunk, and its lineage.
	DocID         string
	Text          string
	Entities      int
	CorrelationID string
	Topic         string
	Partition     int32
	Offset        int64
}

// Logged is one Write a Store received (as Sink) or made (as Authority),
// copied, since the pipeline reuses its Records.
type Logged struct {
	Key       pipeline.Key
	Action    pipeline.Action
	Version   int64
	Partition int32
	Offset    int64
}

// Store is an in-memory store for one role or both: as an Authority it folds
// each batch against its state and commits only when follow succeeds; as a
// Sink it applies the writes it is given. Keys of concurrent batches are
// disjoint (a key lives in one partition), so the fold and the commit of a
// batch need not be one critical section.
//
// Failure injection applies to every Apply and Write call: FailNext,
// FailFor, Block, BlockAfter, SetDelay, RejectIf, RefuseBatchIf,
// CrashAfterCommit. A blocked or delayed call
// gives up when its context ends, as a real store call does.
type Store struct {
	name string

	mu        sync.Mutex
	state     map[pipeline.Key]Entry
	log       []Logged
	offsets   map[partKey][]int64
	calls     int
	fails     []error
	failUntil time.Time
	failErr   error
	crashes   int
	delay     time.Duration
	gate      chan struct{}
	pass      int
	passGate  chan struct{}
	reject    func(*pipeline.Record) error
	refuse    func(*pipeline.Record) bool
	cancelled int
}

type partKey struct {
	topic     string
	partition int32
}

// NewStore returns an empty store; name is what Name returns (e.g. "neo4j").
func NewStore(name string) *Store {
	return &Store{name: name, state: map[pipeline.Key]Entry{}, offsets: map[partKey][]int64{}}
}

// Name implements pipeline.Authority and pipeline.Sink.
func (s *Store) Name() string { return s.name }

// FailNext makes the next n calls fail with err (classify it, e.g.
// pipeline.Transient(...)) before they touch the state.
func (s *Store) FailNext(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fails = append(s.fails, err)
	}
}

// FailFor makes every call for the next d fail with err (after FailNext's
// errors), as a store that is down for a while does.
func (s *Store) FailFor(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failUntil, s.failErr = time.Now().Add(d), err
}

// CrashAfterCommit makes the next n calls commit their writes and then
// return a transient error, as a store whose reply is lost does.
func (s *Store) CrashAfterCommit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes += n
}

// SetDelay delays every call by d (until its context ends).
func (s *Store) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Block makes calls wait until the returned function is called (or their
// context ends). Calls counts the calls that arrived, blocked or not.
func (s *Store) Block() (unblock func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := make(chan struct{})
	s.gate = g
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.gate == g {
				s.gate = nil
			}
			s.mu.Unlock()
			close(g)
		})
	}
}

// BlockAfter lets the next n calls through and makes the later ones wait
// until the returned function is called (or their context ends).
func (s *Store) BlockAfter(n int) (unblock func()) {
	s.mu.Lock()
	g := make(chan struct{})
	s.pass, s.passGate = n, g
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.passGate == g {
				s.passGate = nil
			}
			s.mu.Unlock()
			close(g)
		})
	}
}

// RejectIf makes the store refuse, permanently and by record, every record
// (as Authority) or written record (as Sink) for which f returns an error.
func (s *Store) RejectIf(f func(*pipeline.Record) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = f
}

// RefuseBatchIf makes the store, as Authority, refuse a whole batch
// permanently without naming a record when f holds for any of its records:
// the pipeline has to bisect.
func (s *Store) RefuseBatchIf(f func(*pipeline.Record) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// enter applies the injected failures to one call.
func (s *Store) enter(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	gate, delay := s.gate, s.delay
	if s.passGate != nil {
		if s.pass > 0 {
			s.pass--
		} else if gate == nil {
			gate = s.passGate
		}
	}
	var fail error
	if len(s.fails) > 0 {
		fail, s.fails = s.fails[0], s.fails[1:]
	} else if time.Now().Before(s.failUntil) {
		fail = s.failErr
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			s.countCancel()
			return ctx.Err()
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			s.countCancel()
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	return ctx.Err()
}

func (s *Store) countCancel() {
	s.mu.Lock()
	s.cancelled++
	s.mu.Unlock()
}

// Apply implements pipeline.Authority.
func (s *Store) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	reject := s.reject
	var refused []error
	if reject != nil {
		for _, r := range b.Records {
			if r.Err != nil {
				continue
			}
			if err := reject(r); err != nil {
				refused = append(refused, &pipeline.RecordError{Record: r, Err: err})
			}
		}
	}
	if len(refused) > 0 {
		s.mu.Unlock()
		return pipeline.Permanent(errors.Join(refused...))
	}
	if s.refuse != nil {
		for _, r := range b.Records {
			if r.Err == nil && s.refuse(r) {
				s.mu.Unlock()
				return pipeline.Permanent(fmt.Errorf("%s: batch refused", s.name))
			}
		}
	}
	writes := pipeline.Fold(b.Records, s.storedLocked)
	s.mu.Unlock()
	if err := follow(ctx, writes); err != nil {
		return fmt.Errorf("%s: follower: %w", s.name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.commitLocked(writes)
	for _, r := range b.Records {
		if r.Err == nil {
			k := partKey{r.Src.Topic, r.Src.Partition}
			s.offsets[k] = append(s.offsets[k], r.Src.Offset)
		}
	}
	crash := s.crashes > 0
	if crash {
		s.crashes--
	}
	s.mu.Unlock()
	if crash {
		return pipeline.Transient(fmt.Errorf("%s: injected: committed, reply lost", s.name))
	}
	return nil
}

// Write implements pipeline.Sink.
func (s *Store) Write(ctx context.Context, writes []pipeline.Write) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject != nil {
		var refused []error
		for _, w := range writes {
			if err := s.reject(w.Record); err != nil {
				refused = append(refused, &pipeline.RecordError{Record: w.Record, Err: err})
			}
		}
		if len(refused) > 0 {
			return pipeline.Permanent(errors.Join(refused...))
		}
	}
	s.commitLocked(writes)
	crash := s.crashes > 0
	if crash {
		s.crashes--
		return pipeline.Transient(fmt.Errorf("%s: injected: committed, reply lost", s.name))
	}
	return nil
}

func (s *Store) storedLocked(k pipeline.Key) pipeline.Stored {
	e, ok := s.state[k]
	if !ok {
		return pipeline.Stored{}
	}
	return pipeline.Stored{State: e.State, Version: e.Version}
}

func (s *Store) commitLocked(writes []pipeline.Write) {
	for _, w := range writes {
		src := w.Record.Src
		s.log = append(s.log, Logged{Key: w.Key, Action: w.Action, Version: w.Version,
			Partition: src.Partition, Offset: src.Offset})
		switch w.Action {
		case pipeline.ActionUpsert:
			ev := &w.Record.Event
			s.state[w.Key] = Entry{State: pipeline.Present, Version: w.Version, DocID: ev.DocID, Text: ev.Text,
				Entities: len(ev.Entities), CorrelationID: w.Record.CorrelationID,
				Topic: src.Topic, Partition: src.Partition, Offset: src.Offset}
		case pipeline.ActionDelete:
			s.state[w.Key] = Entry{State: pipeline.Deleted, Version: w.Version}
		}
	}
}

// State returns a copy of the per-key state.
func (s *Store) State() map[pipeline.Key]Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.state)
}

// Get returns one key's state.
func (s *Store) Get(k pipeline.Key) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.state[k]
	return e, ok
}

// Log returns the writes the store received (Sink) or made (Authority), in
// order.
func (s *Store) Log() []Logged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Logged(nil), s.log...)
}

// Offsets returns, in order, the offsets of the valid records of every
// batch the store applied as Authority for a topic-partition (a record
// applied twice appears twice).
func (s *Store) Offsets(topic string, partition int32) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.offsets[partKey{topic, partition}]...)
}

// Calls counts Apply and Write calls; Cancelled counts those that gave up
// because their context ended while blocked or delayed.
func (s *Store) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Cancelled counts calls that gave up because their context ended.
func (s *Store) Cancelled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}

// NullSink accepts every write and keeps nothing.
type NullSink struct{}

// Name implements pipeline.Sink.
func (NullSink) Name() string { return "null" }

// Write implements pipeline.Sink.
func (NullSink) Write(context.Context, []pipeline.Write) error { return nil }

// NullAuthority folds each batch against an empty store and calls follow,
// keeping nothing: the cost of the fold without a store.
type NullAuthority struct{}

// Name implements pipeline.Authority.
func (NullAuthority) Name() string { return "null" }

// Apply implements pipeline.Authority.
func (NullAuthority) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	return follow(ctx, pipeline.Fold(b.Records, absent))
}

func absent(pipeline.Key) pipeline.Stored { return pipeline.Stored{} }
