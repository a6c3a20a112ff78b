package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrStop, returned by Inspect's callback, ends the read early without an
// error (a --limit reached, a client gone).
var ErrStop = errors.New("dlq: stop reading")

// Reader reads a DLQ topic for Inspect and Replay.
type Reader struct {
	// Topic is the DLQ topic.
	Topic string
	// Kafka are the connection options (pipeline.KafkaOpts).
	Kafka []kgo.Opt
	// Progress, when set, is called after each fetch with how many records
	// of the range have been read and how many it holds (the end offsets
	// at the start of the read, minus the start offsets).
	Progress func(read, total int64)
	// IdleTimeout ends a read that receives nothing for this long while the
	// brokers still answer: the offsets left are gaps (a compacted DLQ).
	// Zero means 10 s.
	IdleTimeout time.Duration
}

// Inspect calls fn for each record of the DLQ topic that f selects, in
// offset order per partition, from the start of the range to the end
// offsets at the moment of the call: records arriving meanwhile are not
// waited for, so it always ends. fn returning ErrStop ends the read
// without error; any other error ends it with that error.
func Inspect(ctx context.Context, kafka []kgo.Opt, topic string, f Filter, fn func(Entry) error) error {
	r := &Reader{Topic: topic, Kafka: kafka}
	return r.Inspect(ctx, f, fn)
}

// Inspect is the package function Inspect, with r's progress reporting.
func (r *Reader) Inspect(ctx context.Context, f Filter, fn func(Entry) error) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	return r.scan(ctx, cl, f, func(e *Entry) error {
		if !f.Match(e) {
			return nil
		}
		return fn(*e)
	})
}

func (r *Reader) client(extra ...kgo.Opt) (*kgo.Client, error) {
	if r.Topic == "" {
		return nil, errors.New("dlq: topic: empty")
	}
	opts := append(append([]kgo.Opt{}, r.Kafka...),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("dlq: kafka client: %w", err)
	}
	return cl, nil
}

// span is the part of one partition a read covers: [start, end).
type span struct{ start, end int64 }

// plan lists, per partition to read, the offsets to cover.
func (r *Reader) plan(ctx context.Context, adm *kadm.Client, f Filter) (map[int32]span, error) {
	starts, err := adm.ListStartOffsets(ctx, r.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("dlq: topic %s does not exist", r.Topic)
		}
		return nil, fmt.Errorf("dlq: start offsets of %s: %w", r.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, r.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: end offsets of %s: %w", r.Topic, err)
	}
	if len(starts[r.Topic]) == 0 {
		return nil, fmt.Errorf("dlq: topic %s does not exist", r.Topic)
	}
	out := map[int32]span{}
	for p, so := range starts[r.Topic] {
		if f.Partitions != nil && !slices.Contains(f.Partitions, p) {
			continue
		}
		eo, ok := ends.Lookup(r.Topic, p)
		if !ok {
			continue
		}
		s := span{start: so.Offset, end: eo.Offset}
		if o := f.Offsets; o != nil {
			s.start = max(s.start, o.From)
			if o.To >= 0 {
				s.end = min(s.end, o.To+1)
			}
		}
		if s.start < s.end {
			out[p] = s
		}
	}
	for _, p := range f.Partitions {
		if _, ok := starts[r.Topic][p]; !ok {
			return nil, fmt.Errorf("dlq: topic %s has no partition %d", r.Topic, p)
		}
	}
	return out, nil
}

// scan reads the records f's partitions and offsets select and calls fn
// for each (before the header filter).
func (r *Reader) scan(ctx context.Context, cl *kgo.Client, f Filter, fn func(*Entry) error) error {
	adm := kadm.NewClient(cl)
	spans, err := r.plan(ctx, adm, f)
	if err != nil {
		return err
	}
	var total, read int64
	offsets := map[int32]kgo.Offset{}
	for p, s := range spans {
		total += s.end - s.start
		offsets[p] = kgo.NewOffset().At(s.start)
	}
	if r.Progress != nil {
		r.Progress(0, total)
	}
	if len(spans) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.Topic: offsets})
	idle := r.IdleTimeout
	if idle <= 0 {
		idle = 10 * time.Second
	}
	for len(spans) > 0 {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlq: reading %s: %w", r.Topic, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("dlq: fetching %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		n := 0
		var stop error
		fetches.EachRecord(func(rec *kgo.Record) {
			n++
			s, ok := spans[rec.Partition]
			if stop != nil || !ok || rec.Offset >= s.end {
				return
			}
			if rec.Offset+1 >= s.end {
				delete(spans, rec.Partition)
			}
			read++
			if rec.Attrs.IsControl() {
				return
			}
			e := NewEntry(rec)
			stop = fn(&e)
		})
		if r.Progress != nil && n > 0 {
			r.Progress(read, total)
		}
		if errors.Is(stop, ErrStop) {
			return nil
		}
		if stop != nil {
			return stop
		}
		if n == 0 {
			// Nothing for a whole idle period: if the brokers still answer,
			// what is left are gaps below the end offsets (compaction).
			ends, err := adm.ListEndOffsets(ctx, r.Topic)
			for p := range spans {
				if err != nil {
					break
				}
				if o, ok := ends.Lookup(r.Topic, p); !ok {
					err = fmt.Errorf("partition %d: no end offset", p)
				} else if o.Err != nil {
					err = fmt.Errorf("partition %d: %w", p, o.Err)
				}
			}
			if err != nil {
				return fmt.Errorf("dlq: reading %s: no records for %s and the brokers do not answer: %w", r.Topic, idle, err)
			}
			return nil
		}
	}
	return nil
}
