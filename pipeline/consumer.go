package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline/event"
)

// Consumer is one member of the consumer group that reads the source topics
// and drives every record through decode → validate → batch → stores →
// commit (DESIGN.md §4).
//
// Each assigned partition has one worker goroutine: it decodes the
// partition's records in offset order, closes batches on MaxRecords,
// MaxBytes or Linger, and writes them strictly one after another with
// Authority.Apply (whose follow is Sink.Write), since the fold of a batch
// reads the versions the previous batch wrote. Partitions run in parallel.
// The poll loop never blocks on a worker: a partition holding
// MaxInflightBatches batches' worth of records has its fetching paused.
//
// Offsets are committed by a checkpointer only up to the end of the last
// batch that is in both stores (or the DLQ). On revocation a partition's
// in-flight batch is finished and committed before the rebalance goes on,
// or abandoned uncommitted after RevokeTimeout; on loss it is cancelled and
// nothing is committed; on shutdown every partition drains within
// DrainTimeout, the offsets are committed and the member leaves the group.
type Consumer struct {
	opts  Options
	kopts []kgo.Opt
	auth  Authority
	sink  Sink
	dl    DeadLetter
	log   zerolog.Logger
	hooks Hooks
	dec   *event.Decoder

	// holdRecords and holdBytes are the pause thresholds: a partition
	// holding more stops fetching (see partition.overLimit).
	holdRecords, holdBytes int
	// inflight is the record bytes every partition holds together;
	// memWait, the partitions paused because it passed MaxInflightBytes.
	inflight atomic.Int64
	memMu    sync.Mutex
	memWait  map[*partition]struct{}

	// active holds a token per batch decoded or in delivery
	// (MaxActiveBatches); nil when unbounded.
	active chan struct{}

	cp        *checkpointer
	commitMu  sync.Mutex
	commitReq chan struct{}

	mu      sync.Mutex
	parts   map[tp]*partition
	closing bool
	running atomic.Bool
}

// abandonGrace bounds the wait for a worker after its context is cancelled:
// stores must honour cancellation, and a rebalance must not hang on one that
// does not.
const abandonGrace = 5 * time.Second

// New returns a Consumer. kafka holds the client's connection options
// (KafkaOpts; tests add their own); New adds the group options: the group and
// topics of opts, cooperative-sticky balancing, manual commits, rebalances
// blocked while a poll's records are being handed out, read_committed and the
// start offset. auth and sink are required; dl may be nil, and then a record
// that cannot be written stops its partition (StoppedError) instead of
// being dead-lettered.
func New(opts Options, kafka []kgo.Opt, auth Authority, sink Sink, dl DeadLetter, log zerolog.Logger, hooks Hooks) (*Consumer, error) {
	o := opts.withDefaults()
	err := o.validate()
	if auth == nil {
		err = errors.Join(err, errors.New("pipeline: an Authority is required"))
	}
	if sink == nil {
		err = errors.Join(err, errors.New("pipeline: a Sink is required"))
	}
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		opts:      o,
		auth:      auth,
		sink:      sink,
		dl:        dl,
		log:       log.With().Str("component", "pipeline").Str("group", o.Group).Logger(),
		hooks:     hooks,
		dec:       event.NewDecoder(o.Limits),
		cp:        newCheckpointer(),
		commitReq: make(chan struct{}, 1),
		parts:     make(map[tp]*partition),
		memWait:   make(map[*partition]struct{}),
	}
	if o.MaxActiveBatches > 0 {
		c.active = make(chan struct{}, o.MaxActiveBatches)
	}
	// A partition pauses above (MaxInflightBatches-1) batches. A poll
	// takes everything franz-go has buffered, so a partition holds at most
	// that plus what one fetch returned for it (FetchMaxPartitionBytes).
	// Polling less would not save memory, since the records are in memory
	// either way, but franz-go drops what it buffered for a partition once
	// it is paused and fetches it again on resume: with polls of one batch,
	// a partition pausing at every batch had each record fetched,
	// decompressed and decoded four times at batch 100.
	c.holdRecords = (o.MaxInflightBatches - 1) * o.MaxRecords
	c.holdBytes = (o.MaxInflightBatches - 1) * o.MaxBytes

	reset := kgo.NewOffset().AtStart()
	if o.StartOffset == "latest" {
		reset = kgo.NewOffset().AtEnd()
	}
	iso := kgo.ReadCommitted()
	if o.ReadUncommitted {
		iso = kgo.ReadUncommitted()
	}
	c.kopts = append(slices.Clone(kafka),
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.RebalanceTimeout(o.RebalanceTimeout),
		kgo.FetchMaxBytes(o.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(o.FetchMaxPartitionBytes),
		kgo.FetchMaxWait(o.FetchMaxWait),
		kgo.WithLogger(kgoLogger{log: log}), // kgo names the group itself
	)
	return c, nil
}

// Run joins the group and consumes until ctx is cancelled, then drains:
// polling stops, in-flight batches finish within DrainTimeout (or are
// abandoned uncommitted), finished offsets are committed, and the member
// leaves the group. It returns nil after a clean stop; an error when the
// client cannot be created or Kafka refuses the group or a topic for good
// (authorization). A partition that stops on a bad record does not end Run:
// see Status and Err. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("pipeline: Consumer.Run called twice")
	}
	cl, err := kgo.NewClient(c.kopts...)
	if err != nil {
		return fmt.Errorf("kafka consumer client: %w", err)
	}
	c.log.Info().Strs("topics", c.opts.Topics).Msg("consumer started")
	quit := make(chan struct{})
	var committer sync.WaitGroup
	committer.Go(func() { c.committer(cl, quit) })

	runErr := c.poll(ctx, cl)

	c.drain(cl)
	close(quit)
	committer.Wait()
	cl.Close() // leaves the group; its revoke callback finds no partition left
	c.log.Info().Msg("consumer stopped")
	return runErr
}

func (c *Consumer) poll(ctx context.Context, cl *kgo.Client) error {
	for {
		fetches := cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return nil
		}
		if ctx.Err() != nil {
			// Records of this poll were never handed out, so never marked:
			// the next owner reads them again.
			cl.AllowRebalance()
			return nil
		}
		var fatal error
		errs := 0
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			errs++
			if t == "" { // franz-go's notice of a group session error
				c.log.Error().Err(err).Msg("kafka group session failed")
			} else {
				c.log.Error().Str("topic", t).Int32("partition", p).Err(err).Msg("kafka fetch failed")
			}
			if fatal == nil && isFatalKafka(err) {
				fatal = fmt.Errorf("kafka %s/%d: %w", t, p, err)
			}
		})
		fetches.EachPartition(func(f kgo.FetchTopicPartition) {
			if len(f.Records) > 0 {
				c.dispatch(f.Topic, f.Partition, f.Records)
			}
		})
		cl.AllowRebalance()
		if fatal != nil {
			return fatal
		}
		if errs > 0 && fetches.NumRecords() == 0 {
			// Errors alone: do not spin on them.
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// isFatalKafka reports errors no retry fixes: Kafka refuses us or our
// settings.
func isFatalKafka(err error) bool {
	for _, e := range []error{kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed,
		kerr.ClusterAuthorizationFailed, kerr.SaslAuthenticationFailed,
		kerr.InvalidSessionTimeout, kerr.InvalidGroupID} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (c *Consumer) dispatch(topic string, partition int32, recs []*kgo.Record) {
	c.mu.Lock()
	w := c.parts[tp{topic, partition}]
	c.mu.Unlock()
	if w == nil {
		// BlockRebalanceOnPoll makes this impossible: partitions are
		// assigned before they are fetched and released before polling
		// resumes. Nothing is marked for these records, so they are read
		// again after the next assignment.
		c.log.Error().Str("topic", topic).Int32("partition", partition).Int64("offset", recs[0].Offset).
			Int("records", len(recs)).Msg("records of a partition without a worker; not processed")
		return
	}
	w.push(recs)
}

func (c *Consumer) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	// A pause left over from an earlier assignment must not carry over.
	cl.ResumeFetchPartitions(assigned)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	for t, ps := range assigned {
		for _, p := range ps {
			k := tp{t, p}
			if _, ok := c.parts[k]; ok {
				continue
			}
			c.cp.add(k)
			w := newPartition(c, cl, k)
			c.parts[k] = w
			go w.run()
			w.log.Info().Msg("partition assigned")
			c.hooks.assigned(t, p)
		}
	}
}

func (c *Consumer) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.release(cl, c.workers(revoked), false)
}

func (c *Consumer) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.release(cl, c.workers(lost), true)
}

func (c *Consumer) workers(m map[string][]int32) []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws []*partition
	for t, ps := range m {
		for _, p := range ps {
			if w := c.parts[tp{t, p}]; w != nil {
				ws = append(ws, w)
			}
		}
	}
	return ws
}

// release ends the workers of revoked or lost partitions. Revoked: no new
// records, the batch in hand is finished and committed within RevokeTimeout,
// else cancelled and left uncommitted. Lost: the partitions already belong
// to someone else, so in-flight writes are cancelled and nothing is
// committed.
func (c *Consumer) release(cl *kgo.Client, ws []*partition, lost bool) {
	if len(ws) == 0 {
		return
	}
	keys := make([]tp, len(ws))
	for i, w := range ws {
		keys[i] = w.k
	}
	if lost {
		c.commitMu.Lock()
		for _, k := range keys {
			c.cp.remove(k)
		}
		c.commitMu.Unlock()
		for _, w := range ws {
			w.abort(errPartitionLost)
		}
		c.await(ws, abandonGrace)
	} else {
		for _, w := range ws {
			w.softStop()
		}
		if !c.await(ws, c.opts.RevokeTimeout) {
			for _, w := range ws {
				if !w.finished() {
					w.log.Warn().Dur("revoke_timeout", c.opts.RevokeTimeout).
						Msg("in-flight batch did not finish within the revoke deadline; abandoned uncommitted")
					w.abort(errRevokeDeadline)
				}
			}
			c.await(ws, abandonGrace)
		}
		c.commitMu.Lock()
		if err := c.commitLocked(context.Background(), cl, keys); err != nil {
			c.log.Error().Err(err).Msg("commit on revoke failed; the next owner redoes the uncommitted tail")
		}
		for _, k := range keys {
			c.cp.remove(k)
		}
		c.commitMu.Unlock()
	}
	resume := make(map[string][]int32)
	for _, w := range ws {
		w.retire()
		resume[w.k.t] = append(resume[w.k.t], w.k.p)
	}
	cl.ResumeFetchPartitions(resume)
	c.mu.Lock()
	for _, w := range ws {
		if c.parts[w.k] == w {
			delete(c.parts, w.k)
		}
	}
	c.mu.Unlock()
	for _, w := range ws {
		if lost {
			w.log.Warn().Msg("partition lost; in-flight writes cancelled, nothing committed")
		} else {
			w.log.Info().Msg("partition revoked")
		}
		c.hooks.revoked(w.k.t, w.k.p, lost)
	}
}

// await waits up to d for every worker of ws to exit; it reports whether
// they all did.
func (c *Consumer) await(ws []*partition, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-t.C:
			return false
		}
	}
	return true
}

// drain is the graceful stop: no more records, the batches in hand finish
// within three quarters of DrainTimeout (the rest are cancelled), and what
// finished is committed within the remaining quarter.
func (c *Consumer) drain(cl *kgo.Client) {
	start := time.Now()
	cl.PauseFetchTopics(c.opts.Topics...) // nothing more is read; what was is dropped
	c.mu.Lock()
	c.closing = true
	ws := make([]*partition, 0, len(c.parts))
	for _, w := range c.parts {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.softStop()
	}
	if !c.await(ws, c.opts.DrainTimeout*3/4) {
		n := 0
		for _, w := range ws {
			if !w.finished() {
				n++
				w.abort(errDrainDeadline)
			}
		}
		c.log.Warn().Int("partitions", n).Dur("drain_timeout", c.opts.DrainTimeout).
			Msg("in-flight batches did not finish within the drain deadline; abandoned uncommitted")
		c.await(ws, abandonGrace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(c.opts.DrainTimeout-time.Since(start), 500*time.Millisecond))
	defer cancel()
	c.commitMu.Lock()
	if err := c.commitLocked(ctx, cl, nil); err != nil {
		c.log.Error().Err(err).Msg("final commit failed; the next owner redoes the uncommitted tail")
	}
	c.mu.Lock()
	for k, w := range c.parts {
		c.cp.remove(k)
		w.retire()
		delete(c.parts, k)
	}
	c.mu.Unlock()
	c.commitMu.Unlock()
}

var (
	errPartitionLost  = errors.New("partition lost")
	errRevokeDeadline = errors.New("revoke deadline passed")
	errDrainDeadline  = errors.New("drain deadline passed")
	errRetired        = errors.New("partition released")
)

// PartitionStatus is one assigned partition as Status reports it.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// Buffered counts records fetched and not yet finished: queued, in the
	// batch being built, or being written.
	Buffered int
	// Paused says why fetching is paused (0: it is not).
	Paused PauseReason
	// Committed is the last offset committed in this assignment, -1 none.
	Committed int64
	// Err is the *StoppedError of a stopped partition, nil otherwise.
	Err error
}

// Status reports the assigned partitions, ordered by topic and partition.
// Readiness uses it: a partition paused for PauseSinkDown means a store is
// down; Err set means a partition stopped on a record.
func (c *Consumer) Status() []PartitionStatus {
	c.mu.Lock()
	ws := make([]*partition, 0, len(c.parts))
	for _, w := range c.parts {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	out := make([]PartitionStatus, 0, len(ws))
	for _, w := range ws {
		s := PartitionStatus{Topic: w.k.t, Partition: w.k.p, Committed: c.cp.committed(w.k)}
		w.mu.Lock()
		s.Buffered, s.Paused = w.held, w.paused
		if w.halted != nil {
			s.Err = w.halted
		}
		w.mu.Unlock()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PartitionStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// Err returns the StoppedErrors of the stopped partitions, joined; nil when
// every assigned partition is running.
func (c *Consumer) Err() error {
	var errs []error
	for _, s := range c.Status() {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	return errors.Join(errs...)
}

// overBudget reports whether the partitions together hold more record
// bytes than MaxInflightBytes.
func (c *Consumer) overBudget() bool { return c.inflight.Load() > int64(c.opts.MaxInflightBytes) }

// pauseForMemory pauses the fetching of every partition once the budget is
// passed: what is already fetched still arrives, nothing more is asked for.
// Called without any partition's lock held.
func (c *Consumer) pauseForMemory() {
	c.mu.Lock()
	parts := make([]*partition, 0, len(c.parts))
	for _, w := range c.parts {
		parts = append(parts, w)
	}
	c.mu.Unlock()
	for _, w := range parts {
		w.mu.Lock()
		if c.overBudget() {
			w.pauseLocked(PauseBackpressure)
			c.waitForMemory(w)
		}
		w.mu.Unlock()
	}
	// A release may have brought the total under the budget between a
	// check above and the registration: let the waiters re-check.
	c.freed(0)
}

// waitForMemory registers a partition paused for the budget.
func (c *Consumer) waitForMemory(w *partition) {
	c.memMu.Lock()
	c.memWait[w] = struct{}{}
	c.memMu.Unlock()
}

// freed takes bytes off the total and, once it is back under the budget,
// lets the partitions paused for it re-check their limits. Called without
// any partition's lock held.
func (c *Consumer) freed(bytes int) {
	if c.inflight.Add(-int64(bytes)) > int64(c.opts.MaxInflightBytes) {
		return
	}
	c.memMu.Lock()
	if len(c.memWait) == 0 {
		c.memMu.Unlock()
		return
	}
	waiting := make([]*partition, 0, len(c.memWait))
	for w := range c.memWait {
		waiting = append(waiting, w)
	}
	clear(c.memWait)
	c.memMu.Unlock()
	for _, w := range waiting {
		w.recheck()
	}
}

// forget drops an exiting partition from the budget's waiters.
func (c *Consumer) forget(w *partition) {
	c.memMu.Lock()
	delete(c.memWait, w)
	c.memMu.Unlock()
}
