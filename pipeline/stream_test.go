package pipeline_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

func eventLimits() event.Limits { return event.DefaultLimits(pipelinetest.Dims) }

// mixedStream returns n records over partitions partitions of topic: keys
// repeat (each key stays in one partition), versions go up and sometimes
// down, some events have no version, some are op:delete, some tombstones,
// some lack a correlation-id header. Deterministic in seed.
func mixedStream(topic string, partitions int32, n int, seed uint64) []*kgo.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	keys := max(n/4, 1)
	versions := make([]int64, keys)
	recs := make([]*kgo.Record, 0, n)
	ts := time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)
	for i := range n {
		k := rng.IntN(keys)
		tenant := []string{"acme", "globex"}[k%2]
		id := fmt.Sprintf("doc-%d#%d", k/3, k%3)
		p := int32(k) % partitions
		corr := ""
		if rng.IntN(4) > 0 {
			corr = fmt.Sprintf("corr-%d", i)
		}
		ev := pipelinetest.Event{Tenant: tenant, ID: id, Text: fmt.Sprintf("event %d", i), TS: ts.Add(time.Duration(i) * time.Second),
			Entities: []string{fmt.Sprintf("e%d", rng.IntN(5))}}
		switch x := rng.IntN(20); {
		case x == 0:
			recs = append(recs, pipelinetest.Tombstone(topic, p, tenant, id))
			continue
		case x == 1:
			ev.Delete = true
			versions[k]++
			ev.Version = versions[k]
		case x == 2:
			ev.NoVersion = true
		case x <= 4:
			ev.Version = max(versions[k]-1-int64(rng.IntN(2)), 0) // stale
		case x == 5:
			ev.Version = versions[k] // equal: re-applies
		default:
			versions[k] += 1 + int64(rng.IntN(2))
			ev.Version = versions[k]
		}
		recs = append(recs, ev.Record(topic, p, corr))
	}
	return recs
}

// simpleStream returns n upserts of distinct keys, round-robin over
// partitions.
func simpleStream(topic string, partitions int32, n int, pad int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range n {
		ev := pipelinetest.Event{Tenant: "acme", ID: fmt.Sprintf("c%06d", i), Version: 1, Pad: pad}
		recs[i] = ev.Record(topic, int32(i)%partitions, "")
	}
	return recs
}
