// Package dlq is ragstream's dead-letter queue (DESIGN.md §5): the Writer
// that implements pipeline.DeadLetter, the DLQ header schema, and the
// inspect and replay operations behind `ragstream dlq` and the admin API.
//
// A dead-lettered record is the source record byte-for-byte — key, value
// (a tombstone stays a tombstone), timestamp and headers — except that
// incoming ragstream.* headers are dropped, followed by the headers named
// below, in this order. Values are UTF-8 text; numbers are decimal.
package dlq

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
)

// Header names of a dead-lettered record, in the order the Writer appends
// them. The names are part of the operator contract (DESIGN.md §5).
const (
	// HeaderErrorClass says why the record cannot be written: decode,
	// schema or store_rejected (pipeline.ErrorClass).
	HeaderErrorClass = "ragstream.error.class"
	// HeaderErrorStage says where: decode, validate, sink.neo4j, sink.qdrant.
	HeaderErrorStage = "ragstream.error.stage"
	// HeaderErrorMessage is the error's text, at most MaxMessageBytes.
	HeaderErrorMessage = "ragstream.error.message"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset are
	// the record's coordinates in its source topic; replay produces to
	// HeaderSourceTopic.
	HeaderSourceTopic     = "ragstream.source.topic"
	HeaderSourcePartition = "ragstream.source.partition"
	HeaderSourceOffset    = "ragstream.source.offset"
	// HeaderAttempts is how many times ragstream tried the record. A
	// record error is permanent, so the pipeline tries a record once: the
	// value is 1 (the pipeline does not count tries per record).
	HeaderAttempts = "ragstream.attempts"
	// HeaderFailedAt is when the Writer dead-lettered the record, RFC 3339
	// in UTC with milliseconds (FailedAtLayout).
	HeaderFailedAt = "ragstream.failed_at"
	// HeaderReplayCount is how often the record was replayed from the DLQ:
	// carried over from the incoming record's header of the same name, 0
	// when absent. Replay sets it one higher and refuses past a maximum.
	HeaderReplayCount = "ragstream.replay_count"
	// HeaderCorrelationID is the record's correlation id: its
	// correlation-id header, or the id derived from topic/partition/offset
	// (pipeline.CorrelationID). Replay restores correlation-id from it.
	HeaderCorrelationID = "ragstream.correlation_id"
)

// Kafka Connect's dead-letter headers, added after ragstream's when
// ConnectHeaders is on (dlq.connect_compatible_headers, default true), so
// tooling written for Connect DLQs reads ours. Connect's own reporter also
// writes connector name, task id and stack trace; ragstream has none of
// those and writes exactly these six.
const (
	ConnectHeaderTopic            = "__connect.errors.topic"
	ConnectHeaderPartition        = "__connect.errors.partition"
	ConnectHeaderOffset           = "__connect.errors.offset"
	ConnectHeaderStage            = "__connect.errors.stage"
	ConnectHeaderExceptionClass   = "__connect.errors.exception.class.name"
	ConnectHeaderExceptionMessage = "__connect.errors.exception.message"
)

// HeaderPrefix and ConnectHeaderPrefix start every header the Writer owns.
// The Writer drops incoming HeaderPrefix headers; Replay drops both.
const (
	HeaderPrefix        = "ragstream."
	ConnectHeaderPrefix = "__connect.errors."
)

// Connect stages (org.apache.kafka.connect.runtime.errors.Stage) that
// ragstream's stages map to: decoding and validation are what a Connect
// value converter does; a store refusing a record is a sink task's put.
const (
	ConnectStageValueConverter = "VALUE_CONVERTER"
	ConnectStageTaskPut        = "TASK_PUT"
)

// Exception class names written to __connect.errors.exception.class.name,
// one per ragstream.error.class.
const (
	ExceptionDecode        = "ragstream.DecodeError"
	ExceptionSchema        = "ragstream.SchemaError"
	ExceptionStoreRejected = "ragstream.StoreRejectedError"
)

// FailedAtLayout formats HeaderFailedAt: RFC 3339, fixed width, so the
// values sort as text.
const FailedAtLayout = "2006-01-02T15:04:05.000Z07:00"

// MaxMessageBytes bounds HeaderErrorMessage (and the Connect message), so
// a long error cannot push a record past the DLQ's maximum message size.
const MaxMessageBytes = 1024

// connectStage maps ragstream.error.stage to __connect.errors.stage.
func connectStage(stage string) string {
	switch stage {
	case pipeline.StageDecode, pipeline.StageValidate:
		return ConnectStageValueConverter
	}
	return ConnectStageTaskPut
}

// exceptionClass maps ragstream.error.class to the Connect exception class.
func exceptionClass(class string) string {
	switch class {
	case pipeline.ErrorClassDecode:
		return ExceptionDecode
	case pipeline.ErrorClassSchema:
		return ExceptionSchema
	}
	return ExceptionStoreRejected
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// headerValue returns the value of the last header named key: when a name
// repeats, the last one is what Kafka's Headers.lastHeader (and Connect)
// reads.
func headerValue(hs []kgo.RecordHeader, key string) ([]byte, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// parseCount reads a non-negative decimal count header value.
func parseCount(v []byte) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil || n < 0 {
		return 0, &headerError{value: string(v)}
	}
	return n, nil
}

type headerError struct{ value string }

func (e *headerError) Error() string {
	return "not a non-negative integer: " + strconv.Quote(e.value)
}

// incomingReplayCount is the replay count the source record carries: its
// ragstream.replay_count header, 0 when absent. ok is false when the header
// is present but unreadable (it is then taken as 0).
func incomingReplayCount(src *kgo.Record) (n int, ok bool) {
	v, found := headerValue(src.Headers, HeaderReplayCount)
	if !found {
		return 0, true
	}
	n, err := parseCount(v)
	return n, err == nil
}

// deadLetterHeaders returns src's headers without ragstream.* ones,
// followed by the DLQ headers of r, in the documented order.
func deadLetterHeaders(r *pipeline.Record, replayCount int, failedAt time.Time, connect bool) []kgo.RecordHeader {
	src := r.Src
	n := 10
	if connect {
		n += 6
	}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+n)
	for _, h := range src.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			hs = append(hs, h)
		}
	}
	class := pipeline.ErrorClass(r.Err)
	msg := "unknown error"
	if r.Err != nil {
		msg = truncate(r.Err.Error(), MaxMessageBytes)
	}
	partition := strconv.FormatInt(int64(src.Partition), 10)
	offset := strconv.FormatInt(src.Offset, 10)
	corr := r.CorrelationID
	if corr == "" {
		corr = pipeline.CorrelationID(src)
	}
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderErrorClass, class)
	add(HeaderErrorStage, r.Stage)
	add(HeaderErrorMessage, msg)
	add(HeaderSourceTopic, src.Topic)
	add(HeaderSourcePartition, partition)
	add(HeaderSourceOffset, offset)
	add(HeaderAttempts, "1")
	add(HeaderFailedAt, failedAt.UTC().Format(FailedAtLayout))
	add(HeaderReplayCount, strconv.Itoa(replayCount))
	add(HeaderCorrelationID, corr)
	if connect {
		add(ConnectHeaderTopic, src.Topic)
		add(ConnectHeaderPartition, partition)
		add(ConnectHeaderOffset, offset)
		add(ConnectHeaderStage, connectStage(r.Stage))
		add(ConnectHeaderExceptionClass, exceptionClass(class))
		add(ConnectHeaderExceptionMessage, msg)
	}
	return hs
}
