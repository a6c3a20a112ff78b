package metrics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

type lagKey struct {
	topic     string
	partition int32
}

// RefreshLag sets ragstream_consumer_lag for every partition of topics:
// the partition's end offset (high watermark) minus the offset group has
// committed, or minus the log start offset when the group has committed
// nothing there yet (so a new group's lag is what it has left to read).
// A commit past the end (a truncated topic) counts as zero lag.
//
// The lag is the whole group's, read from the brokers, not this replica's
// share: every replica exports the same values, so dashboards aggregate
// with max by (topic, partition). Series of partitions that no longer
// exist are removed. On a failed listing the gauge keeps its previous
// values for the partitions that could not be read, and the error is
// returned (and counted in ragstream_consumer_lag_refresh_errors_total).
func (m *Metrics) RefreshLag(ctx context.Context, adm *kadm.Client, group string, topics []string) error {
	err := m.refreshLag(ctx, adm, group, topics)
	if err != nil {
		m.lagErrors.Inc()
	}
	return err
}

func (m *Metrics) refreshLag(ctx context.Context, adm *kadm.Client, group string, topics []string) error {
	if group == "" {
		return errors.New("consumer lag: empty group")
	}
	if len(topics) == 0 {
		return errors.New("consumer lag: no topics")
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// A group that never committed: Kafka answers with no offsets, some
		// brokers (and kfake) with this error. Either way nothing is
		// committed and the lag runs from the log start.
		committed, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("consumer lag: fetch offsets of group %q: %w", group, err)
	}
	ends, endErr := adm.ListEndOffsets(ctx, topics...)
	if endErr != nil && len(ends) == 0 {
		return fmt.Errorf("consumer lag: list end offsets: %w", endErr)
	}
	starts, startErr := adm.ListStartOffsets(ctx, topics...)
	if startErr != nil && len(starts) == 0 {
		return fmt.Errorf("consumer lag: list start offsets: %w", startErr)
	}

	var errs []error
	if endErr != nil {
		errs = append(errs, fmt.Errorf("list end offsets: %w", endErr))
	}
	// seen holds the partitions whose series stay: refreshed ones and those
	// that could not be read this time; keepTopics the topics missing from
	// the listing altogether (a broker did not answer). Every other series
	// belongs to a partition that is gone.
	seen := make(map[lagKey]struct{})
	keepTopics := make(map[string]bool)
	for _, topic := range topics {
		parts, ok := ends[topic]
		if !ok {
			keepTopics[topic] = true
			continue
		}
		for p, end := range parts {
			if p < 0 {
				// kadm's marker for a topic that does not exist.
				continue
			}
			if errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
				// The topic was deleted (the client's metadata still
				// lists its partitions): its series go.
				continue
			}
			k := lagKey{topic, p}
			seen[k] = struct{}{}
			if end.Err != nil {
				errs = append(errs, fmt.Errorf("end offset of %s/%d: %w", topic, p, end.Err))
				continue
			}
			var from int64
			c, hasCommit := committed.Lookup(topic, p)
			switch {
			case hasCommit && c.Err != nil:
				errs = append(errs, fmt.Errorf("committed offset of %s/%d: %w", topic, p, c.Err))
				continue
			case hasCommit && c.At >= 0:
				from = c.At
			default:
				s, ok := starts.Lookup(topic, p)
				if !ok || s.Err != nil {
					cause := errors.Join(s.Err, startErr)
					if cause == nil {
						cause = errors.New("not listed")
					}
					errs = append(errs, fmt.Errorf("start offset of %s/%d: %w", topic, p, cause))
					continue
				}
				from = s.Offset
			}
			m.lag.WithLabelValues(topic, strconv.FormatInt(int64(p), 10)).Set(float64(max(end.Offset-from, 0)))
		}
	}

	m.lagMu.Lock()
	for k := range m.lagSeries {
		if _, ok := seen[k]; ok || keepTopics[k.topic] {
			continue
		}
		m.lag.DeleteLabelValues(k.topic, strconv.FormatInt(int64(k.partition), 10))
		delete(m.lagSeries, k)
	}
	for k := range seen {
		m.lagSeries[k] = struct{}{}
	}
	m.lagMu.Unlock()
	return errors.Join(errs...)
}

// RunLagCollector refreshes ragstream_consumer_lag every interval (and
// once at once) until ctx ends, logging failed refreshes. It returns nil
// when ctx ends and an error only for bad arguments.
func (m *Metrics) RunLagCollector(ctx context.Context, adm *kadm.Client, group string, topics []string, interval time.Duration) error {
	switch {
	case adm == nil:
		return errors.New("consumer lag: nil admin client")
	case group == "":
		return errors.New("consumer lag: empty group")
	case len(topics) == 0:
		return errors.New("consumer lag: no topics")
	case interval <= 0:
		return fmt.Errorf("consumer lag: interval %v must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		// A refresh may not outlive the interval, so a hung broker cannot
		// stack refreshes up.
		rctx, cancel := context.WithTimeout(ctx, interval)
		err := m.RefreshLag(rctx, adm, group, topics)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			m.log.Warn().Err(err).Str("group", group).Msg("consumer lag refresh failed; lag gauges keep their last values")
		case err != nil:
			m.log.Debug().Err(err).Str("group", group).Msg("consumer lag refresh failed again")
		case failing:
			m.log.Info().Str("group", group).Msg("consumer lag refresh recovered")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
