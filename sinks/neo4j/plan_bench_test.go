package neo4j

import (
	"fmt"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
)

// BenchmarkPlan measures the CPU of working out a batch's graph changes
// (newPlan) and the merge rows the transaction then sends
// (entityMergeRows, relationMergeRows), on sample batches: each event one
// chunk, 3 entities and 2 relations. It needs no Neo4j. "new" writes chunks
// the graph does not have; "rewrite" writes each chunk again one second
// later over its stored assertions (each assertion covers the old one, so
// everything merges without a withdrawal). It reports ns/event besides
// ns/op (one batch).
//
//	go test -run '^$' -bench Plan -benchmem -count 5 -cpu 1 ./sinks/neo4j/
func BenchmarkPlan(b *testing.B) {
	for _, size := range []int{100, 1000} {
		batch := benchBatches(b, "bp", size, 1)[0]
		writes := make([]pipeline.Write, len(batch.Records))
		rewrites := make([]pipeline.Write, len(batch.Records))
		priors := make(map[pipeline.Key]*chunkGraph, len(batch.Records))
		for i, r := range batch.Records {
			writes[i] = pipeline.Write{Key: r.Key(), Action: pipeline.ActionUpsert, Record: r, Version: r.Event.Version}
			priors[r.Key()] = graphOf(&r.Event)
			later := *r
			later.Event.TS = later.Event.TS.Add(time.Second)
			rewrites[i] = pipeline.Write{Key: r.Key(), Action: pipeline.ActionUpsert, Record: &later, Version: r.Event.Version + 1,
				Prior: pipeline.Stored{State: pipeline.Present, Version: r.Event.Version}}
		}
		meta := chunkMeta{storeText: true, now: time.Date(2026, 1, 9, 0, 0, 0, 0, time.UTC)}
		for _, c := range []struct {
			name   string
			writes []pipeline.Write
			priors map[pipeline.Key]*chunkGraph
		}{{"new", writes, nil}, {"rewrite", rewrites, priors}} {
			b.Run(fmt.Sprintf("%s/batch=%d", c.name, size), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := newPlan(c.writes, c.priors, meta)
					if err != nil {
						b.Fatal(err)
					}
					if len(entityMergeRows(p.entIn)) == 0 || len(relationMergeRows(p.relIn)) == 0 {
						b.Fatal("no merge rows")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
			})
		}
	}
}
