package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// concurrentStore is a store that records how many batches it is applying
// at once.
type concurrentStore struct {
	*pipelinetest.Store
	now, most atomic.Int32
}

func (s *concurrentStore) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	return s.Store.Apply(ctx, b, follow)
}

// TestActiveBatches checks MaxActiveBatches: six partitions with records
// for many batches each, and a slow store, never have more batches in
// delivery at once than the bound allows, yet every partition gets its
// turn and every record is written in order and committed. Without the
// bound all six deliver at once, which is what the bound is there to stop.
// BatchStats.Wait (ragstream_stage_duration_seconds{stage="wait"}) shows the
// time batches spent waiting for a place: some with the bound, none
// without.
func TestActiveBatches(t *testing.T) {
	const parts = 6
	for _, tt := range []struct {
		active   int
		min, max int32
	}{
		{active: 2, min: 2, max: 2},
		{active: 1, min: 1, max: 1},
		{active: -1, min: 3, max: parts}, // no bound
	} {
		t.Run(fmt.Sprintf("active=%d", tt.active), func(t *testing.T) {
			topic, group := uniq("active"), uniq("g")
			cl := newKfake(t, topic, parts)
			recs := simpleStream(topic, parts, 1200, 100)
			cl.produce(t, recs...)

			auth := &concurrentStore{Store: pipelinetest.NewStore("neo4j")}
			auth.SetDelay(15 * time.Millisecond)
			sink := pipelinetest.NewStore("qdrant")
			o := testOptions(group, topic)
			o.MaxRecords, o.MaxActiveBatches = 20, tt.active
			var waited, batches atomic.Int32
			hooks := pipeline.Hooks{Batch: func(s pipeline.BatchStats) {
				batches.Add(1)
				if s.Wait > 0 {
					waited.Add(1)
				}
			}}
			start(t, cl, o, auth, sink, nil, hooks)

			waitCommitted(t, cl, group, topic, ends(recs), 60*time.Second)
			if got := auth.most.Load(); got < tt.min || got > tt.max {
				t.Errorf("at most %d batches applied at once, want %d to %d (MaxActiveBatches %d)", got, tt.min, tt.max, tt.active)
			}
			if bounded := tt.active > 0; bounded != (waited.Load() > 0) {
				t.Errorf("%d of %d batches report a wait for a place with MaxActiveBatches %d, want some only with a bound",
					waited.Load(), batches.Load(), tt.active)
			}
			checkOrder(t, auth.Store, topic, parts)
			total := 0
			for p := range int32(parts) {
				total += len(auth.Offsets(topic, p))
			}
			if total != len(recs) {
				t.Errorf("authority applied %d records, want %d", total, len(recs))
			}
		})
	}
}
