package qdrant

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/mem"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// sampleWrites decodes n generated records (384 dimensions) into the writes
// the worker hands the sink: the upserts and deletes of the sample, without
// its deliberate bad records.
func sampleWrites(tb testing.TB, n int) []pipeline.Write {
	tb.Helper()
	const dims = 384
	dec := event.NewDecoder(event.DefaultLimits(dims))
	var writes []pipeline.Write
	for i, r := range sample.Generate(n, sample.Options{Seed: 3, Dims: dims}) {
		ev, err := dec.Decode(r.Key, r.Value)
		if err != nil {
			continue
		}
		rec := &pipeline.Record{Src: &kgo.Record{Topic: "events", Partition: int32(i % 7), Offset: int64(i) << 20},
			Event: ev, CorrelationID: fmt.Sprintf("events/%d/%d", i%7, i)}
		act := pipeline.ActionUpsert
		if ev.Op == event.OpDelete || ev.Vector == nil {
			act = pipeline.ActionDelete
		}
		writes = append(writes, pipeline.Write{Key: rec.Key(), Action: act, Version: ev.Version, Record: rec})
	}
	return writes
}

// BenchmarkUpsertEncodeBatch encodes the worker's default batch (1000
// records, qdrant.store_text on): its request is over the pool's largest
// tier (1 MiB), so Write gives it a buffer of its own (pooledUpsertBytes).
func BenchmarkUpsertEncodeBatch(b *testing.B) {
	writes := sampleWrites(b, 1000)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _, err := encodeUpsert("c", writes, true, now, nil)
		if err != nil {
			b.Fatal(err)
		}
		mem.NewBuffer(req.buf, req.pool).Free()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes))/1e3, "us/point")
}
