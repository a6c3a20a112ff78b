package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	w.sunk = nil
	start := time.Now()
	var d delivery
	backoff := w.c.opts.SinkDownBackoff
	down := 0
	for {
		err := w.cycle(b, &d)
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
	w.finish(b, n, bytes, decode, time.Since(start), d.attempts)
	return true
}

// delivery is what the cycles of one batch share.
type delivery struct {
	// attempts counts the store calls made for the batch.
	attempts int
	// isolated is set when culprit isolation ran to its end: every valid
	// record of the batch is written but the culprits it found, so the
	// next cycles only dead-letter those and apply nothing again.
	isolated bool
}

// cycle is one attempt at a batch: dead-letter, then apply.
func (w *partition) cycle(b *Batch, d *delivery) error {
	if w.c.dl != nil {
		if err := w.deadLetter(b); err != nil {
			return err
		}
	}
	if d.isolated {
		return nil
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
	culprits, err := w.applyIsolating(b, d)
	if err != nil {
		return err
	}
	if len(culprits) == 0 {
		return nil
	}
	return w.takeCulprits(b, culprits)
}

// takeCulprits handles records the stores refused permanently for their
// content: with a DLQ they get Err and go there in the next cycle; without
// one the batch is cut before the first of them and the partition halts
// after writing the rest. Each record's stage names the store that refused
// it, read from its own error.
func (w *partition) takeCulprits(b *Batch, culprits []*RecordError) error {
	var first *Record
	for _, re := range culprits {
		r := re.Record
		stage := w.stageOf(re.Err)
		r.Err, r.Stage = Permanent(re.Err), stage
		if first == nil || r.Src.Offset < first.Src.Offset {
			first = r
		}
		w.log.Warn().Int64("offset", r.Src.Offset).Str("correlation_id", r.CorrelationID).Str("stage", stage).
			Err(re.Err).Msg("store refused a record for its content")
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

// stageOf returns the DLQ stage of a record refused with err: the sink's
// when the follower refused it, else the authority's.
func (w *partition) stageOf(err error) string {
	return stageSinkPrefix + w.c.storeName(err)
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
// isolating marks the calls of a culprit search (WithIsolating).
func (w *partition) apply(b *Batch, attempts *int, isolating bool) error {
	err := w.c.retry(w.ctx, func(ctx context.Context) error {
		*attempts++
		if isolating {
			ctx = WithIsolating(ctx)
		}
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

// followSink is the authority's follow: it writes the batch's decisions to
// the sink, inside the authority's open transaction.
//
// When the sink refuses them permanently without naming the writes at
// fault (a real Qdrant's "Wrong input" names no point), they are searched
// here, by halves, with the sink alone (searchSink): the refused writes
// come back as *RecordErrors, so the authority's transaction rolls back
// once and the batch is applied once more without the culprits, instead of
// one authority transaction per step of a bisection. The writes the sink
// took during the search are the authority's decisions for records that
// are not culprits, so the next apply decides them alike; the sink keeps
// them (sunk) and they are not written again.
func (w *partition) followSink(ctx context.Context, writes []Write) error {
	todo := writes
	if len(w.sunk) > 0 {
		todo = make([]Write, 0, len(writes))
		for _, wr := range writes {
			if w.sunk[wr.Key] != sunkWrite(wr) {
				todo = append(todo, wr)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	err := w.c.sink.Write(ctx, todo)
	w.sank(todo, err == nil)
	if err == nil {
		return nil
	}
	if w.c.dl != nil && len(todo) > 1 && ClassOf(err) == ClassPermanent && ctx.Err() == nil &&
		len(recordErrors(err)) == 0 && !hasSuspects(err) {
		err = w.searchSink(ctx, todo, err)
		if err == nil {
			return nil
		}
	}
	return &sinkError{err: err}
}

// sank keeps w.sunk exact once a search has started it: the writes the
// sink took are what it holds for their keys; after a failed call it may
// hold either, so their keys are forgotten.
func (w *partition) sank(ws []Write, ok bool) {
	if w.sunk == nil {
		return
	}
	for _, wr := range ws {
		if ok {
			w.sunk[wr.Key] = sunkWrite(wr)
		} else {
			delete(w.sunk, wr.Key)
		}
	}
}

// hasSuspects reports whether err's tree holds a *SuspectError.
func hasSuspects(err error) bool {
	found := false
	walkErrors(err, false, func(e error, _ bool) bool {
		_, ok := e.(*SuspectError)
		found = found || ok
		return found
	})
	return found
}

// sunkKey is what identifies a write the sink holds: the record whose
// content it carries and what it does.
type sunkKey struct {
	r *Record
	a Action
}

func sunkWrite(wr Write) sunkKey { return sunkKey{wr.Record, wr.Action} }

// searchSink finds the writes of todo that the sink refuses, which it
// refused together with err, writing the others; w.sunk remembers those
// for the rest of the batch's delivery. It returns the culprits as
// permanent *RecordErrors; nil when the sink took every write in parts;
// the error that ended the search when it was not permanent; and a
// sink-down error when every write was refused alone (the writes are not
// the cause).
//
// Without a DLQ nothing is searched here: the partition stops at the first
// culprit and nothing after it may reach the sink ahead of the authority,
// so the pipeline's own isolation finds the culprit.
func (w *partition) searchSink(ctx context.Context, todo []Write, err error) error {
	s := &sinkSearch{w: w, ctx: ctx}
	if w.sunk == nil {
		w.sunk = make(map[Key]sunkKey)
	}
	s.refused(todo, err)
	switch {
	case s.err != nil:
		return s.err
	case len(s.culprits) == 0:
		return nil
	case len(s.culprits) == len(todo):
		cause := &sinkError{err: err}
		return w.storeDown(cause, fmt.Errorf("every write refused alone alike: %w", cause))
	}
	errs := make([]error, len(s.culprits))
	for i, re := range s.culprits {
		errs[i] = re
	}
	return Permanent(errors.Join(errs...))
}

// sinkSearch is one search for the writes the sink refuses.
type sinkSearch struct {
	w        *partition
	ctx      context.Context
	culprits []*RecordError
	err      error
}

// write writes ws; a permanent refusal is searched in turn.
func (s *sinkSearch) write(ws []Write) {
	if s.err != nil || len(ws) == 0 {
		return
	}
	err := s.w.c.sink.Write(s.ctx, ws)
	s.w.sank(ws, err == nil)
	switch {
	case err == nil:
	case ClassOf(err) != ClassPermanent || s.ctx.Err() != nil:
		s.err = err
	default:
		s.refused(ws, err)
	}
}

// refused searches ws, which the sink refused together with err; a nil
// err means the refusal is inferred (the other half of a refused run was
// taken), so ws is split without being written whole first.
func (s *sinkSearch) refused(ws []Write, err error) {
	if s.err != nil || len(ws) == 0 {
		return
	}
	if len(ws) == 1 {
		if err == nil {
			s.write(ws)
			return
		}
		s.culprits = append(s.culprits, &RecordError{Record: ws[0].Record, Err: err})
		return
	}
	left, right := ws[:len(ws)/2], ws[len(ws)/2:]
	lerr := s.w.c.sink.Write(s.ctx, left)
	s.w.sank(left, lerr == nil)
	switch {
	case lerr == nil:
		s.refused(right, nil)
	case ClassOf(lerr) != ClassPermanent || s.ctx.Err() != nil:
		s.err = lerr
	default:
		s.refused(left, lerr)
		s.write(right)
	}
}

// applyIsolating applies b. When a store refuses it permanently, it
// isolates the culprits (DESIGN.md §5) and writes every other valid record
// of b on the way, in offset order, so nothing is applied twice: records
// the store's error names (*RecordError) are culprits at once; records it
// points at (*SuspectError) are tried alone first (see probe); without
// either the batch is bisected. It returns the
// culprits, each refused with its own error; d.isolated is set when the
// isolation ran to its end. Without a DLQ only the records before the first
// culprit are written, since the partition stops there.
//
// When every record fails alone alike, the records are not the cause: the
// store counts as down. A batch the store refused whole but took in parts
// has no culprit: it is written. A non-permanent error ends the isolation;
// the next cycle applies the whole batch again (idempotently), since a
// record already found guilty might be taken then and must not land after
// later records of its key.
func (w *partition) applyIsolating(b *Batch, d *delivery) ([]*RecordError, error) {
	err := w.apply(b, &d.attempts, false)
	if err == nil || ClassOf(err) != ClassPermanent || w.ctx.Err() != nil {
		return nil, err
	}
	var valid []*Record
	for _, r := range b.Records {
		if r.Err == nil {
			valid = append(valid, r)
		}
	}
	is := &isolation{w: w, b: b, d: d, stops: w.c.dl == nil}
	is.refused(valid, err)
	switch {
	case is.err != nil:
		return nil, is.err
	case is.singles == len(valid) && len(valid) > 1:
		return nil, w.storeDown(err, fmt.Errorf("every record of the batch refused alike: %w", err))
	}
	d.isolated = true
	if len(is.culprits) == 0 {
		w.log.Warn().Err(err).Int64("offset", valid[0].Src.Offset).Int("records", len(valid)).
			Msg("store refused the batch whole but took all of it in parts; nothing to dead-letter")
	}
	return is.culprits, nil
}

// isolation is one search for the culprits of a refused batch.
type isolation struct {
	w *partition
	b *Batch
	d *delivery
	// culprits are the refused records found, each with its own error.
	culprits []*RecordError
	// singles counts the records that failed alone.
	singles int
	// err is the non-permanent error that ended the search.
	err error
	// stops is set without a DLQ: the partition will stop at the first
	// culprit, and nothing at or after it may be written (StoppedError),
	// so the search writes only records before the first culprit found.
	stops bool
}

// culprit records a refused record; alone says it failed by itself.
func (is *isolation) culprit(re *RecordError, alone bool) {
	is.culprits = append(is.culprits, re)
	if alone {
		is.singles++
	}
}

// writable returns the records of recs (in offset order) the search may
// still write: all of them, or without a DLQ those before the first
// culprit found so far.
func (is *isolation) writable(recs []*Record) []*Record {
	if !is.stops || len(is.culprits) == 0 {
		return recs
	}
	first := is.culprits[0].Record.Src.Offset
	for _, c := range is.culprits[1:] {
		first = min(first, c.Record.Src.Offset)
	}
	n := 0
	for n < len(recs) && recs[n].Src.Offset < first {
		n++
	}
	return recs[:n]
}

// apply applies recs, a run of b's records in offset order.
func (is *isolation) apply(recs []*Record) error {
	return is.w.apply(&Batch{Topic: is.b.Topic, Partition: is.b.Partition, Records: recs}, &is.d.attempts, true)
}

// settle writes recs, isolating the culprits if the store refuses them.
func (is *isolation) settle(recs []*Record) {
	recs = is.writable(recs)
	if is.err != nil || len(recs) == 0 {
		return
	}
	err := is.apply(recs)
	switch {
	case err == nil:
	case ClassOf(err) != ClassPermanent || is.w.ctx.Err() != nil:
		is.err = err
	default:
		is.refused(recs, err)
	}
}

// refused finds the culprits of recs, which the store refused as a whole
// with err, and writes the rest. A nil err means the refusal is inferred:
// recs are what is left of a refused run after a part of it was written,
// so they are split without being applied whole first.
func (is *isolation) refused(recs []*Record, err error) {
	if is.err != nil || len(is.writable(recs)) < len(recs) {
		// Without a DLQ, a culprit was found before the end of recs: what
		// is left to write is before it, and the caller writes that.
		return
	}
	if len(recs) == 0 {
		return
	}
	if named := recordErrors(err); len(named) > 0 {
		var mine []*RecordError
		for _, re := range named {
			if slices.Contains(recs, re.Record) && !is.isCulprit(re.Record) {
				mine = append(mine, re)
			}
		}
		if len(mine) == 0 {
			// The store blames no record it was given: it is not the records.
			is.err = is.w.storeDown(err, fmt.Errorf("permanent error naming no record of the batch: %w", err))
			return
		}
		for _, re := range mine {
			is.culprit(re, false)
		}
		is.settle(slices.DeleteFunc(slices.Clone(recs), is.isCulprit))
		return
	}
	if len(recs) == 1 {
		if err == nil {
			is.settle(recs)
			return
		}
		is.culprit(&RecordError{Record: recs[0], Err: err}, true)
		return
	}
	if sus, follower := suspects(err, recs); len(sus) > 0 && len(sus) < len(recs) {
		if follower {
			// Each suspect alone, and the runs between them, in offset
			// order: trying a suspect of the follower writes it there.
			from := 0
			for i, r := range recs {
				if sus[r] {
					is.settle(recs[from:i])
					is.settle(recs[i : i+1])
					from = i + 1
				}
			}
			is.settle(recs[from:])
			return
		}
		// The authority's suspects: each is tried alone in a transaction
		// that is rolled back, then the run is written without those
		// refused. When none is refused alone, the run is bisected.
		if is.probe(recs, sus) {
			is.settle(slices.DeleteFunc(slices.Clone(recs), is.isCulprit))
			return
		}
		if is.err != nil {
			return
		}
	}
	left, right := recs[:len(recs)/2], recs[len(recs)/2:]
	lerr := is.apply(left)
	switch {
	case lerr == nil:
		// The left half was taken: what made recs fail is on the right.
		is.refused(right, nil)
	case ClassOf(lerr) != ClassPermanent || is.w.ctx.Err() != nil:
		is.err = lerr
	default:
		is.refused(left, lerr)
		is.settle(right)
	}
}

// probe applies each record of recs that sus holds alone, with a follower
// that refuses (errProbe), so the authority rolls the transaction back
// whatever it decides and the follower is not called: a record the
// authority refuses alone is a culprit. It reports whether it found one.
func (is *isolation) probe(recs []*Record, sus map[*Record]bool) bool {
	found := false
	refuse := func(context.Context, []Write) error { return errProbe }
	for _, r := range recs {
		if !sus[r] {
			continue
		}
		one := &Batch{Topic: is.b.Topic, Partition: is.b.Partition, Records: []*Record{r}}
		w := is.w
		err := w.c.retry(w.ctx, func(ctx context.Context) error {
			is.d.attempts++
			return w.c.auth.Apply(WithProbe(WithIsolating(ctx)), one, refuse)
		}, func(err error) { w.retried(w.c.storeName(err), r.Src.Offset, err) }, w.c.storeName)
		switch {
		case errors.Is(err, errProbe):
			// The authority takes it alone; the follower was not asked.
		case ClassOf(err) == ClassPermanent && w.ctx.Err() == nil:
			is.culprit(&RecordError{Record: r, Err: err}, true)
			found = true
		default:
			var ex *ExhaustedError
			if errors.As(err, &ex) {
				trip(w.c.storeOf(err), err)
			}
			is.err = err
			return false
		}
	}
	return found
}

// errProbe is what the follower of a probe answers: the authority rolls
// back. It is permanent so that nothing retries it, and the authority's
// breaker counts it as neither success nor failure (the follower's error).
var errProbe = Permanent(errors.New("probe: the transaction is rolled back on purpose"))

func (is *isolation) isCulprit(r *Record) bool {
	for _, c := range is.culprits {
		if c.Record == r {
			return true
		}
	}
	return false
}

// SuspectError is a store's permanent refusal of a batch that points at
// some of its records without proving them guilty: a constraint violation
// names a value, and the records whose content carries it are suspects,
// though one of them may fail only because of another. The pipeline tries
// the suspects alone first instead of bisecting the whole batch: the
// authority's suspects in transactions it rolls back (the follower is not
// called), after which the batch is written without those refused alone;
// the follower's suspects by writing each alone between the runs of
// records around it, in offset order. A suspect the store takes alone is
// written like any other record. Classify it, e.g.
// Permanent(&SuspectError{...}).
type SuspectError struct {
	Records []*Record
	Err     error
}

func (e *SuspectError) Error() string { return e.Err.Error() }
func (e *SuspectError) Unwrap() error { return e.Err }

// suspects returns the records of recs that a *SuspectError in err's tree
// names, and whether the follower named any of them.
func suspects(err error, recs []*Record) (out map[*Record]bool, follower bool) {
	walkErrors(err, false, func(e error, inSink bool) bool {
		se, ok := e.(*SuspectError)
		if !ok {
			return false
		}
		follower = follower || inSink
		for _, r := range se.Records {
			if slices.Contains(recs, r) {
				if out == nil {
					out = map[*Record]bool{}
				}
				out[r] = true
			}
		}
		return false // a SuspectError may wrap more
	})
	return out, follower
}

// recordErrors collects the *RecordError values in err's tree. A record the
// follower refused comes back with its error marked as the follower's, so
// its stage names the follower.
func recordErrors(err error) []*RecordError {
	var out []*RecordError
	walkErrors(err, false, func(e error, inSink bool) bool {
		re, ok := e.(*RecordError)
		if !ok {
			return false
		}
		if inSink {
			re = &RecordError{Record: re.Record, Err: &sinkError{err: re.Err}}
		}
		out = append(out, re)
		return true
	})
	return out
}

// walkErrors calls visit on every error of err's tree, depth first; inSink
// says whether a *sinkError is above it. When visit returns true, e's own
// tree is not walked.
func walkErrors(err error, inSink bool, visit func(e error, inSink bool) bool) {
	if err == nil || visit(err, inSink) {
		return
	}
	if _, ok := err.(*sinkError); ok {
		inSink = true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range u.Unwrap() {
			walkErrors(x, inSink, visit)
		}
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), inSink, visit)
	}
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
		Decode: decode, Sink: sink, Wait: w.waited, Attempts: attempts, FirstOffset: -1, LastOffset: -1}
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
