package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline/event"
)

// CorrelationHeader is the record header whose value becomes a record's
// CorrelationID.
const CorrelationHeader = "correlation-id"

// partition is the worker of one assigned partition. The poll loop pushes
// records into queue; the worker goroutine (run) decodes them in offset
// order into batches and writes each batch before it builds the next.
//
// Three ways to end: softStop (revoke, shutdown) closes the batch in hand,
// writes it, and drops what is queued; abort (loss, a deadline) cancels ctx,
// so an in-flight write gives up and its batch stays uncommitted; a halt (a
// record that can be neither written nor dead-lettered) stops the worker
// until one of the other two comes.
type partition struct {
	c   *Consumer
	cl  *kgo.Client
	k   tp
	log zerolog.Logger

	ctx      context.Context
	cancel   context.CancelCauseFunc
	stop     chan struct{} // closed by softStop
	stopOnce sync.Once
	stopping atomic.Bool
	wake     chan struct{}
	done     chan struct{}

	mu        sync.Mutex
	queue     []*kgo.Record
	held      int // records pushed and not yet finished or dropped
	heldBytes int
	paused    PauseReason
	halted    *StoppedError
	retired   bool

	// Owned by the worker goroutine.
	pending []*kgo.Record // taken from queue; pending[pi:] not yet decoded
	pi      int
	slab    []*Record // reused Records; a batch points into it
	batch   Batch
	timer   *time.Timer
	// active: the worker holds a place among MaxActiveBatches; waited is
	// how long it waited for the place of the batch in hand.
	active  bool
	waited  time.Duration
	corrBuf []byte
	halt    *StoppedError // set when the batch in hand ends at a bad record
	dlBuf   []*Record
	follow  func(context.Context, []Write) error
	// sunk holds the writes the sink took while its refusal of the batch in
	// hand was searched (followSink).
	sunk map[Key]sunkKey
}

func newPartition(c *Consumer, cl *kgo.Client, k tp) *partition {
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &partition{
		c:      c,
		cl:     cl,
		k:      k,
		log:    c.log.With().Str("topic", k.t).Int32("partition", k.p).Logger(),
		ctx:    ctx,
		cancel: cancel,
		stop:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		timer:  time.NewTimer(time.Hour),
		batch:  Batch{Topic: k.t, Partition: k.p},
	}
	w.timer.Stop()
	w.follow = w.followSink
	return w
}

// push hands fetched records to the worker; it never blocks. Above the hold
// limit the partition's fetching pauses until the worker catches up.
func (w *partition) push(recs []*kgo.Record) {
	bytes := 0
	for _, r := range recs {
		bytes += len(r.Key) + len(r.Value)
	}
	w.mu.Lock()
	if w.halted != nil || w.retired || w.stopping.Load() {
		// Not marked, so not committed: whoever owns the partition next
		// reads them again.
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, recs...)
	w.held += len(recs)
	w.heldBytes += bytes
	w.c.inflight.Add(int64(bytes))
	over := w.overLimit()
	if over {
		w.pauseLocked(PauseBackpressure)
	}
	w.mu.Unlock()
	if over && w.c.overBudget() {
		w.c.pauseForMemory()
	}
	w.c.hooks.consumed(w.k.t, w.k.p, len(recs), bytes)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// overLimit reports whether the partition holds enough that one more poll
// could take it past MaxInflightBatches batches, or the partitions together
// hold more than MaxInflightBytes. Called with mu held.
func (w *partition) overLimit() bool {
	return w.held > w.c.holdRecords || w.heldBytes > w.c.holdBytes || w.c.overBudget()
}

// release gives back the hold of finished or dropped records.
func (w *partition) release(n, bytes int) {
	w.mu.Lock()
	w.held -= n
	w.heldBytes -= bytes
	w.mu.Unlock()
	w.c.freed(bytes)
	w.recheck()
}

// recheck resumes a partition paused for backpressure once it is under its
// limits; still over the budget, it waits for the next release.
func (w *partition) recheck() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused&PauseBackpressure == 0 {
		return
	}
	if !w.overLimit() {
		w.resumeLocked(PauseBackpressure)
		return
	}
	if w.c.overBudget() {
		w.c.waitForMemory(w)
	}
}

// dropHeld forgets every record the partition holds (exit, halt); mu held.
// The caller gives the bytes back with c.freed after unlocking.
func (w *partition) dropHeld() (bytes int) {
	bytes = w.heldBytes
	w.held, w.heldBytes = 0, 0
	return bytes
}

func (w *partition) pause(r PauseReason) {
	w.mu.Lock()
	w.pauseLocked(r)
	w.mu.Unlock()
}

func (w *partition) resume(r PauseReason) {
	w.mu.Lock()
	w.resumeLocked(r)
	w.mu.Unlock()
}

// pauseLocked adds a reason; fetching pauses with the first one.
func (w *partition) pauseLocked(r PauseReason) {
	if w.retired || w.paused&r == r {
		return
	}
	was := w.paused
	w.paused |= r
	if was == 0 {
		w.cl.PauseFetchPartitions(map[string][]int32{w.k.t: {w.k.p}})
	}
	w.log.Debug().Stringer("reason", r).Msg("fetching paused")
	w.c.hooks.paused(w.k.t, w.k.p, r)
}

// resumeLocked drops a reason; fetching resumes when none is left.
func (w *partition) resumeLocked(r PauseReason) {
	if w.retired || w.paused&r == 0 {
		return
	}
	w.paused &^= r
	if w.paused == 0 {
		w.cl.ResumeFetchPartitions(map[string][]int32{w.k.t: {w.k.p}})
	}
	w.log.Debug().Stringer("reason", r).Msg("fetching resumed")
	w.c.hooks.resumed(w.k.t, w.k.p, r)
}

// softStop asks the worker to finish the batch in hand and exit.
func (w *partition) softStop() {
	w.stopOnce.Do(func() {
		w.stopping.Store(true)
		close(w.stop)
	})
}

// abort cancels the worker's store calls; its batch stays uncommitted.
func (w *partition) abort(cause error) {
	w.softStop()
	w.cancel(cause)
}

// retire detaches the worker from the client once its partition is gone:
// a worker still running (a store that ignores cancellation) must not pause
// a partition that may be assigned again.
func (w *partition) retire() {
	w.mu.Lock()
	w.retired = true
	w.queue = nil
	w.mu.Unlock()
	w.cancel(errRetired)
}

func (w *partition) finished() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *partition) run() {
	defer close(w.done)
	defer w.exit()
	for {
		b, decode, ok := w.fill()
		if !ok {
			return
		}
		delivered := len(b.Records) == 0 || w.deliver(b, decode)
		w.leavePlace()
		if !delivered {
			return
		}
		if w.halt != nil {
			w.enterHalt()
			return
		}
		if w.stopping.Load() || w.ctx.Err() != nil {
			return
		}
	}
}

// exit drops what the worker still holds.
func (w *partition) exit() {
	w.timer.Stop()
	w.leavePlace()
	w.mu.Lock()
	w.queue = nil
	bytes := w.dropHeld()
	w.mu.Unlock()
	w.c.forget(w)
	w.c.freed(bytes)
	w.pending, w.pi = nil, 0
	w.clearBatch()
}

// fill decodes queued records into the batch until it closes: MaxRecords,
// MaxBytes, Linger after its first record, a soft stop (the batch in hand
// closes early), or a record that halts the partition (the batch ends
// before it). ok is false when the worker was aborted.
func (w *partition) fill() (b *Batch, decode time.Duration, ok bool) {
	o := &w.c.opts
	b = &w.batch
	b.Records, b.Bytes = b.Records[:0], 0
	var opened time.Time
	for {
		for w.pi < len(w.pending) {
			if w.stopping.Load() {
				return b, decode, true
			}
			src := w.pending[w.pi]
			size := len(src.Key) + len(src.Value)
			if len(b.Records) > 0 && b.Bytes+size > o.MaxBytes {
				return b, decode, true
			}
			if len(b.Records) == 0 && !w.takePlace() {
				// Stopped or aborted while waiting: nothing decoded.
				return b, decode, w.ctx.Err() == nil
			}
			r := w.slot(len(b.Records))
			t0 := time.Now()
			w.decode(r, src)
			decode += time.Since(t0)
			w.pi++
			if r.Err != nil && w.c.dl == nil {
				w.halt = w.stoppedAt(r)
				return b, decode, true
			}
			b.Records = append(b.Records, r)
			b.Bytes += size
			if len(b.Records) == 1 {
				opened = t0
			}
			if len(b.Records) >= o.MaxRecords {
				return b, decode, true
			}
		}
		if w.refill() {
			continue
		}
		if len(b.Records) > 0 && o.Linger <= 0 {
			return b, decode, true
		}
		var lingerC <-chan time.Time
		if len(b.Records) > 0 {
			d := o.Linger - time.Since(opened)
			if d <= 0 {
				return b, decode, true
			}
			w.timer.Reset(d)
			lingerC = w.timer.C
		}
		select {
		case <-w.wake:
			w.timer.Stop()
		case <-lingerC:
			return b, decode, true
		case <-w.stop:
			w.timer.Stop()
			return b, decode, true
		case <-w.ctx.Done():
			return b, decode, false
		}
	}
}

// takePlace waits for a place among the batches decoded or in delivery
// (MaxActiveBatches); false when the worker is stopped or aborted first.
// Senders blocked on a channel are served in order, so the places go round
// the partitions that ask for one.
func (w *partition) takePlace() bool {
	if w.c.active == nil || w.active {
		return true
	}
	select {
	case w.c.active <- struct{}{}:
		w.active, w.waited = true, 0
		return true
	default:
	}
	t0 := time.Now()
	select {
	case w.c.active <- struct{}{}:
		w.active, w.waited = true, time.Since(t0)
		return true
	case <-w.stop:
		return false
	case <-w.ctx.Done():
		return false
	}
}

// leavePlace gives the place back and drops the decoded events of the
// batch, so that a partition waiting for its next place holds only fetched
// records; the vectors' and lists' room goes too, since a waiting partition
// would otherwise keep a batch's worth of it. It keeps at most keptSlots
// Records for the next batch.
func (w *partition) leavePlace() {
	if !w.active {
		return
	}
	for _, r := range w.slab {
		*r = Record{}
	}
	if len(w.slab) > keptSlots {
		clear(w.slab[keptSlots:])
		w.slab = w.slab[:keptSlots]
		w.batch.Records = nil // its array points to them too
	}
	w.active = false
	<-w.c.active
}

// refill takes the queued records; false when there are none.
func (w *partition) refill() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return false
	}
	old := w.pending
	clear(old) // let the fetch buffers go
	w.pending, w.queue, w.pi = w.queue, old[:0], 0
	return true
}

// keptSlots bounds the Records a partition keeps between batches: a
// batch of 5,000 would otherwise leave ~1.3 MB of them with every waiting
// partition.
const keptSlots = 1000

// slot returns the i-th reusable Record.
func (w *partition) slot(i int) *Record {
	if i == len(w.slab) {
		w.slab = append(w.slab, new(Record))
	}
	return w.slab[i]
}

// decode fills r from src: the decode and validate stages. A record the
// decoder refuses gets Err (permanent) and Stage.
func (w *partition) decode(r *Record, src *kgo.Record) {
	r.Src, r.Err, r.Stage, r.Outcome = src, nil, "", OutcomePending
	r.CorrelationID = w.correlationID(src)
	if n := len(src.Key) + len(src.Value); n > w.c.opts.MaxRecordBytes {
		r.Event = event.Event{Vector: r.Event.Vector[:0], Entities: r.Event.Entities[:0], Relations: r.Event.Relations[:0]}
		r.Err = Permanent(&event.Error{Class: event.ClassDecode,
			Msg: fmt.Sprintf("record of %d bytes exceeds the limit of %d bytes (event.max_record_bytes)", n, w.c.opts.MaxRecordBytes)})
		r.Stage = StageDecode
		return
	}
	if err := w.c.dec.DecodeInto(src.Key, src.Value, &r.Event); err != nil {
		r.Stage = StageValidate
		var ee *event.Error
		if errors.As(err, &ee) && ee.Class == event.ClassDecode {
			r.Stage = StageDecode
		}
		r.Err = Permanent(err)
		return
	}
	if len(src.Key) == 0 {
		w.c.hooks.keyless(w.k.t, w.k.p)
	}
}

// correlationID is CorrelationID with the worker's buffer.
func (w *partition) correlationID(src *kgo.Record) string {
	if v, ok := headerCorrelationID(src); ok {
		return v
	}
	w.corrBuf = appendDerivedCorrelationID(w.corrBuf[:0], src)
	return string(w.corrBuf)
}

// CorrelationID returns a record's correlation id: its correlation-id
// header, or "topic/partition/offset" when it has none, so a replay of the
// same record stores the same id.
func CorrelationID(src *kgo.Record) string {
	if v, ok := headerCorrelationID(src); ok {
		return v
	}
	return string(appendDerivedCorrelationID(nil, src))
}

func headerCorrelationID(src *kgo.Record) (string, bool) {
	for i := range src.Headers {
		if h := &src.Headers[i]; h.Key == CorrelationHeader && len(h.Value) > 0 {
			return string(h.Value), true
		}
	}
	return "", false
}

func appendDerivedCorrelationID(b []byte, src *kgo.Record) []byte {
	b = append(b, src.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(src.Partition), 10)
	b = append(b, '/')
	return strconv.AppendInt(b, src.Offset, 10)
}

func (w *partition) stoppedAt(r *Record) *StoppedError {
	return &StoppedError{Topic: w.k.t, Partition: w.k.p, Offset: r.Src.Offset,
		CorrelationID: r.CorrelationID, Stage: r.Stage, Err: r.Err}
}

// enterHalt stops the partition loudly on w.halt and waits for the end of
// its assignment: the bad record is written nowhere, nothing at or after it
// is committed, and its fetching stays paused.
func (w *partition) enterHalt() {
	e := w.halt
	w.log.Error().Int64("offset", e.Offset).Str("correlation_id", e.CorrelationID).Str("stage", e.Stage).
		Err(e.Err).Msg("partition stopped: a record can be neither written nor dead-lettered (no DLQ configured); nothing at or after its offset is committed")
	w.mu.Lock()
	w.halted = e
	w.pauseLocked(PauseStopped)
	w.queue = nil
	bytes := w.dropHeld()
	w.mu.Unlock()
	w.c.freed(bytes)
	w.pending, w.pi = nil, 0
	w.clearBatch()
	w.c.hooks.stopped(w.k.t, w.k.p, e)
	select {
	case <-w.stop:
	case <-w.ctx.Done():
	}
}

// clearBatch drops the batch's references to fetched records.
func (w *partition) clearBatch() {
	for _, r := range w.batch.Records {
		r.Src = nil
	}
	w.batch.Records = w.batch.Records[:0]
	w.batch.Bytes = 0
}
