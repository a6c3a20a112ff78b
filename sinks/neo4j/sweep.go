package neo4j

import (
	"context"
	"fmt"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/internal/logging"
)

// SweepTombstones deletes the deletion markers older than the retention
// (deleted_at before now - TombstoneRetention), in statements of at most
// SweepBatch markers, each its own transaction under the timeout, and returns
// how many it deleted. A marker removed here no longer stops an older upsert:
// that is the retention's bargain (DESIGN.md §4).
func (s *Sink) SweepTombstones(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-s.cfg.TombstoneRetention).UTC()
	total := 0
	for {
		n, err := s.sweepOnce(ctx, cutoff)
		total += n
		if err != nil {
			return total, err
		}
		if n < s.cfg.SweepBatch {
			return total, nil
		}
	}
}

func (s *Sink) sweepOnce(ctx context.Context, cutoff time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sess := s.session(ctx)
	defer sess.Close(ctx)
	n, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		res, err := tx.Run(ctx, cypherSweep, map[string]any{"cutoff": cutoff, "limit": int64(s.cfg.SweepBatch)})
		if err != nil {
			return 0, err
		}
		rec, err := res.Single(ctx)
		if err != nil {
			return 0, err
		}
		return rec.Values[0], nil
	}, neo4j.WithTxTimeout(s.cfg.Timeout))
	if err != nil {
		return 0, classify("sweep deletion markers", err)
	}
	c, _ := n.(int64)
	return int(c), nil
}

// RunSweeper sweeps expired deletion markers every interval until ctx ends,
// and then returns nil. A failed sweep is logged and tried again at the next
// tick: markers past their retention only cost space.
func (s *Sink) RunSweeper(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("neo4j sweeper: interval must be positive, got %s", interval)
	}
	log := s.cfg.Log.With().Str(logging.FieldComponent, "sink.neo4j.sweeper").Logger()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.SweepTombstones(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			log.Warn().Err(err).Int("deleted", n).Msg("tombstone sweep failed; retrying at the next interval")
		case n > 0:
			log.Info().Int("deleted", n).Dur("retention", s.cfg.TombstoneRetention).Msg("expired deletion markers swept")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
