package pipelinetest

import (
	"context"
	"sync"
	"time"

	"github.com/ragstream/ragstream/pipeline"
)

// Dead is one record a DeadLetters acknowledged.
type Dead struct {
	Topic     string
	Partition int32
	Offset    int64
	// Class is its ragstream.error.class (pipeline.ErrorClass), Stage its
	// ragstream.error.stage.
	Class, Stage  string
	CorrelationID string
}

// DeadLetters is an in-memory pipeline.DeadLetter: it keeps what it
// acknowledged, and fails on demand (FailNext, FailFor) without keeping
// anything, as a dead-letter topic that does not acknowledge.
type DeadLetters struct {
	mu        sync.Mutex
	recs      []Dead
	calls     int
	fails     []error
	failUntil time.Time
	failErr   error
}

// Send implements pipeline.DeadLetter.
func (d *DeadLetters) Send(ctx context.Context, recs []*pipeline.Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	switch {
	case len(d.fails) > 0:
		err := d.fails[0]
		d.fails = d.fails[1:]
		return err
	case time.Now().Before(d.failUntil):
		return d.failErr
	case ctx.Err() != nil:
		return ctx.Err()
	}
	for _, r := range recs {
		d.recs = append(d.recs, Dead{Topic: r.Src.Topic, Partition: r.Src.Partition, Offset: r.Src.Offset,
			Class: pipeline.ErrorClass(r.Err), Stage: r.Stage, CorrelationID: r.CorrelationID})
	}
	return nil
}

// FailNext makes the next n Sends fail with err.
func (d *DeadLetters) FailNext(n int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range n {
		d.fails = append(d.fails, err)
	}
}

// FailFor makes every Send for the next d fail with err.
func (d *DeadLetters) FailFor(dur time.Duration, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failUntil, d.failErr = time.Now().Add(dur), err
}

// Records returns the acknowledged records, in order.
func (d *DeadLetters) Records() []Dead {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Dead(nil), d.recs...)
}

// Calls counts Sends, failed or not.
func (d *DeadLetters) Calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}
