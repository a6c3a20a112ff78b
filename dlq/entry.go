package dlq

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Entry is one dead-lettered record as Inspect reads it: the record and
// its DLQ headers decoded.
type Entry struct {
	// Partition and Offset locate the record in the DLQ topic.
	Partition int32
	Offset    int64
	// Timestamp, Key, Value and Headers are the DLQ record's: the source
	// record's timestamp, key and value, and every header (the source's
	// and the DLQ's). Value is nil for a tombstone.
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []kgo.RecordHeader

	// The DLQ headers. SourcePartition and SourceOffset are -1, and the
	// strings empty, when a header is missing; Problems says which.
	Class           string
	Stage           string
	Message         string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Attempts        int
	ReplayCount     int
	CorrelationID   string
	FailedAt        time.Time

	// Problems lists the DLQ headers that are missing or unreadable: such
	// a record was not written by ragstream's Writer (or was altered), and
	// Replay does not replay it when it lacks the source topic or a
	// readable replay count.
	Problems []string
}

// Tombstone reports whether the record has a null value.
func (e *Entry) Tombstone() bool { return e.Value == nil }

// NewEntry decodes a record read from a DLQ topic.
func NewEntry(r *kgo.Record) Entry {
	e := Entry{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, Headers: r.Headers, SourcePartition: -1, SourceOffset: -1}
	str := func(name string, dst *string) {
		if v, ok := headerValue(r.Headers, name); ok {
			*dst = string(v)
		} else {
			e.Problems = append(e.Problems, name+" missing")
		}
	}
	num := func(name string, bits int, set func(int64)) {
		v, ok := headerValue(r.Headers, name)
		if !ok {
			e.Problems = append(e.Problems, name+" missing")
			return
		}
		n, err := strconv.ParseInt(string(v), 10, bits)
		if err != nil || n < 0 {
			e.Problems = append(e.Problems, name+" "+strconv.Quote(string(v))+" is not a non-negative integer")
			return
		}
		set(n)
	}
	str(HeaderErrorClass, &e.Class)
	str(HeaderErrorStage, &e.Stage)
	str(HeaderErrorMessage, &e.Message)
	str(HeaderSourceTopic, &e.SourceTopic)
	num(HeaderSourcePartition, 32, func(n int64) { e.SourcePartition = int32(n) })
	num(HeaderSourceOffset, 64, func(n int64) { e.SourceOffset = n })
	num(HeaderAttempts, 32, func(n int64) { e.Attempts = int(n) })
	num(HeaderReplayCount, 32, func(n int64) { e.ReplayCount = int(n) })
	str(HeaderCorrelationID, &e.CorrelationID)
	if v, ok := headerValue(r.Headers, HeaderFailedAt); !ok {
		e.Problems = append(e.Problems, HeaderFailedAt+" missing")
	} else if t, err := time.Parse(time.RFC3339Nano, string(v)); err != nil {
		e.Problems = append(e.Problems, HeaderFailedAt+" "+strconv.Quote(string(v))+" is not RFC 3339")
	} else {
		e.FailedAt = t
	}
	return e
}

// hasProblem reports whether header name is missing or unreadable.
func (e *Entry) hasProblem(name string) bool {
	for _, p := range e.Problems {
		if len(p) > len(name) && p[:len(name)] == name && p[len(name)] == ' ' {
			return true
		}
	}
	return false
}

// Bytes is a key, value or header value in JSON: {"text": ...} when it is
// valid UTF-8, {"base64": ...} otherwise, null when absent (a tombstone's
// value).
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (b Bytes) MarshalJSON() ([]byte, error) {
	if b == nil {
		return []byte("null"), nil
	}
	if utf8.Valid(b) {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{string(b)})
	}
	return json.Marshal(struct {
		Base64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString(b)})
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value Bytes  `json:"value"`
}

type jsonEntry struct {
	Partition       int32        `json:"partition"`
	Offset          int64        `json:"offset"`
	Timestamp       string       `json:"timestamp"`
	Key             Bytes        `json:"key"`
	Value           Bytes        `json:"value"`
	Class           string       `json:"class"`
	Stage           string       `json:"stage"`
	Message         string       `json:"message"`
	SourceTopic     string       `json:"source_topic"`
	SourcePartition int32        `json:"source_partition"`
	SourceOffset    int64        `json:"source_offset"`
	Attempts        int          `json:"attempts"`
	ReplayCount     int          `json:"replay_count"`
	CorrelationID   string       `json:"correlation_id"`
	FailedAt        string       `json:"failed_at,omitempty"`
	Headers         []jsonHeader `json:"headers"`
	Problems        []string     `json:"problems,omitempty"`
}

// MarshalJSON renders the entry as `ragstream dlq inspect --format json`
// prints it (and the admin API returns it): snake_case fields, key, value
// and header values as Bytes, times in RFC 3339.
func (e Entry) MarshalJSON() ([]byte, error) {
	je := jsonEntry{Partition: e.Partition, Offset: e.Offset, Timestamp: e.Timestamp.UTC().Format(time.RFC3339Nano),
		Key: e.Key, Value: e.Value, Class: e.Class, Stage: e.Stage, Message: e.Message,
		SourceTopic: e.SourceTopic, SourcePartition: e.SourcePartition, SourceOffset: e.SourceOffset,
		Attempts: e.Attempts, ReplayCount: e.ReplayCount, CorrelationID: e.CorrelationID,
		Headers: make([]jsonHeader, 0, len(e.Headers)), Problems: e.Problems}
	if !e.FailedAt.IsZero() {
		je.FailedAt = e.FailedAt.UTC().Format(FailedAtLayout)
	}
	for _, h := range e.Headers {
		je.Headers = append(je.Headers, jsonHeader{Key: h.Key, Value: h.Value})
	}
	return json.Marshal(je)
}
