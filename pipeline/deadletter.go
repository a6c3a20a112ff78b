package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/ragstream/ragstream/pipeline/event"
)

// DeadLetter takes the records that cannot be written because of their
// content (DESIGN.md §5).
//
// Send returns nil only when the dead-letter topic has acknowledged every
// record of recs: only then does the consumer count them as handled and
// commit past them. Each record keeps its source untouched (Src: key, value,
// headers, coordinates) and says why it failed: Err (classified Permanent;
// an *event.Error from the decoder, whose Class is "decode" or "schema",
// or a store's refusal, class "store_rejected" — see ErrorClass), Stage
// (decode, validate, sink.<store name>) and CorrelationID.
//
// Errors are classified as for stores: a transient error is retried with
// backoff, and a dead-letter topic that stays unreachable (or SinkDown)
// pauses the partition; nothing is ever dropped.
type DeadLetter interface {
	Send(ctx context.Context, recs []*Record) error
}

// Stages, as the DLQ header ragstream.error.stage spells them.
const (
	StageDecode   = "decode"
	StageValidate = "validate"
	// Store refusals are "sink." + the store's Name().
	stageSinkPrefix = "sink."
)

// Error classes of the DLQ header ragstream.error.class.
const (
	ErrorClassDecode        = event.ClassDecode
	ErrorClassSchema        = event.ClassSchema
	ErrorClassStoreRejected = "store_rejected"
)

// ErrorClass returns the ragstream.error.class of a failed record's Err:
// the decoder's class for a record it refused, store_rejected otherwise.
func ErrorClass(err error) string {
	var ee *event.Error
	if errors.As(err, &ee) {
		return ee.Class
	}
	return ErrorClassStoreRejected
}

// StoppedError says where and why a partition stopped: a record that could
// be neither written nor dead-lettered (no DeadLetter is configured).
// Nothing at or after Offset is written or committed.
type StoppedError struct {
	Topic         string
	Partition     int32
	Offset        int64
	CorrelationID string
	Stage         string
	Err           error
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("partition %s/%d stopped at offset %d (stage %s, correlation_id %s): %v",
		e.Topic, e.Partition, e.Offset, e.Stage, e.CorrelationID, e.Err)
}

func (e *StoppedError) Unwrap() error { return e.Err }
