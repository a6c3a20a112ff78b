package dlq

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
)

// classify marks an error of producing to, or creating, a DLQ topic with
// the pipeline's class (DESIGN.md §5, STYLE.md "Errors"):
//
//   - refused credentials or permissions (topic, cluster, SASL) are the
//     DLQ's own condition: SinkDown, the partition pauses;
//   - a record the DLQ can never take (too large, malformed for the broker)
//     is Permanent: the pipeline halts that partition with a StoppedError
//     naming the record, since it can be neither written nor dead-lettered;
//   - timeouts, retriable broker errors, a full buffer, a closed client and
//     anything unrecognised are Transient (the pipeline's retry budget
//     bounds them; when it runs out the partition pauses);
//   - any other error a broker answers with is not about the record and
//     will not heal by retrying (a policy violation, an unsupported
//     setting): SinkDown.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return pipeline.Transient(err)
	case errors.Is(err, kerr.TopicAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed),
		errors.Is(err, kerr.SaslAuthenticationFailed),
		errors.Is(err, kerr.IllegalSaslState),
		errors.Is(err, kerr.UnsupportedSaslMechanism):
		return pipeline.SinkDown(err)
	case errors.Is(err, kerr.MessageTooLarge),
		errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord),
		errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.InvalidTimestamp):
		return pipeline.Permanent(err)
	case errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kgo.ErrRecordRetries),
		errors.Is(err, kgo.ErrMaxBuffered),
		errors.Is(err, kgo.ErrClientClosed),
		errors.Is(err, kgo.ErrAborting),
		kerr.IsRetriable(err):
		return pipeline.Transient(err)
	case errors.As(err, &ke):
		return pipeline.SinkDown(err)
	}
	return pipeline.Transient(err)
}

// isUnknownTopic reports whether err says the topic is gone, so the Writer
// creates it again before the next produce.
func isUnknownTopic(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}
