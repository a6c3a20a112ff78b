package breaker

import (
	"context"
	"sync"

	"github.com/ragstream/ragstream/pipeline"
)

// Authority returns a with every Apply going through the breaker. A
// failure of the follower inside Apply's transaction is the follower's
// (its own breaker counts it), so it counts as neither success nor failure
// here. The result implements pipeline.Tripper.
func (b *Breaker) Authority(a pipeline.Authority) pipeline.Authority {
	return &authority{Authority: a, b: b}
}

// Sink returns s with every Write going through the breaker. The result
// implements pipeline.Tripper.
func (b *Breaker) Sink(s pipeline.Sink) pipeline.Sink {
	return &sink{Sink: s, b: b}
}

// DeadLetter returns d with every Send going through the breaker: a DLQ
// that keeps failing opens it and pauses the partitions like a store that
// is down; nothing is dropped. The result implements pipeline.Tripper.
func (b *Breaker) DeadLetter(d pipeline.DeadLetter) pipeline.DeadLetter {
	return &deadLetter{dl: d, b: b}
}

type authority struct {
	pipeline.Authority
	b *Breaker
}

func (a *authority) Trip(err error) { a.b.Trip(err) }

func (a *authority) Apply(ctx context.Context, batch *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	// The authority may run its transaction, and so follow, more than once
	// (the Neo4j driver retries deadlocks); the last run decides.
	var mu sync.Mutex
	var followErr error
	tracked := func(ctx context.Context, w []pipeline.Write) error {
		err := follow(ctx, w)
		mu.Lock()
		followErr = err
		mu.Unlock()
		return err
	}
	return a.b.do(ctx, func(ctx context.Context) error { return a.Authority.Apply(ctx, batch, tracked) },
		func(error) bool {
			mu.Lock()
			defer mu.Unlock()
			return followErr != nil
		})
}

type sink struct {
	pipeline.Sink
	b *Breaker
}

func (s *sink) Trip(err error) { s.b.Trip(err) }

func (s *sink) Write(ctx context.Context, writes []pipeline.Write) error {
	return s.b.do(ctx, func(ctx context.Context) error { return s.Sink.Write(ctx, writes) }, nil)
}

type deadLetter struct {
	dl pipeline.DeadLetter
	b  *Breaker
}

func (d *deadLetter) Trip(err error) { d.b.Trip(err) }

func (d *deadLetter) Send(ctx context.Context, recs []*pipeline.Record) error {
	return d.b.do(ctx, func(ctx context.Context) error { return d.dl.Send(ctx, recs) }, nil)
}

var (
	_ pipeline.Tripper = (*authority)(nil)
	_ pipeline.Tripper = (*sink)(nil)
	_ pipeline.Tripper = (*deadLetter)(nil)
)
