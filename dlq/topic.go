package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Suffix names a source topic's dead-letter topic when WriterConfig.Topic
// is empty.
const Suffix = ".dlq"

// TopicFor returns the dead-letter topic of records from source: topic when
// set (dlq.topic), else source + ".dlq".
func TopicFor(topic, source string) string {
	if topic != "" {
		return topic
	}
	return source + Suffix
}

// defaultBatchMaxBytes is franz-go's default record batch cap, used for a
// DLQ topic whose max.message.bytes could not be read.
const defaultBatchMaxBytes = 1_000_012

// headroom is added to the source topic's max.message.bytes for the DLQ
// topic, so a record that fit in its source still fits with the DLQ
// headers (two messages of at most MaxMessageBytes and the rest, short).
const headroom = 16 << 10

const maxMessageBytesConfig = "max.message.bytes"

// EnsureTopic makes sure the dead-letter topic of source exists, creating
// it when absent with the source's partition count and replication factor,
// and a max.message.bytes that takes every record the source takes plus
// the DLQ headers. An existing topic is used as it is. Another replica
// creating it at the same moment is fine.
//
// Send calls it on the first record of each source topic; call it at
// start-up for every configured topic, so a missing permission shows
// before the first poison record. Errors are classified as Send's are; a
// missing source topic is transient (nothing can be sized on it yet).
func (w *Writer) EnsureTopic(ctx context.Context, source string) error {
	if source == "" {
		return errors.New("dlq: ensure topic: empty source topic")
	}
	topic := w.TopicFor(source)
	w.topicsMu.RLock()
	_, ok := w.batchMax[topic]
	w.topicsMu.RUnlock()
	if ok {
		return nil
	}
	// One ensure at a time: partition workers hitting their first poison
	// record together ask the broker once.
	w.ensureMu.Lock()
	defer w.ensureMu.Unlock()
	w.topicsMu.RLock()
	_, ok = w.batchMax[topic]
	w.topicsMu.RUnlock()
	if ok {
		return nil
	}
	if err := w.ensure(ctx, source, topic); err != nil {
		return classify(fmt.Errorf("dlq: ensure topic %s for %s: %w", topic, source, err))
	}
	return nil
}

func (w *Writer) ensure(ctx context.Context, source, topic string) error {
	tds, err := w.adm.ListTopics(ctx, source, topic)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if td, ok := tds[topic]; ok && td.Err == nil {
		return w.learnMaxBytes(ctx, topic)
	} else if ok && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("metadata of %s: %w", topic, td.Err)
	}
	src, ok := tds[source]
	if !ok {
		return fmt.Errorf("source topic %s: %w", source, kerr.UnknownTopicOrPartition)
	}
	if src.Err != nil {
		return fmt.Errorf("source topic %s: %w", source, src.Err)
	}
	partitions := int32(len(src.Partitions))
	rf := int16(-1) // the broker's default, when the metadata names no replica
	if p, ok := src.Partitions[0]; ok && len(p.Replicas) > 0 {
		rf = int16(len(p.Replicas))
	}
	if partitions == 0 {
		partitions = -1
	}
	var configs map[string]*string
	if n, err := w.maxMessageBytes(ctx, source); err == nil {
		v := strconv.Itoa(n + headroom)
		configs = map[string]*string{maxMessageBytesConfig: &v}
	} else {
		w.log.Warn().Err(err).Str("topic", source).
			Msg("cannot read the source topic's max.message.bytes; the dead-letter topic gets the broker default")
	}
	resp, err := w.adm.CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		if err := w.waitReady(ctx, topic); err != nil {
			return fmt.Errorf("created, but %w", err)
		}
		w.log.Info().Str("topic", topic).Str("source", source).Int32("partitions", partitions).
			Int16("replication_factor", rf).Msg("created dead-letter topic")
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		if resp.ErrMessage != "" {
			err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
		}
		return fmt.Errorf("create with %d partitions, replication factor %d: %w", partitions, rf, err)
	}
	return w.learnMaxBytes(ctx, topic)
}

// waitReady waits until a broker's metadata shows every partition of a
// topic just created with a leader: brokers learn of a new topic a moment
// after the controller answers, and a produce before that waits out the
// client's backoff.
func (w *Writer) waitReady(ctx context.Context, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	for {
		resp, err := req.RequestWith(ctx, w.cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) > 0 {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.ErrorCode == 0 && p.Leader >= 0
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready in the metadata yet: %w", context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// learnMaxBytes records topic's max.message.bytes as the producer's batch
// cap for it, and marks the topic ensured.
func (w *Writer) learnMaxBytes(ctx context.Context, topic string) error {
	n, err := w.maxMessageBytes(ctx, topic)
	if err != nil {
		// Not fatal: franz-go's default cap fits the broker's default.
		w.log.Warn().Err(err).Str("topic", topic).Msg("cannot read the dead-letter topic's max.message.bytes")
		n = defaultBatchMaxBytes
	}
	w.topicsMu.Lock()
	w.batchMax[topic] = int32(min(n, 1<<30))
	w.topicsMu.Unlock()
	return nil
}

// maxMessageBytes returns the effective max.message.bytes of topic.
func (w *Writer) maxMessageBytes(ctx context.Context, topic string) (int, error) {
	rcs, err := w.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, err
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, err
	}
	if rc.Err != nil {
		return 0, rc.Err
	}
	for _, c := range rc.Configs {
		if c.Key == maxMessageBytesConfig && c.Value != nil {
			n, err := strconv.Atoi(*c.Value)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%s of %s: %q is not a positive integer", maxMessageBytesConfig, topic, *c.Value)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s of %s: not reported", maxMessageBytesConfig, topic)
}

// forget drops what the Writer knows about topic, so the next Send
// ensures it again (it was deleted under us).
func (w *Writer) forget(topic string) {
	w.topicsMu.Lock()
	delete(w.batchMax, topic)
	w.topicsMu.Unlock()
}

// batchMaxBytes is the producer's record batch cap for topic
// (kgo.ProducerBatchMaxBytesFn): its max.message.bytes once known.
func (w *Writer) batchMaxBytes(topic string) int32 {
	w.topicsMu.RLock()
	defer w.topicsMu.RUnlock()
	if n, ok := w.batchMax[topic]; ok {
		return n
	}
	return defaultBatchMaxBytes
}
