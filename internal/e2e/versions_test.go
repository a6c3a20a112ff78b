package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
)

// batchLog records the batches a worker finished.
type batchLog struct {
	mu      sync.Mutex
	batches []pipeline.BatchStats
}

func (b *batchLog) hook(s pipeline.BatchStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, s)
}

// covering returns the batch of partition p that holds both offsets, if any.
func (b *batchLog) covering(p int32, from, to int64) (pipeline.BatchStats, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.batches {
		if s.Partition == p && s.FirstOffset <= from && s.LastOffset >= to {
			return s, true
		}
	}
	return pipeline.BatchStats{}, false
}

func (b *batchLog) count(p int32) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.batches {
		if s.Partition == p {
			n++
		}
	}
	return n
}

// TestPerKeyOrderAndVersions holds DESIGN.md §4's version rule end to end:
// a key updated 50 times across batches ends at its last update; an event
// with a lower version than the stored one does not overwrite — not in
// Neo4j, not in Qdrant — whether it arrives in the same batch or much later;
// after a delete (op:delete or tombstone) an older upsert arriving later does
// not bring the chunk back.
func TestPerKeyOrderAndVersions(t *testing.T) {
	e := newEnv(t, envOptions{partitions: 3})
	tenant := e.tenants[0]
	text := func(id string, v int64) string { return fmt.Sprintf("%s at version %d", id, v) }
	up := func(id string, v int64) *kgo.Record {
		return upsert(tenant, id, v, text(id, v), []ent{{ID: "topic:" + id, Type: "Topic", Name: "Topic " + id}}, nil)
	}

	// Partition 0: the 50 updates of "many", each followed by a new chunk,
	// so that with 8 records a batch they span about 13 batches.
	var p0 []*kgo.Record
	for v := int64(1); v <= 50; v++ {
		p0 = append(p0, up("many", v), up(fmt.Sprintf("filler-%02d", v), 1))
	}
	// Partition 1, consumed in one batch: a key written at 5 then at 3; a
	// key deleted at 2 after an upsert at 3 (a delete loses too).
	p1 := []*kgo.Record{up("lower", 5), up("lower", 3), up("guarded", 3), deleteOp(tenant, "guarded", 2)}
	// Partition 2: deletions the late upserts below must not undo.
	p2 := []*kgo.Record{up("deleted", 1), deleteOp(tenant, "deleted", 2), up("tombstoned", 3), tombstone(tenant, "tombstoned")}

	// Produced before the worker starts, so the first fetch holds each
	// partition whole and partition 1 is one batch.
	all := e.produceManual(append(append(toPartition(0, p0...), toPartition(1, p1...)...), toPartition(2, p2...)...))
	batches := &batchLog{}
	collection := e.collectionName("ver")
	group := e.name("ver")
	w := e.startWorker(workerConfig{name: "ver", group: group, collection: collection,
		options: func(o *pipeline.Options) { o.MaxRecords = 8; o.Linger = 200 * time.Millisecond },
		hooks:   pipeline.Hooks{Batch: batches.hook}})
	e.waitCommitted(group, commitWait, w)
	if n := batches.count(0); n < 10 {
		t.Errorf("the 50 updates went through %d batches, want them spread over at least 10", n)
	}
	if s, ok := batches.covering(1, 0, 3); !ok {
		t.Errorf("partition 1 was not one batch: %+v", batches.batches)
	} else if s.Outcomes[pipeline.OutcomeSkippedStale] != 2 {
		t.Errorf("partition 1's batch: %d records skipped as stale, want 2 (outcomes %v)", s.Outcomes[pipeline.OutcomeSkippedStale], s.Outcomes)
	}
	final := func() {
		t.Helper()
		want := foldWant(t, all)
		for id, v := range map[string]int64{"many": 50, "lower": 5, "guarded": 3} {
			if c := want.chunks[tenant+"/"+id]; c == nil || c.version != v || c.ev["text"] != text(id, v) {
				t.Fatalf("scenario: %s should end at version %d", id, v)
			}
		}
		for _, id := range []string{"deleted", "tombstoned"} {
			if _, ok := want.deleted[tenant+"/"+id]; !ok {
				t.Fatalf("scenario: %s should end deleted", id)
			}
		}
		e.mustMatch(collection, want)
		// The same facts read directly, as a user of each store sees them.
		for id, v := range map[string]int64{"many": 50, "lower": 5, "guarded": 3} {
			e.requireChunk(collection, tenant, id, v, text(id, v))
		}
		for _, id := range []string{"deleted", "tombstoned"} {
			e.requireNoChunk(collection, tenant, id)
		}
	}
	final()

	// Much later, in batches of their own: older versions of every key.
	all = append(all, e.produceManual(append(append(
		toPartition(0, up("many", 49), up("many", 1)),
		toPartition(1, up("lower", 4), up("guarded", 2))...),
		toPartition(2, up("deleted", 1), up("tombstoned", 2))...))...)
	e.waitCommitted(group, commitWait, w)
	final()
}

// requireChunk checks one chunk in both stores: the Qdrant point (by its
// point id) and the Chunk node carry version and text.
func (e *env) requireChunk(collection, tenant, id string, version int64, text string) {
	e.t.Helper()
	pt, ok := e.getPoint(collection, tenant, id)
	if !ok {
		e.t.Errorf("%s/%s: no Qdrant point", tenant, id)
	} else if pt.payload["version"] != version || pt.payload["text"] != text {
		e.t.Errorf("%s/%s: Qdrant has version %v text %q, want %d %q", tenant, id, pt.payload["version"], pt.payload["text"], version, text)
	}
	recs := e.query(`MATCH (c:Chunk {tenant: $t, id: $id}) RETURN c.version, c.text`, map[string]any{"t": tenant, "id": id})
	if len(recs) != 1 {
		e.t.Errorf("%s/%s: %d Chunk nodes, want 1", tenant, id, len(recs))
	} else if recs[0].Values[0] != version || recs[0].Values[1] != text {
		e.t.Errorf("%s/%s: Neo4j has version %v text %q, want %d %q", tenant, id, recs[0].Values[0], recs[0].Values[1], version, text)
	}
}

// requireNoChunk checks that neither store holds the chunk.
func (e *env) requireNoChunk(collection, tenant, id string) {
	e.t.Helper()
	if pt, ok := e.getPoint(collection, tenant, id); ok {
		e.t.Errorf("%s/%s: deleted, but Qdrant has it at version %v", tenant, id, pt.payload["version"])
	}
	if recs := e.query(`MATCH (c:Chunk {tenant: $t, id: $id}) RETURN c.version`, map[string]any{"t": tenant, "id": id}); len(recs) != 0 {
		e.t.Errorf("%s/%s: deleted, but Neo4j has it at version %v", tenant, id, recs[0].Values[0])
	}
}
