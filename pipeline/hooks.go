package pipeline

import (
	"strings"
	"time"
)

// Hooks let metrics observe the pipeline. Every field is optional; a nil
// field costs nothing. Hooks are called from partition goroutines, the
// committer and the group callbacks, concurrently: they must be safe for
// concurrent use and must not block.
type Hooks struct {
	// Consumed is called when a fetch hands records of a partition to its
	// worker: records and their key+value bytes.
	Consumed func(topic string, partition int32, records, bytes int)
	// Keyless is called for each decoded record without a key: it is
	// accepted, but loses the per-key ordering guarantee.
	Keyless func(topic string, partition int32)
	// Batch is called when a batch is in both stores (or the DLQ).
	Batch func(BatchStats)
	// Retry is called when a store call that failed with a transient error
	// is tried again, after the backoff: store is the Name of the
	// authority or sink whose error it was, or "dlq"; err is the error
	// being retried.
	Retry func(topic string, partition int32, store string, class Class, err error)
	// DeadLettered is called for each record the dead-letter topic
	// acknowledged, with its ragstream.error.class (ErrorClass) and stage.
	DeadLettered func(topic string, partition int32, class, stage string)
	// Committed is called after an offset commit of a partition succeeded,
	// with what the commit covers.
	Committed func(CommitStats)
	// Paused and Resumed are called when a reason to pause a partition's
	// fetching starts or ends; fetching runs only while no reason holds.
	Paused  func(topic string, partition int32, reason PauseReason)
	Resumed func(topic string, partition int32, reason PauseReason)
	// Stopped is called when a partition stops on a record it cannot
	// write and cannot dead-letter (err is a *StoppedError).
	Stopped func(topic string, partition int32, err error)
	// Assigned and Revoked follow the group's assignment; lost is true when
	// the partition was lost (nothing committed) rather than revoked.
	Assigned func(topic string, partition int32)
	Revoked  func(topic string, partition int32, lost bool)
}

// OutcomeCounts counts records by Outcome (index).
type OutcomeCounts [OutcomeDeadLettered + 1]int

// BatchStats describe one finished batch.
type BatchStats struct {
	Topic     string
	Partition int32
	// FirstOffset and LastOffset bound the batch.
	FirstOffset, LastOffset int64
	Records                 int
	Bytes                   int
	Outcomes                OutcomeCounts
	// Decode is the time spent decoding and validating the batch's records;
	// Sink the time from the first store call to the batch being in both
	// stores, retries and pauses included.
	Decode time.Duration
	Sink   time.Duration
	// Wait is how long the partition waited for a place among the batches
	// decoded or in delivery at once (MaxActiveBatches) before it decoded
	// the batch: the time the batch spent behind others for the stores.
	Wait time.Duration
	// Attempts counts the calls of Authority.Apply for the batch.
	Attempts int
}

// CommitStats describe what one successful commit of a partition covers:
// every batch finished since the previous commit.
type CommitStats struct {
	Topic     string
	Partition int32
	// Offset is the committed offset: the next record to consume.
	Offset  int64
	Records int
	// Batches is how many finished batches the commit covers.
	Batches int
	// MinEventTime and MaxEventTime bound the events' ts (zero when no
	// event had one); MinKafkaTime and MaxKafkaTime the records' Kafka
	// timestamps. Against time.Now they give the end-to-end latency.
	MinEventTime, MaxEventTime time.Time
	MinKafkaTime, MaxKafkaTime time.Time
}

func (s *CommitStats) add(b *commitBatch) {
	s.Records += b.records
	s.Batches++
	s.MinEventTime, s.MaxEventTime = widen(s.MinEventTime, s.MaxEventTime, b.minEvent, b.maxEvent)
	s.MinKafkaTime, s.MaxKafkaTime = widen(s.MinKafkaTime, s.MaxKafkaTime, b.minKafka, b.maxKafka)
}

func widen(lo, hi, blo, bhi time.Time) (time.Time, time.Time) {
	if !blo.IsZero() && (lo.IsZero() || blo.Before(lo)) {
		lo = blo
	}
	if !bhi.IsZero() && (hi.IsZero() || bhi.After(hi)) {
		hi = bhi
	}
	return lo, hi
}

// PauseReason is why a partition's fetching is paused; reasons combine.
type PauseReason uint8

const (
	// PauseBackpressure: the partition holds as many records as
	// MaxInflightBatches allows.
	PauseBackpressure PauseReason = 1 << iota
	// PauseSinkDown: a store (or the DLQ) is down or out of retries; the
	// partition retries slowly and resumes on success.
	PauseSinkDown
	// PauseStopped: the partition stopped on a record it can neither
	// write nor dead-letter.
	PauseStopped
)

// String lists the reasons, e.g. "backpressure,sink_down".
func (r PauseReason) String() string {
	if r == 0 {
		return "none"
	}
	var parts []string
	for _, x := range []struct {
		r PauseReason
		s string
	}{{PauseBackpressure, "backpressure"}, {PauseSinkDown, "sink_down"}, {PauseStopped, "stopped"}} {
		if r&x.r != 0 {
			parts = append(parts, x.s)
		}
	}
	return strings.Join(parts, ",")
}

// The hook callers keep nil checks out of the hot path's reading.

func (h *Hooks) consumed(t string, p int32, n, bytes int) {
	if h.Consumed != nil {
		h.Consumed(t, p, n, bytes)
	}
}

func (h *Hooks) keyless(t string, p int32) {
	if h.Keyless != nil {
		h.Keyless(t, p)
	}
}

func (h *Hooks) batch(s BatchStats) {
	if h.Batch != nil {
		h.Batch(s)
	}
}

func (h *Hooks) retry(t string, p int32, store string, c Class, err error) {
	if h.Retry != nil {
		h.Retry(t, p, store, c, err)
	}
}

func (h *Hooks) deadLettered(t string, p int32, class, stage string) {
	if h.DeadLettered != nil {
		h.DeadLettered(t, p, class, stage)
	}
}

func (h *Hooks) committed(s CommitStats) {
	if h.Committed != nil {
		h.Committed(s)
	}
}

func (h *Hooks) paused(t string, p int32, r PauseReason) {
	if h.Paused != nil {
		h.Paused(t, p, r)
	}
}

func (h *Hooks) resumed(t string, p int32, r PauseReason) {
	if h.Resumed != nil {
		h.Resumed(t, p, r)
	}
}

func (h *Hooks) stopped(t string, p int32, err error) {
	if h.Stopped != nil {
		h.Stopped(t, p, err)
	}
}

func (h *Hooks) assigned(t string, p int32) {
	if h.Assigned != nil {
		h.Assigned(t, p)
	}
}

func (h *Hooks) revoked(t string, p int32, lost bool) {
	if h.Revoked != nil {
		h.Revoked(t, p, lost)
	}
}
