package logging

import (
	"context"
	"regexp"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// MaxCorrelationIDLen bounds an accepted correlation id, so a client cannot
// make every log line of its request arbitrarily long.
const MaxCorrelationIDLen = 128

var correlationIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidCorrelationID reports whether id may be used as given: 1 to 128
// characters of letters, digits and . _ : - — enough for UUIDs, W3C trace
// ids and the topic/partition/offset form, and nothing that needs escaping
// in a header, a log line or a Kafka header.
func ValidCorrelationID(id string) bool {
	return len(id) <= MaxCorrelationIDLen && correlationIDPattern.MatchString(id)
}

// NewCorrelationID returns a fresh random correlation id (a UUIDv4).
func NewCorrelationID() string { return uuid.NewString() }

type correlationKey struct{}

// WithCorrelationID returns ctx carrying id, for code that needs the id
// itself (to put it on a Kafka header or in a response) rather than a
// logger that prints it.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// WithCorrelation returns l with correlation_id on every line; an empty id
// leaves l as it is.
func WithCorrelation(l zerolog.Logger, id string) zerolog.Logger {
	if id == "" {
		return l
	}
	return l.With().Str(FieldCorrelationID, id).Logger()
}

// ForPartition returns l with topic and partition on every line, for the
// lines of one partition worker.
func ForPartition(l zerolog.Logger, topic string, partition int32) zerolog.Logger {
	return l.With().Str(FieldTopic, topic).Int32(FieldPartition, partition).Logger()
}

// RecordRef names one Kafka record on a log line. Embed it in an event —
// log.Warn().EmbedObject(logging.RecordRef{...}).Msg("...") — to add topic,
// partition, offset and, when known, correlation_id without building a
// child logger per record.
type RecordRef struct {
	Topic         string
	Partition     int32
	Offset        int64
	CorrelationID string
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler.
func (r RecordRef) MarshalZerologObject(e *zerolog.Event) {
	e.Str(FieldTopic, r.Topic).Int32(FieldPartition, r.Partition).Int64(FieldOffset, r.Offset)
	if r.CorrelationID != "" {
		e.Str(FieldCorrelationID, r.CorrelationID)
	}
}

// ForRecord returns l with the fields of r on every line.
func ForRecord(l zerolog.Logger, r RecordRef) zerolog.Logger {
	c := l.With().Str(FieldTopic, r.Topic).Int32(FieldPartition, r.Partition).Int64(FieldOffset, r.Offset)
	if r.CorrelationID != "" {
		c = c.Str(FieldCorrelationID, r.CorrelationID)
	}
	return c.Logger()
}
