package dlq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
)

// DefaultProduceTimeout bounds one Send when WriterConfig.ProduceTimeout
// is zero (dlq.produce_timeout).
const DefaultProduceTimeout = 3 * time.Second

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Topic is the one dead-letter topic of every source; empty means
	// "<source>.dlq" for each source topic (dlq.topic).
	Topic string
	// ConnectHeaders adds Kafka Connect's __connect.errors.* headers
	// (dlq.connect_compatible_headers).
	ConnectHeaders bool
	// ProduceTimeout bounds how long Send waits for the DLQ's
	// acknowledgements (dlq.produce_timeout); zero means
	// DefaultProduceTimeout.
	ProduceTimeout time.Duration
}

// ConfigFrom returns the WriterConfig of the dlq section of the
// configuration.
func ConfigFrom(c config.DLQ) WriterConfig {
	return WriterConfig{Topic: c.Topic, ConnectHeaders: c.ConnectCompatibleHeaders,
		ProduceTimeout: c.ProduceTimeout.Duration()}
}

// Writer is the dead-letter producer: it implements pipeline.DeadLetter.
//
// Its own franz-go client is idempotent with acks=all (franz-go's
// defaults, kept), so a produce the client retries after a lost response
// is written once. A record keeps its source partition in the DLQ when the
// DLQ topic has that partition (it has, when the Writer created it:
// same partition count as the source), else goes to source partition mod
// the DLQ's partition count; either way the records of one source
// partition, and so of one key, stay in source order in one DLQ partition.
//
// Exactly once in effect across Sends: when Send gives up waiting
// (ProduceTimeout, or its context ends) the records stay in the client,
// which keeps retrying them with their sequence numbers; a later Send of
// the same source record (topic, partition, offset) — the pipeline's
// retry — waits for that produce instead of producing a second copy. So a
// record the broker appended but did not acknowledge in time is in the
// DLQ once. Only a process that dies between the DLQ's ack and the offset
// commit writes a record again after its restart (at-least-once, as
// everywhere in ragstream); replaying both copies changes nothing,
// since the stores' writes are idempotent.
type Writer struct {
	cfg WriterConfig
	cl  *kgo.Client
	adm *kadm.Client
	log zerolog.Logger
	now func() time.Time

	// ctx is the produces' context: they outlive the Send that started
	// them and end only with Close.
	ctx    context.Context
	cancel context.CancelFunc

	ensureMu sync.Mutex
	topicsMu sync.RWMutex
	// batchMax holds, for each DLQ topic known to exist, its
	// max.message.bytes.
	batchMax map[string]int32

	mu sync.Mutex
	// inflight holds the produce of each source record that Send started
	// and that no Send has yet reported as acknowledged.
	inflight map[srcKey]*delivery
}

type srcKey struct {
	topic     string
	partition int32
	offset    int64
}

// delivery is one record's produce: done closes when the DLQ answered.
type delivery struct {
	done chan struct{}
	err  error
	at   time.Time // when done closed
}

// keepAcked bounds how long an acknowledged produce that no Send has
// reported yet is remembered: the pipeline retries a Send within seconds,
// so a longer wait means the record's partition moved elsewhere.
const keepAcked = 15 * time.Minute

// NewWriter returns a Writer producing with the connection options kafka
// (pipeline.KafkaOpts). It does not contact the brokers; EnsureTopic or the
// first Send does.
func NewWriter(cfg WriterConfig, kafka []kgo.Opt, log zerolog.Logger) (*Writer, error) {
	if cfg.ProduceTimeout < 0 {
		return nil, fmt.Errorf("dlq.produce_timeout: must be positive, got %s", cfg.ProduceTimeout)
	}
	if cfg.ProduceTimeout == 0 {
		cfg.ProduceTimeout = DefaultProduceTimeout
	}
	w := &Writer{cfg: cfg, log: log.With().Str("component", "dlq").Logger(), now: time.Now,
		batchMax: map[string]int32{}, inflight: map[srcKey]*delivery{}}
	// Defaults the caller's options may override, then what the Writer's
	// guarantees rest on. franz-go waits for fresh metadata before it
	// retries a refused produce; with a retry (and a metadata refresh) at
	// least every second, a recovered DLQ is noticed within one
	// ProduceTimeout rather than after the 5 s default metadata age.
	opts := []kgo.Opt{
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.RetryBackoffFn(retryBackoff),
		kgo.MetadataMinAge(time.Second),
		kgo.WithLogger(pipeline.NewKgoLogger(w.log)),
	}
	opts = append(opts, kafka...)
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
			return sourcePartition
		})),
		kgo.ProducerBatchMaxBytesFn(w.batchMaxBytes),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dlq: kafka client: %w", err)
	}
	w.cl = cl
	w.adm = kadm.NewClient(cl)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// retryBackoff doubles from 100 ms to 1 s, with jitter.
func retryBackoff(fails int) time.Duration {
	d := 100 * time.Millisecond << min(fails, 4)
	d = min(d, time.Second)
	return d/2 + rand.N(d/2)
}

// sourcePartition is the DLQ partitioner: the record's Partition holds its
// source partition when it is handed to the client.
func sourcePartition(r *kgo.Record, n int) int {
	p := int(r.Partition)
	if p < 0 {
		p = 0
	}
	return p % n
}

// TopicFor returns the dead-letter topic of records from source.
func (w *Writer) TopicFor(source string) string { return TopicFor(w.cfg.Topic, source) }

// Send dead-letters recs and returns nil only when the DLQ acknowledged
// every one of them (pipeline.DeadLetter). It waits at most ProduceTimeout
// (or until ctx ends); an unacknowledged record is not lost: the client
// keeps producing it, and the next Send of the same record waits for that
// produce rather than starting another.
//
// Errors are classified (see classify): Transient for a timeout or a
// retriable broker error, SinkDown for refused permissions, Permanent for
// a record the DLQ cannot take at all.
func (w *Writer) Send(ctx context.Context, recs []*pipeline.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if w.ctx.Err() != nil {
		return pipeline.Transient(fmt.Errorf("dlq: send %d records: %w", len(recs), kgo.ErrClientClosed))
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.ProduceTimeout)
	defer cancel()
	for i, r := range recs {
		if r == nil || r.Src == nil {
			return pipeline.Permanent(fmt.Errorf("dlq: send: record %d has no source record", i))
		}
		if i > 0 && r.Src.Topic == recs[i-1].Src.Topic {
			continue
		}
		if err := w.EnsureTopic(ctx, r.Src.Topic); err != nil {
			return err
		}
	}

	now := w.now()
	ds := make([]*delivery, len(recs))
	var fresh []int
	w.mu.Lock()
	w.sweepLocked(now)
	for i, r := range recs {
		k := srcKey{r.Src.Topic, r.Src.Partition, r.Src.Offset}
		if d, ok := w.inflight[k]; ok {
			ds[i] = d
			continue
		}
		d := &delivery{done: make(chan struct{})}
		w.inflight[k] = d
		ds[i] = d
		fresh = append(fresh, i)
	}
	w.mu.Unlock()

	for _, i := range fresh {
		r, d := recs[i], ds[i]
		k := srcKey{r.Src.Topic, r.Src.Partition, r.Src.Offset}
		kr := w.record(r, now)
		w.cl.TryProduce(w.ctx, kr, func(kr *kgo.Record, err error) { w.finish(k, d, kr.Topic, err) })
	}

	for i, d := range ds {
		select {
		case <-d.done:
		case <-ctx.Done():
			n := 0
			for _, d := range ds[i:] {
				select {
				case <-d.done:
				default:
					n++
				}
			}
			return pipeline.Transient(fmt.Errorf("dlq: %d of %d records not acknowledged by %s within %s: %w",
				n, len(recs), w.TopicFor(recs[i].Src.Topic), w.cfg.ProduceTimeout, context.Cause(ctx)))
		}
	}

	var errs []error
	for i, d := range ds {
		if d.err != nil {
			src := recs[i].Src
			errs = append(errs, fmt.Errorf("%s/%d@%d: %w", src.Topic, src.Partition, src.Offset, d.err))
		}
	}
	if len(errs) > 0 {
		// The worst class wins: one record the DLQ cannot take at all halts
		// the partition, a refused permission pauses it.
		return worst(fmt.Errorf("dlq: %d of %d records refused: %w", len(errs), len(recs), errors.Join(errs...)), errs)
	}
	w.mu.Lock()
	for i, r := range recs {
		k := srcKey{r.Src.Topic, r.Src.Partition, r.Src.Offset}
		if w.inflight[k] == ds[i] {
			delete(w.inflight, k)
		}
	}
	w.mu.Unlock()
	return nil
}

// worst classifies err by the most severe class among errs: Permanent,
// then SinkDown, then Transient.
func worst(err error, errs []error) error {
	class := pipeline.ClassTransient
	for _, e := range errs {
		switch pipeline.ClassOf(classify(e)) {
		case pipeline.ClassPermanent:
			return pipeline.Permanent(err)
		case pipeline.ClassSinkDown:
			class = pipeline.ClassSinkDown
		}
	}
	if class == pipeline.ClassSinkDown {
		return pipeline.SinkDown(err)
	}
	return pipeline.Transient(err)
}

// record builds r's dead-letter record.
func (w *Writer) record(r *pipeline.Record, now time.Time) *kgo.Record {
	src := r.Src
	replays, ok := incomingReplayCount(src)
	if !ok {
		w.log.Warn().Str("topic", src.Topic).Int32("partition", src.Partition).Int64("offset", src.Offset).
			Msg("unreadable " + HeaderReplayCount + " header taken as 0")
	}
	return &kgo.Record{
		Topic:     w.TopicFor(src.Topic),
		Partition: src.Partition,
		Key:       src.Key,
		Value:     src.Value,
		Timestamp: src.Timestamp,
		Headers:   deadLetterHeaders(r, replays, now, w.cfg.ConnectHeaders),
	}
}

// finish records a produce's outcome. A failed produce is forgotten, so
// the next Send of the record produces it afresh.
func (w *Writer) finish(k srcKey, d *delivery, topic string, err error) {
	if err != nil && isUnknownTopic(err) {
		w.forget(topic)
	}
	w.mu.Lock()
	d.err = err
	d.at = w.now()
	if err != nil && w.inflight[k] == d {
		delete(w.inflight, k)
	}
	w.mu.Unlock()
	close(d.done)
}

// sweepLocked forgets acknowledged produces no Send came back for.
func (w *Writer) sweepLocked(now time.Time) {
	for k, d := range w.inflight {
		select {
		case <-d.done:
			if now.Sub(d.at) > keepAcked {
				delete(w.inflight, k)
			}
		default:
		}
	}
}

// Close waits until ctx ends for the produces no Send saw acknowledged,
// then closes the client. Records still unacknowledged then were not
// reported to the pipeline as dead-lettered, so their offsets are not
// committed and they are processed again after a restart. Close returns
// the flush's error, if any.
func (w *Writer) Close(ctx context.Context) error {
	err := w.cl.Flush(ctx)
	w.cancel()
	w.cl.Close()
	if err != nil {
		return fmt.Errorf("dlq: flush on close: %w", err)
	}
	return nil
}

// Ping checks that the DLQ's brokers answer (for readiness).
func (w *Writer) Ping(ctx context.Context) error {
	return classify(w.cl.Ping(ctx))
}

var _ pipeline.DeadLetter = (*Writer)(nil)
