package pipeline

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline/event"
)

// Key identifies a chunk: all events of one key fold under the version rule.
type Key struct {
	Tenant string
	ID     string
}

// String renders the key as the Kafka key spells it: tenant/id.
func (k Key) String() string { return k.Tenant + "/" + k.ID }

// Outcome is what became of one record; with "dead_lettered" these are the
// outcome labels of the metrics.
type Outcome uint8

const (
	// OutcomePending: not decided yet.
	OutcomePending Outcome = iota
	// OutcomeApplied: the record's write (or a later write of the same key
	// in the same batch that it folded into) is in both stores.
	OutcomeApplied
	// OutcomeSkippedStale: the record's version was lower than the stored
	// one, or than an earlier record of its key, so it changed nothing.
	OutcomeSkippedStale
	// OutcomeFailed: the record could not be written (its Err says why).
	OutcomeFailed
	// OutcomeDeadLettered: the record is in the dead-letter topic.
	OutcomeDeadLettered
)

// String returns the metric label of the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomePending:
		return "pending"
	case OutcomeApplied:
		return "applied"
	case OutcomeSkippedStale:
		return "skipped_stale"
	case OutcomeFailed:
		return "failed"
	case OutcomeDeadLettered:
		return "dead_lettered"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Record is one Kafka record on its way through the stages. Src is kept
// untouched for the commit and the dead-letter topic.
type Record struct {
	Src   *kgo.Record
	Event event.Event
	// Err is set by the stage that rejected the record (decode, validate,
	// a sink); a record with Err set takes no part in the fold.
	Err error
	// Stage names where Err arose: decode, validate, sink.neo4j, sink.qdrant.
	Stage string
	// CorrelationID comes from the record's correlation-id header, or is
	// derived from topic/partition/offset so a replay stores the same id.
	CorrelationID string
	Outcome       Outcome
}

// Key returns the chunk key of the decoded event.
func (r *Record) Key() Key { return Key{Tenant: r.Event.Tenant, ID: r.Event.ID} }

// Batch is an ordered run of records of one topic-partition; batches never
// span partitions.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*Record
	// Bytes is the sum of the records' key and value sizes.
	Bytes int
}

// LastOffset returns the offset of the batch's last record, -1 when empty.
func (b *Batch) LastOffset() int64 {
	if len(b.Records) == 0 {
		return -1
	}
	return b.Records[len(b.Records)-1].Src.Offset
}
