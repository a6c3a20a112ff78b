package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avast/retry-go/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errAgain makes deliver run another cycle at once: records were taken out
// of the batch (dead-lettered or cut off before a halt).
var errAgain = errors.New("batch changed; apply again")

// deliver gets every record of b into both stores or the DLQ, and then
// marks the batch for commit. It returns false when the worker was aborted
// (the batch stays uncommitted).
//
// A cycle dead-letters the records that failed, then applies the rest.
// Transient errors are retried inside the cycle (retry); a store that stays
// down, or runs out of transient retries, pauses the partition's fetching
// and the cycle is repeated with a slow, doubling backoff until it succeeds
// or the worker is aborted. Nothing is dead-lettered for a store being down.
func (w *partition) deliver(b *Batch, decode time.Duration) bool {
	n, bytes := len(b.Records), b.Bytes
	start := time.Now()
	attempts := 0
	backoff := w.c.opts.SinkDownBackoff
	for {
		err := w.cycle(b, &attempts)
		if err == nil {
			break
		}
		if errors.Is(err, errAgain) {
			continue
		}
		if w.ctx.Err() != nil {
			ev := w.log.Info().Int("records", n).AnErr("cause", context.Cause(w.ctx))
			if len(b.Records) > 0 {
				ev = ev.Int64("offset", b.Records[0].Src.Offset)
			}
			ev.Msg("in-flight batch abandoned uncommitted")
			return false
		}
		w.pause(PauseSinkDown)
		w.log.Error().Err(err).Stringer("class", ClassOf(err)).Int64("offset", b.Records[0].Src.Offset).
			Dur("retry_in", backoff).Msg("store down; partition paused, retrying")
		select {
		case <-w.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.c.opts.SinkDownMaxBackoff)
	}
	w.resume(PauseSinkDown)
	w.finish(b, n, bytes, decode, time.Since(start), attempts)
	return true
}

// cycle is one attempt at a batch: dead-letter, then apply.
func (w *partition) cycle(b *Batch, attempts *int) error {
	if w.c.dl != nil {
		if err := w.deadLetter(b); err != nil {
			return err
		}
	}
	valid := false
	for _, r := range b.Records {
		if r.Err == nil {
			valid = true
			break
		}
	}
	if !valid {
		return nil
	}
	err := w.applyIsolating(b, attempts)
	if err == nil || ClassOf(err) != ClassPermanent {
		return err
	}
	return w.takeCulprits(b, err)
}

// takeCulprits handles a permanent refusal of single records: with a DLQ
// they get Err and go there in the next cycle; without one the batch is cut
// before the first of them and the partition halts after writing the rest.
func (w *partition) takeCulprits(b *Batch, err error) error {
	stage := stageSinkPrefix + w.c.auth.Name()
	var se *sinkError
	if errors.As(err, &se) {
		stage = stageSinkPrefix + w.c.sink.Name()
	}
	fresh := 0
	var first *Record
	for _, re := range recordErrors(err) {
		r := re.Record
		if r == nil || r.Err != nil || !inBatch(b, r) {
			continue
		}
		r.Err, r.Stage = Permanent(re.Err), stage
		fresh++
		if first == nil || r.Src.Offset < first.Src.Offset {
			first = r
		}
		w.log.Warn().Int64("offset", r.Src.Offset).Str("correlation_id", r.CorrelationID).Str("stage", stage).
			Err(re.Err).Msg("store refused a record for its content")
	}
	if fresh == 0 {
		// The store blames no record of this batch that is still in it: it is
		// not the records.
		return SinkDown(fmt.Errorf("permanent error naming no record of the batch: %w", err))
	}
	if w.c.dl == nil {
		w.halt = w.stoppedAt(first)
		i := 0
		for i < len(b.Records) && b.Records[i].Src.Offset < first.Src.Offset {
			i++
		}
		b.Records = b.Records[:i]
	}
	return errAgain
}

func inBatch(b *Batch, r *Record) bool {
	for _, x := range b.Records {
		if x == r {
			return true
		}
	}
	return false
}

// deadLetter sends the failed records not yet in the DLQ. A DLQ that refuses
// a record permanently cannot take it, so the partition halts there.
func (w *partition) deadLetter(b *Batch) error {
	recs := w.dlBuf[:0]
	for _, r := range b.Records {
		if r.Err != nil && r.Outcome != OutcomeDeadLettered {
			recs = append(recs, r)
		}
	}
	w.dlBuf = recs[:0]
	if len(recs) == 0 {
		return nil
	}
	err := w.c.retry(w.ctx, func(ctx context.Context) error { return w.c.dl.Send(ctx, recs) },
		func(err error) { w.retried("dlq", recs[0].Src.Offset, err) })
	if err == nil {
		for _, r := range recs {
			r.Outcome = OutcomeDeadLettered
		}
		return nil
	}
	if ClassOf(err) == ClassPermanent && w.ctx.Err() == nil {
		first := recs[0]
		w.halt = &StoppedError{Topic: w.k.t, Partition: w.k.p, Offset: first.Src.Offset,
			CorrelationID: first.CorrelationID, Stage: first.Stage,
			Err: fmt.Errorf("dead-letter queue refused the record (%w) after: %w", err, first.Err)}
		i := 0
		for i < len(b.Records) && b.Records[i].Src.Offset < first.Src.Offset {
			i++
		}
		b.Records = b.Records[:i]
		return errAgain
	}
	return err
}

// apply runs Authority.Apply with the transient-retry policy.
func (w *partition) apply(b *Batch, attempts *int) error {
	return w.c.retry(w.ctx, func(ctx context.Context) error {
		*attempts++
		return w.c.auth.Apply(ctx, b, w.follow)
	}, func(err error) { w.retried("sink", b.Records[0].Src.Offset, err) })
}

// retried reports a retry of the batch starting at offset.
func (w *partition) retried(stage string, offset int64, err error) {
	w.log.Warn().Err(err).Str("stage", stage).Int64("offset", offset).Msg("transient error; retrying")
	w.c.hooks.retry(w.k.t, w.k.p, stage, ClassOf(err), err)
}

// sinkError marks an error as the follower's, so a refused record's stage
// names the right store.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

func (w *partition) followSink(ctx context.Context, writes []Write) error {
	if err := w.c.sink.Write(ctx, writes); err != nil {
		return &sinkError{err: err}
	}
	return nil
}

// applyIsolating applies b; when a store refuses the batch permanently
// without naming records, it bisects the batch to find them (DESIGN.md §5).
// Bisecting writes the halves that succeed; the caller applies the batch
// again without the culprits, which re-applies those idempotently. When no
// part fails alone, or every record fails alone, the records are not the
// cause: the store counts as down.
func (w *partition) applyIsolating(b *Batch, attempts *int) error {
	err := w.apply(b, attempts)
	if err == nil || ClassOf(err) != ClassPermanent || len(recordErrors(err)) > 0 || w.ctx.Err() != nil {
		return err
	}
	var valid []*Record
	for _, r := range b.Records {
		if r.Err == nil {
			valid = append(valid, r)
		}
	}
	if len(valid) == 1 {
		return Permanent(&RecordError{Record: valid[0], Err: err})
	}
	culprits, singles, berr := w.bisect(b, valid, attempts)
	switch {
	case berr != nil:
		return berr
	case len(culprits) == 0:
		return SinkDown(fmt.Errorf("batch refused, but none of its parts alone: %w", err))
	case singles == len(valid):
		return SinkDown(fmt.Errorf("every record of the batch refused alike: %w", err))
	}
	return Permanent(errors.Join(culprits...))
}

// bisect applies recs in halves, in offset order, down to single records,
// and returns the refusals that name records; singles counts records that
// failed alone. A non-permanent error ends the search.
func (w *partition) bisect(b *Batch, recs []*Record, attempts *int) (culprits []error, singles int, err error) {
	sub := &Batch{Topic: b.Topic, Partition: b.Partition, Records: recs}
	aerr := w.apply(sub, attempts)
	switch {
	case aerr == nil:
		return nil, 0, nil
	case ClassOf(aerr) != ClassPermanent || w.ctx.Err() != nil:
		return nil, 0, aerr
	}
	if res := recordErrors(aerr); len(res) > 0 {
		for _, re := range res {
			culprits = append(culprits, re)
		}
		return culprits, 0, nil
	}
	if len(recs) == 1 {
		return []error{&RecordError{Record: recs[0], Err: aerr}}, 1, nil
	}
	mid := len(recs) / 2
	for _, half := range [][]*Record{recs[:mid], recs[mid:]} {
		c, s, err := w.bisect(b, half, attempts)
		if err != nil {
			return nil, 0, err
		}
		culprits = append(culprits, c...)
		singles += s
	}
	return culprits, singles, nil
}

// recordErrors collects the *RecordError values in err's tree.
func recordErrors(err error) []*RecordError {
	var out []*RecordError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if re, ok := e.(*RecordError); ok {
			out = append(out, re)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// retry runs op until it succeeds, fails with an error that is not
// transient, or the transient budget (Options.Retry) runs out: exponential
// backoff with full jitter, context-aware. An exhausted budget returns the
// last error as SinkDown: running out of transient retries never
// dead-letters anything. This is the one place the retry policy lives.
func (c *Consumer) retry(ctx context.Context, op func(context.Context) error, onRetry func(error)) error {
	start := time.Now()
	ro := &c.opts.Retry
	attempts := 0
	err := retry.Do(
		func() error {
			attempts++
			return op(ctx)
		},
		retry.Context(ctx),
		retry.Attempts(uint(ro.MaxAttempts)),
		retry.Delay(ro.InitialBackoff),
		retry.MaxDelay(ro.MaxBackoff),
		retry.DelayType(retry.FullJitterBackoffDelay),
		retry.LastErrorOnly(true),
		retry.RetryIf(func(err error) bool {
			return ctx.Err() == nil && ClassOf(err) == ClassTransient && time.Since(start) < ro.MaxElapsed
		}),
		retry.OnRetry(func(n uint, err error) {
			if int(n)+1 < ro.MaxAttempts {
				onRetry(err)
			}
		}),
	)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	case ClassOf(err) == ClassTransient:
		return SinkDown(fmt.Errorf("transient errors for %s after %d attempts: %w", time.Since(start).Round(time.Millisecond), attempts, err))
	}
	return err
}

// finish marks a delivered batch for commit and reports it.
func (w *partition) finish(b *Batch, n, bytes int, decode, sink time.Duration, attempts int) {
	st := BatchStats{Topic: w.k.t, Partition: w.k.p, Records: len(b.Records), Bytes: b.Bytes,
		Decode: decode, Sink: sink, Attempts: attempts, FirstOffset: -1, LastOffset: -1}
	if len(b.Records) > 0 {
		first, last := b.Records[0].Src, b.Records[len(b.Records)-1].Src
		st.FirstOffset, st.LastOffset = first.Offset, last.Offset
		cb := commitBatch{records: len(b.Records)}
		for _, r := range b.Records {
			st.Outcomes[r.Outcome]++
			cb.minKafka, cb.maxKafka = widen(cb.minKafka, cb.maxKafka, r.Src.Timestamp, r.Src.Timestamp)
			if ts := r.Event.TS; !ts.IsZero() && r.Err == nil {
				cb.minEvent, cb.maxEvent = widen(cb.minEvent, cb.maxEvent, ts, ts)
			}
		}
		if w.c.cp.mark(w.k, kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}, &cb) {
			w.c.commitSoon()
		}
		w.c.hooks.batch(st)
	}
	w.clearBatch()
	w.release(n, bytes)
}
