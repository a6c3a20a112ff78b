package e2e

import (
	"testing"

	"github.com/ragstream/ragstream/pipeline"
)

// TestReplayAfterDeleteAtStoredVersionChangesNothing is the smallest case of
// "re-consuming the topic from offset 0 changes nothing" that involves a
// deletion at the version the chunk was stored at: a tombstone (which
// deletes at the stored version) and an op:delete at the upsert's own
// version. Each record is a batch of its own, as in a long topic. A replay
// re-applies the upsert (its version equals the remembered one), deletes the
// chunk again, and must leave every stored field but ingested_at as it was —
// including the deletion marker's.
func TestReplayAfterDeleteAtStoredVersionChangesNothing(t *testing.T) {
	e := newEnv(t, envOptions{partitions: 1})
	tenant := e.tenants[0]
	topic := ent{ID: "topic:x", Type: "Topic", Name: "X"}
	all := e.produce(toPartition(0,
		upsert(tenant, "tombstoned", 1, "one", []ent{topic}, nil),
		tombstone(tenant, "tombstoned"),
		upsert(tenant, "deleted", 4, "two", []ent{topic}, nil),
		deleteOp(tenant, "deleted", 4),
		upsert(tenant, "kept", 1, "three", []ent{topic}, nil),
	))
	want := foldWant(t, all)
	collection := e.collectionName("rp")
	oneByOne := func(o *pipeline.Options) { o.MaxRecords = 1 }

	first := e.startWorker(workerConfig{name: "first", group: e.name("first"), collection: collection, options: oneByOne})
	e.waitCommitted(e.name("first"), commitWait, first)
	first.stop(t)
	before := e.mustMatch(collection, want)

	again := e.startWorker(workerConfig{name: "replay", group: e.name("replay"), collection: collection, options: oneByOne})
	e.waitCommitted(e.name("replay"), commitWait, again)
	again.stop(t)
	after := e.mustMatch(collection, want)
	p := problems{list: sameState(before, after)}
	p.report(t, "stores after the replay against before it")
}
