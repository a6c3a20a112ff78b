package pipeline

import (
	"context"
	"errors"
	"fmt"
)

// Class says what the pipeline does about an error (DESIGN.md §5).
type Class uint8

const (
	// ClassTransient errors are retried with backoff: timeouts, refused
	// connections, deadlocks, Unavailable. An unclassified error is
	// transient with a bounded budget: dead-lettering during an outage is the
	// costlier mistake.
	ClassTransient Class = iota
	// ClassPermanent errors are caused by one record's content: that record
	// goes to the dead-letter topic and the rest of its batch is written.
	ClassPermanent
	// ClassSinkDown errors are the sink's own condition: authentication
	// refused, database or collection missing, a statement ragstream got
	// wrong, breaker open, retries exhausted. The partitions pause; nothing
	// is dead-lettered or committed.
	ClassSinkDown
)

// String returns the class's name as logs and metrics spell it.
func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPermanent:
		return "permanent"
	case ClassSinkDown:
		return "sink_down"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// classified carries a class with the error it wraps.
type classified struct {
	class Class
	err   error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Permanent marks err as caused by a record's content.
func Permanent(err error) error { return wrap(ClassPermanent, err) }

// Transient marks err as worth retrying.
func Transient(err error) error { return wrap(ClassTransient, err) }

// SinkDown marks err as the sink's own condition: pause, never dead-letter.
func SinkDown(err error) error { return wrap(ClassSinkDown, err) }

func wrap(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: c, err: err}
}

// ClassOf returns the class of the outermost classified error in err's chain.
// A context cancellation is transient (the work is redone after a restart or
// rebalance), and so is any error nobody classified.
func ClassOf(err error) Class {
	var c *classified
	if errors.As(err, &c) {
		return c.class
	}
	return ClassTransient
}

// IsCanceled reports whether err comes from the caller giving up (shutdown,
// revocation), as opposed to a store failing.
func IsCanceled(err error) bool {
	return errors.Is(err, context.Canceled)
}

// RecordError is a permanent failure of one record. A store returns it
// (several joined with errors.Join) when it can tell which records it
// refused; for a Write, Record is the Write's Record.
type RecordError struct {
	Record *Record
	Err    error
}

func (e *RecordError) Error() string {
	if e.Record == nil || e.Record.Src == nil {
		return e.Err.Error()
	}
	s := e.Record.Src
	return fmt.Sprintf("%s/%d@%d: %v", s.Topic, s.Partition, s.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }
