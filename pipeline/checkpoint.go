package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tp names a topic-partition.
type tp struct {
	t string
	p int32
}

// commitBatch is what a finished batch adds to the next commit's stats.
type commitBatch struct {
	records            int
	minEvent, maxEvent time.Time
	minKafka, maxKafka time.Time
}

// checkpoint is the commit state of one partition.
type checkpoint struct {
	// marked is the offset to commit: every record below it is in both
	// stores or in the DLQ. Offset -1 means nothing is marked yet.
	marked kgo.EpochOffset
	// committed is the last offset committed in this assignment, -1 none.
	committed int64
	// pending accumulates the batches marked since the last commit.
	pending CommitStats
	dirty   bool
}

// checkpointer holds, per assigned partition, the highest offset below
// which every record is done, and commits it.
//
// Invariant: an offset is marked only after the batch ending just below it
// is in both stores (Authority.Apply returned nil) or the DLQ acknowledged
// its records, and a partition's batches finish strictly in offset order, so
// "marked" never passes a record that is not done. Marks only move forward.
type checkpointer struct {
	mu    sync.Mutex
	parts map[tp]*checkpoint
}

func newCheckpointer() *checkpointer {
	return &checkpointer{parts: make(map[tp]*checkpoint)}
}

func (c *checkpointer) add(k tp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.parts[k]; !ok {
		c.parts[k] = &checkpoint{marked: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1,
			pending: CommitStats{Topic: k.t, Partition: k.p}}
	}
}

// remove forgets a partition: nothing more is committed for it.
func (c *checkpointer) remove(k tp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.parts, k)
}

// mark records that every record below next is done. It returns false when
// the partition is no longer tracked (revoked or lost meanwhile).
func (c *checkpointer) mark(k tp, next kgo.EpochOffset, b *commitBatch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.parts[k]
	if !ok {
		return false
	}
	if next.Offset <= cp.marked.Offset {
		return true
	}
	cp.marked = next
	cp.pending.Offset = next.Offset
	cp.pending.add(b)
	cp.dirty = true
	return true
}

// committed returns a partition's last committed offset, -1 when none.
func (c *checkpointer) committed(k tp) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.parts[k]; ok {
		return cp.committed
	}
	return -1
}

// take returns the marked offsets not yet committed (of only, or of every
// partition when only is nil) and hands over their pending stats.
func (c *checkpointer) take(only []tp) (map[string]map[int32]kgo.EpochOffset, map[tp]CommitStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	stats := make(map[tp]CommitStats)
	visit := func(k tp, cp *checkpoint) {
		if !cp.dirty {
			return
		}
		if offsets[k.t] == nil {
			offsets[k.t] = make(map[int32]kgo.EpochOffset)
		}
		offsets[k.t][k.p] = cp.marked
		stats[k] = cp.pending
		cp.pending = CommitStats{Topic: k.t, Partition: k.p}
		cp.dirty = false
	}
	if only == nil {
		for k, cp := range c.parts {
			visit(k, cp)
		}
	} else {
		for _, k := range only {
			if cp, ok := c.parts[k]; ok {
				visit(k, cp)
			}
		}
	}
	return offsets, stats
}

// settle records the result of committing what take returned: success
// moves committed forward; failure puts the stats back for the next try.
func (c *checkpointer) settle(k tp, s CommitStats, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.parts[k]
	if !ok {
		return
	}
	if err == nil {
		if s.Offset > cp.committed {
			cp.committed = s.Offset
		}
		return
	}
	// Merge back: marks made meanwhile are newer, so keep their offset.
	cp.pending.Records += s.Records
	cp.pending.Batches += s.Batches
	cp.pending.MinEventTime, cp.pending.MaxEventTime = widen(cp.pending.MinEventTime, cp.pending.MaxEventTime, s.MinEventTime, s.MaxEventTime)
	cp.pending.MinKafkaTime, cp.pending.MaxKafkaTime = widen(cp.pending.MinKafkaTime, cp.pending.MaxKafkaTime, s.MinKafkaTime, s.MaxKafkaTime)
	if cp.pending.Offset < s.Offset {
		cp.pending.Offset = s.Offset
	}
	cp.dirty = true
}

// commit commits the marked offsets of only (nil: every partition)
// synchronously. commitMu makes taking the offsets and sending them one
// step, so a partition removed on revoke or loss is never committed by a
// commit that took its offset before the removal.
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client, only []tp) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	return c.commitLocked(ctx, cl, only)
}

func (c *Consumer) commitLocked(ctx context.Context, cl *kgo.Client, only []tp) error {
	offsets, stats := c.cp.take(only)
	if len(offsets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.CommitTimeout)
	defer cancel()
	var reqErr error
	failed := map[tp]error{}
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			reqErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					failed[tp{t.Topic, p.Partition}] = err
				}
			}
		}
	})
	var errs []error
	for k, s := range stats {
		err := reqErr
		if err == nil {
			err = failed[k]
		}
		c.cp.settle(k, s, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("commit %s/%d at offset %d: %w", k.t, k.p, s.Offset, err))
			continue
		}
		c.log.Debug().Str("topic", k.t).Int32("partition", k.p).Int64("offset", s.Offset).
			Int("records", s.Records).Msg("committed")
		c.hooks.committed(s)
	}
	return errors.Join(errs...)
}

// commitSoon asks the committer for a commit.
func (c *Consumer) commitSoon() {
	select {
	case c.commitReq <- struct{}{}:
	default:
	}
}

// committer commits finished batches promptly: on request, at most once per
// CommitInterval, so a busy pipeline commits in groups rather than per batch.
func (c *Consumer) committer(cl *kgo.Client, quit <-chan struct{}) {
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-quit:
			return
		case <-c.commitReq:
		}
		wait := c.opts.CommitInterval
		if err := c.commit(context.Background(), cl, nil); err != nil {
			// The offsets stay marked; the next commit retries them.
			c.log.Warn().Err(err).Msg("offset commit failed; retrying")
			c.commitSoon()
			wait = max(wait, time.Second)
		}
		t.Reset(wait)
		select {
		case <-quit:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
