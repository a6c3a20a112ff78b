package metrics

import (
	"strconv"
	"time"
)

// InitTopics creates the per-topic series of the record counters at zero
// (every outcome included) and the paused gauge at zero, so dashboards and
// rate() see the topics before their first record.
func (m *Metrics) InitTopics(topics ...string) {
	for _, t := range topics {
		m.consumed.WithLabelValues(t)
		m.unkeyed.WithLabelValues(t)
		for _, o := range Outcomes {
			m.processed.WithLabelValues(t, o)
		}
		m.pausedMu.Lock()
		m.paused.WithLabelValues(t).Set(float64(len(m.pausedSet[t])))
		m.pausedMu.Unlock()
	}
}

// InitSinks creates the per-sink series at their starting values: no
// retries, breaker closed, sink up.
func (m *Metrics) InitSinks(sinks ...string) {
	for _, s := range sinks {
		m.retries.WithLabelValues(s)
		m.breaker.WithLabelValues(s).Set(float64(BreakerClosed))
		m.sinkUp.WithLabelValues(s).Set(1)
	}
}

// RecordsConsumed counts n records fetched from topic.
func (m *Metrics) RecordsConsumed(topic string, n int) {
	if n > 0 {
		m.consumed.WithLabelValues(topic).Add(float64(n))
	}
}

// Processed counts n records of topic whose fate is decided; outcome is one
// of Outcomes.
func (m *Metrics) Processed(topic, outcome string, n int) {
	if n > 0 {
		m.processed.WithLabelValues(topic, outcome).Add(float64(n))
	}
}

// Unkeyed counts n records of topic that arrived without a Kafka key.
func (m *Metrics) Unkeyed(topic string, n int) {
	if n > 0 {
		m.unkeyed.WithLabelValues(topic).Add(float64(n))
	}
}

// ObserveBatch records the size of one batch handed to the sinks.
func (m *Metrics) ObserveBatch(records, bytes int) {
	m.batchRecords.Observe(float64(records))
	m.batchBytes.Observe(float64(bytes))
}

// ObserveStage records the time one batch spent in stage (StageDecode,
// StageFold, StageSink, StageCommit).
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	m.stage.WithLabelValues(stage).Observe(d.Seconds())
}

// ObserveSink records one sink call: sink ("qdrant", "neo4j"), op (what
// the call did: "upsert", "delete", "read", "compensate", …) and result
// (ResultOK or the error's class).
func (m *Metrics) ObserveSink(sink, op, result string, d time.Duration) {
	m.sink.WithLabelValues(sink, op, result).Observe(d.Seconds())
}

// SetPaused marks one partition of topic paused or resumed. It is
// idempotent: the gauge counts distinct paused partitions, so pausing a
// paused partition or resuming a running one changes nothing. Call it with
// paused=false when a paused partition is revoked or lost.
func (m *Metrics) SetPaused(topic string, partition int32, paused bool) {
	m.pausedMu.Lock()
	defer m.pausedMu.Unlock()
	set := m.pausedSet[topic]
	if paused {
		if set == nil {
			set = make(map[int32]struct{})
			m.pausedSet[topic] = set
		}
		set[partition] = struct{}{}
	} else {
		delete(set, partition)
	}
	m.paused.WithLabelValues(topic).Set(float64(len(set)))
}

// ObserveE2E records the time from an event's timestamp to the commit of
// its offset. A negative duration (a producer clock ahead of ours) counts
// as zero.
func (m *Metrics) ObserveE2E(d time.Duration) {
	m.e2e.Observe(max(d, 0).Seconds())
}

// ObserveE2ESince records ObserveE2E(now - ts) for every ts, as the commit
// of a batch does for its records at once.
func (m *Metrics) ObserveE2ESince(now time.Time, ts ...time.Time) {
	for _, t := range ts {
		m.ObserveE2E(now.Sub(t))
	}
}

// Committed counts one offset commit: acknowledged when err is nil, failed
// otherwise.
func (m *Metrics) Committed(err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commits.Inc()
}

// DeadLettered counts n records acknowledged by the dead-letter topic with
// the given error class and stage (the DLQ* constants).
func (m *Metrics) DeadLettered(class, stage string, n int) {
	if n > 0 {
		m.dlq.WithLabelValues(class, stage).Add(float64(n))
	}
}

// SinkRetry counts one retry of a transient error of sink.
func (m *Metrics) SinkRetry(sink string) {
	m.retries.WithLabelValues(sink).Inc()
}

// SetBreakerState records the state of sink's circuit breaker.
func (m *Metrics) SetBreakerState(sink string, s BreakerState) {
	m.breaker.WithLabelValues(sink).Set(float64(s))
}

// SetSinkUp records whether sink accepts writes.
func (m *Metrics) SetSinkUp(sink string, up bool) {
	m.sinkUp.WithLabelValues(sink).Set(b2f(up))
}

// SetReady records whether the readiness probe passes.
func (m *Metrics) SetReady(ready bool) { m.ready.Set(b2f(ready)) }

// SetDependencyUp records whether the readiness check or condition named
// dependency passes.
func (m *Metrics) SetDependencyUp(dependency string, up bool) {
	m.depUp.WithLabelValues(dependency).Set(b2f(up))
}

// SetRateLimitFallback records whether the rate limiter runs on its local
// fallback.
func (m *Metrics) SetRateLimitFallback(active bool) { m.rlFallbk.Set(b2f(active)) }

// CacheRequest counts one cache lookup; result is CacheHit or CacheMiss.
func (m *Metrics) CacheRequest(result string) {
	m.cache.WithLabelValues(result).Inc()
}

// ObserveHTTP records one HTTP request served by the admin port. route
// must be a route template (the ServeMux pattern without its method, e.g.
// "/v1/tenants/{tenant}/subjects/{id}"), never a raw path, so the number of
// series stays bounded; method is bounded here.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	method = sanitizeMethod(method)
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// sanitizeMethod maps the methods of RFC 9110 (and PATCH) to themselves and
// anything else, which a client can invent at will, to "OTHER".
func sanitizeMethod(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return method
	}
	return "OTHER"
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
