package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/admin"
	"github.com/ragstream/ragstream/internal/metrics"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/breaker"
	"github.com/ragstream/ragstream/sinks/neo4j"
)

// resultOf maps a store error to the result label of the sink metrics.
func resultOf(err error) string {
	switch {
	case err == nil:
		return metrics.ResultOK
	case pipeline.ClassOf(err) == pipeline.ClassPermanent:
		return metrics.ResultPermanent
	case pipeline.ClassOf(err) == pipeline.ClassSinkDown:
		return metrics.ResultDown
	default:
		return metrics.ResultTransient
	}
}

// timedSink measures the follower's writes.
type timedSink struct {
	pipeline.Sink
	m *metrics.Metrics
}

func (s timedSink) Write(ctx context.Context, writes []pipeline.Write) error {
	start := time.Now()
	err := s.Sink.Write(ctx, writes)
	s.m.ObserveSink(s.Name(), "write", resultOf(err), time.Since(start))
	return err
}

// timedDeadLetter measures the dead-letter produces as sink "dlq", op
// "send".
type timedDeadLetter struct {
	pipeline.DeadLetter
	m *metrics.Metrics
}

func (d timedDeadLetter) Send(ctx context.Context, recs []*pipeline.Record) error {
	start := time.Now()
	err := d.DeadLetter.Send(ctx, recs)
	d.m.ObserveSink(storeDLQ, "send", resultOf(err), time.Since(start))
	return err
}

// storeDLQ names the dead-letter queue where stores are named: its breaker,
// readiness component and metrics' sink label.
const storeDLQ = "dlq"

// timedAuthority measures the authority's own share of Apply: the whole
// call less the follower's write inside it and, for the Neo4j sink, less
// its wait for a transaction turn (queueing behind the other partitions'
// transactions, which is backpressure, not time in the store).
type timedAuthority struct {
	pipeline.Authority
	m *metrics.Metrics
}

func (a timedAuthority) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	var followed, queued time.Duration
	start := time.Now()
	err := a.Authority.Apply(neo4j.WithTurnWait(ctx, &queued), b, func(ctx context.Context, w []pipeline.Write) error {
		if neo4j.FollowOverlaps(ctx) {
			// Written beside the statements: part of the call's time.
			return follow(ctx, w)
		}
		fs := time.Now()
		err := follow(ctx, w)
		followed += time.Since(fs)
		return err
	})
	a.m.ObserveSink(a.Name(), "apply", resultOf(err), time.Since(start)-followed-queued)
	return err
}

// breakerListener reports a store's breaker transitions: an open (or
// half-open) breaker marks the store down in readiness with the failure that
// opened it and sets ragstream_sink_up to 0; closing marks it up again.
// ragstream_breaker_state follows every transition. It is called with the
// breaker's lock held, so it only records.
func breakerListener(m *metrics.Metrics, ready admin.StatusReporter, log zerolog.Logger) func(breaker.Change) {
	return func(c breaker.Change) {
		m.SetBreakerState(c.Store, metrics.BreakerState(c.To))
		m.SetSinkUp(c.Store, c.To == breaker.Closed)
		if c.To == breaker.Closed {
			ready.ReportUp(c.Store)
			log.Info().Str("store", c.Store).Stringer("from", c.From).Msg("circuit breaker closed: store accepts writes again; partitions resume")
			return
		}
		cause := c.Err
		if cause == nil {
			cause = errors.New("no failure recorded")
		}
		ready.ReportDown(c.Store, fmt.Errorf("circuit breaker %s: %w", c.To, cause))
		ev := log.Warn()
		if c.To == breaker.Open {
			ev = log.Error()
		}
		ev.Str("store", c.Store).Stringer("from", c.From).Stringer("to", c.To).AnErr("cause", c.Err).
			Msg("circuit breaker " + c.To.String() + ": store down; its partitions pause, nothing is dead-lettered")
	}
}

// pipelineHooks feeds the pipeline's events into the metrics registry and
// the readiness of the group. ragstream_partitions_paused counts the
// partitions paused because a store (or the DLQ) is down; the pauses of
// backpressure are routine and not counted.
func pipelineHooks(m *metrics.Metrics, joined func(bool)) pipeline.Hooks {
	var mu sync.Mutex
	paused := map[string]map[int32]pipeline.PauseReason{}
	setPause := func(t string, p int32, r pipeline.PauseReason, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if paused[t] == nil {
			paused[t] = map[int32]pipeline.PauseReason{}
		}
		if on {
			paused[t][p] |= r
		} else {
			paused[t][p] &^= r
		}
		m.SetPaused(t, p, paused[t][p]&pipeline.PauseSinkDown != 0)
	}
	outcomes := [...]string{
		pipeline.OutcomeApplied:      metrics.OutcomeApplied,
		pipeline.OutcomeSkippedStale: metrics.OutcomeSkippedStale,
		pipeline.OutcomeFailed:       metrics.OutcomeFailed,
		pipeline.OutcomeDeadLettered: metrics.OutcomeDeadLettered,
	}
	return pipeline.Hooks{
		Consumed: func(t string, _ int32, n, _ int) { m.RecordsConsumed(t, n) },
		Keyless:  func(t string, _ int32) { m.Unkeyed(t, 1) },
		Batch: func(s pipeline.BatchStats) {
			m.ObserveBatch(s.Records, s.Bytes)
			m.ObserveStage(metrics.StageWait, s.Wait)
			m.ObserveStage(metrics.StageDecode, s.Decode)
			m.ObserveStage(metrics.StageSink, s.Sink)
			for o, n := range s.Outcomes {
				if n > 0 && o < len(outcomes) && outcomes[o] != "" {
					m.Processed(s.Topic, outcomes[o], n)
				}
			}
		},
		Committed: func(s pipeline.CommitStats) {
			m.Committed(nil)
			// Kafka's timestamp is when the record was produced; the event's
			// own ts may be far older (a backfill), which says nothing about
			// the pipeline. The oldest record of the commit bounds it.
			if !s.MinKafkaTime.IsZero() {
				m.ObserveE2E(time.Since(s.MinKafkaTime))
			}
		},
		Retry: func(_ string, _ int32, store string, _ pipeline.Class, _ error) { m.SinkRetry(store) },
		DeadLettered: func(_ string, _ int32, class, stage string) {
			m.DeadLettered(class, stage, 1)
		},
		Paused:   func(t string, p int32, r pipeline.PauseReason) { setPause(t, p, r, true) },
		Resumed:  func(t string, p int32, r pipeline.PauseReason) { setPause(t, p, r, false) },
		Assigned: func(string, int32) { joined(true) },
		// A revoked partition is no longer this member's to pause.
		Revoked: func(t string, p int32, _ bool) { setPause(t, p, ^pipeline.PauseReason(0), false) },
	}
}
