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
// Transient errors are retried inside the cycle (retry); a store that is
// down — its own answer says so, its breaker is open, or it ran out of
// transient retries — pauses the partition's fetching, and the cycle is
// repeated until it succeeds or the worker is aborted: when the store's
// breaker lets calls through again (a Waiter error), else after a slow,
// doubling backoff. Nothing is dead-lettered for a store being down, and
// nothing is committed past the batch meanwhile.
func (w *partition) deliver(b *Batch, decode time.Duration) bool {
	n, bytes := len(b.Records), b.Bytes
	start := time.Now()
	attempts := 0
	backoff := w.c.opts.SinkDownBackoff
	down := 0
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
		wake := waitOf(err)
		// The first failure says why at error level; the retries of a
		// store that stays down would repeat it every backoff.
		ev := w.log.Debug()
		if down == 0 {
			ev = w.log.Error()
		}
		down++
		ev.Err(err).Stringer("class", ClassOf(err)).Int64("offset", b.Records[0].Src.Offset).
			Dur("retry_in", backoff).Bool("wakes_with_breaker", wake != nil).Int("cycles", down).
			Msg("store down; partition paused, retrying")
		t := time.NewTimer(backoff)
		select {
		case <-w.ctx.Done():
		case <-t.C:
			backoff = min(2*backoff, w.c.opts.SinkDownMaxBackoff)
		case <-wake:
			backoff = w.c.opts.SinkDownBackoff
		}
		t.Stop()
	}
	if down > 0 {
		w.log.Info().Int("cycles", down).Dur("down_for", time.Since(start).Round(time.Millisecond)).
			Msg("store back; partition resumed")
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
// Each record's stage names the store that refused it.
func (w *partition) takeCulprits(b *Batch, err error) error {
	fresh := 0
	var first *Record
	for _, re := range recordErrors(err) {
		r := re.Record
		if r == nil || r.Err != nil || !inBatch(b, r) {
			continue
		}
		// Each culprit's own error says which store refused it.
		stage := stageSinkPrefix + w.c.storeName(re.Err)
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
		return w.storeDown(err, fmt.Errorf("permanent error naming no record of the batch: %w", err))
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
		func(err error) { w.retried(storeDLQ, recs[0].Src.Offset, err) }, func(error) string { return storeDLQ })
	if err == nil {
		for _, r := range recs {
			r.Outcome = OutcomeDeadLettered
			w.c.hooks.deadLettered(w.k.t, w.k.p, ErrorClass(r.Err), r.Stage)
		}
		return nil
	}
	var ex *ExhaustedError
	if errors.As(err, &ex) {
		trip(w.c.dl, err)
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

// storeDLQ names the dead-letter queue where stores are named: the Retry
// hook, ExhaustedError.
const storeDLQ = "dlq"

// apply runs Authority.Apply with the transient-retry policy. A cycle that
// runs out of retries trips the breaker of the store whose errors it was.
func (w *partition) apply(b *Batch, attempts *int) error {
	err := w.c.retry(w.ctx, func(ctx context.Context) error {
		*attempts++
		return w.c.auth.Apply(ctx, b, w.follow)
	}, func(err error) { w.retried(w.c.storeName(err), b.Records[0].Src.Offset, err) }, w.c.storeName)
	var ex *ExhaustedError
	if errors.As(err, &ex) {
		trip(w.c.storeOf(err), err)
	}
	return err
}

// storeOf returns the store an error of Apply comes from: the sink when
// the follower failed, else the authority.
func (c *Consumer) storeOf(err error) any {
	var se *sinkError
	if errors.As(err, &se) {
		return c.sink
	}
	return c.auth
}

// storeName returns the Name of storeOf(err).
func (c *Consumer) storeName(err error) string {
	var se *sinkError
	if errors.As(err, &se) {
		return c.sink.Name()
	}
	return c.auth.Name()
}

// storeDown concludes that the store cause came from is down although
// none of its answers said so (a batch refused in a way no record
// explains): its breaker opens, and err is returned as SinkDown.
func (w *partition) storeDown(cause, err error) error {
	err = SinkDown(err)
	trip(w.c.storeOf(cause), err)
	return err
}

// retried reports a retry of the batch starting at offset.
func (w *partition) retried(store string, offset int64, err error) {
	w.log.Warn().Err(err).Str("store", store).Int64("offset", offset).Msg("retrying after a transient error")
	w.c.hooks.retry(w.k.t, w.k.p, store, ClassOf(err), err)
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
		return w.storeDown(err, fmt.Errorf("batch refused, but none of its parts alone: %w", err))
	case singles == len(valid):
		return w.storeDown(err, fmt.Errorf("every record of the batch refused alike: %w", err))
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

// recordErrors collects the *RecordError values in err's tree. A record the
// follower refused comes back with its error marked as the follower's, so
// its stage names the follower.
func recordErrors(err error) []*RecordError {
	var out []*RecordError
	var walk func(e error, inSink bool)
	walk = func(e error, inSink bool) {
		if e == nil {
			return
		}
		if re, ok := e.(*RecordError); ok {
			if inSink {
				re = &RecordError{Record: re.Record, Err: &sinkError{err: re.Err}}
			}
			out = append(out, re)
			return
		}
		if _, ok := e.(*sinkError); ok {
			inSink = true
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x, inSink)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap(), inSink)
		}
	}
	walk(err, false)
	return out
}

// errRetryBudget is the cause of a retry cycle's context ending at
// Options.Retry.MaxElapsed.
var errRetryBudget = errors.New("retry budget spent (pipeline.retry.max_elapsed)")

// retry is the one place the retry policy lives (DESIGN.md §5). It runs op
// until it succeeds, fails with an error that is not transient, or the
// cycle's budget runs out: at most Retry.MaxAttempts attempts and at most
// Retry.MaxElapsed in all — a deadline on the context op gets, so a store
// that hangs cannot stretch the cycle either. Between attempts it waits an
// exponential backoff from Retry.InitialBackoff, doubling up to
// Retry.MaxBackoff, plus a random jitter of up to Retry.InitialBackoff, so
// partitions failing together do not retry in lockstep. A cancelled ctx
// ends it at once, within an attempt or a wait.
//
// onRetry is called before each retry with the error being retried. A
// spent budget returns an *ExhaustedError naming storeName(last error),
// classified SinkDown: running out of transient retries never
// dead-letters anything, it pauses (and the caller trips the store's
// breaker).
func (c *Consumer) retry(ctx context.Context, op func(context.Context) error, onRetry func(error), storeName func(error) string) error {
	ro := &c.opts.Retry
	cctx, cancel := context.WithTimeoutCause(ctx, ro.MaxElapsed, errRetryBudget)
	defer cancel()
	start := time.Now()
	attempts := 0
	var last error
	err := retry.Do(
		func() error {
			if attempts > 0 {
				onRetry(last)
			}
			attempts++
			last = op(cctx)
			return last
		},
		retry.Context(cctx),
		retry.Attempts(uint(ro.MaxAttempts)),
		retry.Delay(ro.InitialBackoff),
		retry.MaxDelay(ro.MaxBackoff),
		retry.MaxJitter(ro.InitialBackoff),
		retry.DelayType(retry.CombineDelay(retry.BackOffDelay, retry.RandomDelay)),
		retry.LastErrorOnly(true),
		retry.RetryIf(func(err error) bool {
			return cctx.Err() == nil && ClassOf(err) == ClassTransient
		}),
	)
	if err == nil {
		return nil
	}
	if last == nil {
		last = err // the context ended before the first attempt
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", context.Cause(ctx), last)
	case ClassOf(last) == ClassTransient:
		return SinkDown(&ExhaustedError{Store: storeName(last), Attempts: attempts,
			Elapsed: time.Since(start), Err: last})
	}
	return last
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
