package pipeline_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// TestInflightBudget checks MaxInflightBytes: with the store blocked, six
// partitions whose own limits would each hold megabytes together hold no
// more than the budget (give or take the fetches under way when it was
// reached), every one of them pauses, and once the store answers again all
// records are written in order and committed.
func TestInflightBudget(t *testing.T) {
	topic, group := uniq("budget"), uniq("g")
	const parts = 6
	cl := newKfake(t, topic, parts)
	recs := simpleStream(topic, parts, 6000, 1000) // ~1 KB values
	// Kafka batches of ~10 KB per partition, uncompressed so that
	// FetchMaxBytes bounds the bytes of the records a fetch returns.
	for i := 0; i < len(recs); i += 60 {
		cl.produceWith(t, []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}, recs[i:i+60]...)
	}

	auth, sink := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	unblock := auth.Block()
	defer unblock()
	var consumed atomic.Int64
	hooks := pipeline.Hooks{Consumed: func(_ string, _ int32, _ int, bytes int) { consumed.Add(int64(bytes)) }}
	o := testOptions(group, topic)
	o.MaxRecords, o.MaxInflightBatches, o.Linger = 100, 50, pipeline.ZeroLinger
	// Each partition alone may hold 49 batches (~5 MB); all of them
	// together, 256 KiB. A fetch brings at most 64 KiB.
	o.MaxInflightBytes, o.FetchMaxBytes = 256<<10, 64<<10
	r := start(t, cl, o, auth, sink, nil, hooks)

	waitFor(t, 20*time.Second, "every partition paused for backpressure", func() bool {
		n := 0
		for _, s := range r.c.Status() {
			if s.Paused&pipeline.PauseBackpressure != 0 {
				n++
			}
		}
		return n == parts
	})
	time.Sleep(500 * time.Millisecond) // give fetching every chance to overrun
	// Fetches under way when the budget was passed still arrive: one
	// buffered and one in flight, each up to FetchMaxBytes plus one batch
	// per partition (a fetch returns whole batches).
	limit := int64(o.MaxInflightBytes) + 2*int64(o.FetchMaxBytes) + parts*12<<10
	if got := consumed.Load(); got > limit {
		t.Errorf("%d bytes handed to the workers with the store blocked, want at most %d (budget %d)", got, limit, o.MaxInflightBytes)
	}
	unblock()
	waitCommitted(t, cl, group, topic, ends(recs), 120*time.Second)
	checkOrder(t, auth, topic, parts)
	total := 0
	for p := range int32(parts) {
		total += len(auth.Offsets(topic, p))
	}
	if total != len(recs) {
		t.Errorf("authority applied %d records, want %d", total, len(recs))
	}
}
