package dlq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
)

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// MaxReplayCount refuses a record whose ragstream.replay_count is at
	// or above it (dlq.max_replay_count): it has been replayed that often
	// and failed again every time. Zero refuses every record.
	MaxReplayCount int
	// Tombstones replays tombstones too. They are skipped by default: a
	// tombstone deletes whatever came after it.
	Tombstones bool
	// DryRun selects and counts but produces nothing.
	DryRun bool
}

// MaxListed bounds each list of records in a Report; the counts are exact.
const MaxListed = 100

// Report says what Replay did.
type Report struct {
	DryRun bool `json:"dry_run"`
	// Matched is how many DLQ records the filter selected.
	Matched int `json:"matched"`
	// Replayed is how many of them were produced to their source topic
	// and acknowledged (with DryRun: would have been); ByTopic splits it
	// by source topic.
	Replayed int            `json:"replayed"`
	ByTopic  map[string]int `json:"by_topic"`
	// Refused counts the records at or past the maximum replay count;
	// RefusedRecords lists the first MaxListed.
	Refused        int   `json:"refused"`
	RefusedRecords []Ref `json:"refused_records"`
	// SkippedTombstones counts tombstones not replayed (without
	// ReplayOptions.Tombstones).
	SkippedTombstones int `json:"skipped_tombstones"`
	// Invalid counts records that cannot be replayed because a DLQ header
	// they need (source topic, replay count) is missing or unreadable, or
	// their source topic is the DLQ itself; InvalidRecords lists the first
	// MaxListed with the reason.
	Invalid        int   `json:"invalid"`
	InvalidRecords []Ref `json:"invalid_records"`
	// Failed counts records whose produce failed; FailedRecords lists the
	// first MaxListed with the error. Replay then returns an error too.
	Failed        int   `json:"failed"`
	FailedRecords []Ref `json:"failed_records"`
}

// Ref names one DLQ record in a Report.
type Ref struct {
	Partition       int32  `json:"partition"`
	Offset          int64  `json:"offset"`
	SourceTopic     string `json:"source_topic,omitempty"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	ReplayCount     int    `json:"replay_count"`
	CorrelationID   string `json:"correlation_id,omitempty"`
	Reason          string `json:"reason,omitempty"`
}

func refOf(e *Entry, reason string) Ref {
	return Ref{Partition: e.Partition, Offset: e.Offset, SourceTopic: e.SourceTopic,
		SourcePartition: e.SourcePartition, SourceOffset: e.SourceOffset,
		ReplayCount: e.ReplayCount, CorrelationID: e.CorrelationID, Reason: reason}
}

func appendRef(list []Ref, r Ref) []Ref {
	if len(list) < MaxListed {
		list = append(list, r)
	}
	return list
}

// Replay re-produces the records of DLQ topic that f selects to their
// source topic (DESIGN.md §5): original key and value; the headers
// without any ragstream.* or __connect.errors.* header; correlation-id
// set from ragstream.correlation_id when the record has none, so lineage
// keeps one id; and ragstream.replay_count one higher than the DLQ
// record's. A record whose replay count is at or past
// o.MaxReplayCount is refused; tombstones are skipped unless o.Tombstones.
//
// The records are produced with the default partitioner, by key, as
// producers do, so they land in their key's partition and keep order with
// the key's new events; they get a new timestamp (the original stays on
// the DLQ record), so time-based retention counts from the replay.
// Replay reads up to the end offsets at the call: records that fail again
// and return to the DLQ meanwhile are not replayed twice in one call. The
// DLQ records stay where they are; replaying the same range twice
// produces them twice, which the stores' idempotent writes absorb.
//
// The error is non-nil when the read failed or any produce failed; the
// Report then says how far it got.
func Replay(ctx context.Context, kafka []kgo.Opt, topic string, f Filter, o ReplayOptions) (Report, error) {
	r := &Reader{Topic: topic, Kafka: kafka}
	return r.Replay(ctx, f, o)
}

// Replay is the package function Replay, with r's progress reporting.
func (r *Reader) Replay(ctx context.Context, f Filter, o ReplayOptions) (Report, error) {
	rep := Report{DryRun: o.DryRun, ByTopic: map[string]int{}}
	if o.MaxReplayCount < 0 {
		return rep, fmt.Errorf("dlq replay: max replay count: must not be negative, got %d", o.MaxReplayCount)
	}
	// The replay producer is idempotent with acks=all (franz-go's
	// defaults) and partitions by key like the Java client.
	cl, err := r.client()
	if err != nil {
		return rep, err
	}
	defer cl.Close()

	var mu sync.Mutex // guards rep against the produce callbacks
	var produceErr error
	err = r.scan(ctx, cl, f, func(e *Entry) error {
		if !f.Match(e) {
			return nil
		}
		if !r.selectForReplay(&rep, &mu, e, o) {
			return nil
		}
		ref := refOf(e, "")
		cl.Produce(ctx, replayRecord(e), func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Failed++
				ref.Reason = err.Error()
				rep.FailedRecords = appendRef(rep.FailedRecords, ref)
				if produceErr == nil {
					produceErr = fmt.Errorf("produce %s/%d@%d to %s: %w", r.Topic, ref.Partition, ref.Offset, ref.SourceTopic, err)
				}
				return
			}
			rep.Replayed++
			rep.ByTopic[ref.SourceTopic]++
		})
		return nil
	})
	if ferr := cl.Flush(ctx); err == nil && ferr != nil {
		err = fmt.Errorf("dlq replay: waiting for acknowledgements: %w", ferr)
	}
	mu.Lock()
	defer mu.Unlock()
	if err == nil && produceErr != nil {
		err = fmt.Errorf("dlq replay: %d records not replayed, first: %w", rep.Failed, produceErr)
	}
	return rep, err
}

// selectForReplay counts e in rep and reports whether to produce it. With
// DryRun, a record that would be produced counts as replayed. It holds mu
// only while counting: Produce may block on a full buffer until callbacks,
// which take mu, have run.
func (r *Reader) selectForReplay(rep *Report, mu *sync.Mutex, e *Entry, o ReplayOptions) bool {
	mu.Lock()
	defer mu.Unlock()
	rep.Matched++
	switch {
	case e.SourceTopic == "" || e.hasProblem(HeaderSourceTopic):
		rep.Invalid++
		rep.InvalidRecords = appendRef(rep.InvalidRecords, refOf(e, HeaderSourceTopic+" missing"))
		return false
	case e.SourceTopic == r.Topic:
		rep.Invalid++
		rep.InvalidRecords = appendRef(rep.InvalidRecords, refOf(e, "source topic is the DLQ itself"))
		return false
	case e.hasProblem(HeaderReplayCount):
		rep.Invalid++
		rep.InvalidRecords = appendRef(rep.InvalidRecords, refOf(e, HeaderReplayCount+" missing or unreadable"))
		return false
	case e.ReplayCount >= o.MaxReplayCount:
		rep.Refused++
		rep.RefusedRecords = appendRef(rep.RefusedRecords,
			refOf(e, fmt.Sprintf("replayed %d times, maximum %d", e.ReplayCount, o.MaxReplayCount)))
		return false
	case e.Tombstone() && !o.Tombstones:
		rep.SkippedTombstones++
		return false
	}
	if o.DryRun {
		rep.Replayed++
		rep.ByTopic[e.SourceTopic]++
		return false
	}
	return true
}

// replayRecord builds the record that re-drives e to its source topic.
func replayRecord(e *Entry) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(e.Headers)+2)
	hasCorr := false
	for _, h := range e.Headers {
		if strings.HasPrefix(h.Key, HeaderPrefix) || strings.HasPrefix(h.Key, ConnectHeaderPrefix) {
			continue
		}
		if h.Key == pipeline.CorrelationHeader && len(h.Value) > 0 {
			hasCorr = true
		}
		hs = append(hs, h)
	}
	if !hasCorr && e.CorrelationID != "" {
		hs = append(hs, kgo.RecordHeader{Key: pipeline.CorrelationHeader, Value: []byte(e.CorrelationID)})
	}
	hs = append(hs, kgo.RecordHeader{Key: HeaderReplayCount, Value: []byte(strconv.Itoa(e.ReplayCount + 1))})
	return &kgo.Record{Topic: e.SourceTopic, Key: e.Key, Value: e.Value, Headers: hs}
}
