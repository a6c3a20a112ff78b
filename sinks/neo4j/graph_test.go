package neo4j

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

func TestSetupCreatesConstraints(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	// Setup is idempotent: a second run finds everything in place.
	if err := s.Setup(context.Background()); err != nil {
		t.Fatalf("second setup: %v", err)
	}
	for _, label := range []string{labelChunk, labelEntity, labelTombstone} {
		n := count(t, drv, `SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties
			WHERE type = 'UNIQUENESS' AND labelsOrTypes = [$l] AND properties = ['tenant', 'id']
			RETURN count(*)`, map[string]any{"l": label})
		if n != 1 {
			t.Errorf("uniqueness constraints on %s(tenant, id): %d, want 1", label, n)
		}
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestUpsertWritesGraph(t *testing.T) {
	t.Parallel()
	for _, storeText := range []bool{true, false} {
		t.Run(map[bool]string{true: "store_text", false: "no_text"}[storeText], func(t *testing.T) {
			t.Parallel()
			s, drv := testSink(t, Config{StoreText: storeText})
			tenant := newTenant(t, drv)
			var bt batcher
			ev := upsert(tenant, "doc-42#3", 17, ts(0),
				[]event.Entity{
					ent("person:alice", "Person", "Alice", map[string]any{"role": "CEO", "langs": []any{"en", "fr"}, "nothing": nil}),
					ent("org:acme", "Organization", "Acme", map[string]any{"founded": int64(2019), "rating": 4.0}),
				},
				[]event.Relation{rel("person:alice", "FOUNDED", "org:acme", map[string]any{"year": int64(2019)})})
			ev.Metadata = map[string]any{"source": "crm", "nested": map[string]any{"a": []any{int64(1), "<b>"}}}
			b := bt.batch(ev)
			writes := apply(t, s, b)

			if len(writes) != 1 || writes[0].Action != pipeline.ActionUpsert || writes[0].Version != 17 || writes[0].Record != b.Records[0] {
				t.Fatalf("follow got %+v, want one upsert at version 17 of the record", writes)
			}
			if b.Records[0].Outcome != pipeline.OutcomeApplied {
				t.Errorf("outcome %s, want applied", b.Records[0].Outcome)
			}
			g := dump(t, drv, tenant)
			c := g.Chunks["doc-42#3"]
			if c == nil {
				t.Fatalf("no chunk; graph:\n%s", g)
			}
			want := map[string]any{
				"tenant": tenant, "id": "doc-42#3", "doc_id": "doc-doc-42#3", "version": int64(17),
				"metadata":         `{"nested":{"a":[1,"<b>"]},"source":"crm"}`,
				"entities":         []any{"person:alice", "org:acme"},
				"correlation_id":   "corr-0",
				"source_topic":     "events",
				"source_partition": int64(0),
				"source_offset":    int64(0),
				"labels":           []any{"Chunk"},
			}
			if storeText {
				want["text"] = "text of doc-42#3"
			}
			for k, v := range want {
				if !reflect.DeepEqual(c[k], v) {
					t.Errorf("chunk.%s = %#v, want %#v", k, c[k], v)
				}
			}
			if _, ok := c["text"]; ok && !storeText {
				t.Errorf("chunk.text stored with StoreText false")
			}
			if got, ok := c["ts"].(time.Time); !ok || !got.Equal(ts(0)) {
				t.Errorf("chunk.ts = %v, want %v", c["ts"], ts(0))
			}

			alice := g.Entities["person:alice"]
			if !reflect.DeepEqual(alice.Labels, []string{"Entity", "Person"}) {
				t.Errorf("alice labels %v, want [Entity Person]", alice.Labels)
			}
			for k, v := range map[string]any{"name": "Alice", "type": "Person", "role": "CEO", "langs": []any{"en", "fr"}, "tenant": tenant, "id": "person:alice"} {
				if !reflect.DeepEqual(alice.Props[k], v) {
					t.Errorf("alice.%s = %#v, want %#v", k, alice.Props[k], v)
				}
			}
			if _, ok := alice.Props["nothing"]; ok {
				t.Errorf("a null prop was stored")
			}
			acme := g.Entities["org:acme"]
			if acme.Props["founded"] != int64(2019) || acme.Props["rating"] != 4.0 {
				t.Errorf("acme props %v: want founded int 2019 and rating float 4.0", acme.Props)
			}
			if want := []string{"doc-42#3->org:acme", "doc-42#3->person:alice"}; !reflect.DeepEqual(g.Mentions, want) {
				t.Errorf("mentions %v, want %v", g.Mentions, want)
			}
			r := g.Relations["person:alice-FOUNDED->org:acme"]
			if r == nil || r["year"] != int64(2019) || !reflect.DeepEqual(r["sources"], []string{"doc-42#3"}) {
				t.Errorf("relationship FOUNDED %v, want year 2019 and sources [doc-42#3]; graph:\n%s", r, g)
			}
		})
	}
}

// TestReplayChangesNothing replays every batch of a history with updates,
// deletes and tombstones: the graph stays as it was, but for ingested_at.
func TestReplayChangesNothing(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{StoreText: true})
	tenant := newTenant(t, drv)
	history := func() []*pipeline.Batch {
		var bt batcher
		x := ent("x", "Person", "X", map[string]any{"a": int64(1)})
		y := ent("y", "Place", "Y", map[string]any{"b": "yes"})
		z := ent("z", "Organization", "Z", nil)
		return []*pipeline.Batch{
			bt.batch(
				upsert(tenant, "c1", 1, ts(1), []event.Entity{x, y}, []event.Relation{rel("x", "LIVES_IN", "y", map[string]any{"since": int64(2001)})}),
				upsert(tenant, "c2", 1, ts(2), []event.Entity{y, z}, []event.Relation{rel("z", "LOCATED_IN", "y", nil)}),
				upsert(tenant, "c3", 1, ts(3), []event.Entity{z}, nil),
			),
			bt.batch(
				upsert(tenant, "c1", 2, ts(4), []event.Entity{x}, nil),
				deleteEv(tenant, "c3", 2),
				upsert(tenant, "c2", 0, ts(5), nil, nil), // stale
			),
			bt.batch(
				tombstone(tenant, "c2"),
				upsert(tenant, "c4", 1, ts(6), []event.Entity{y, z}, []event.Relation{rel("z", "LOCATED_IN", "y", map[string]any{"w": 0.5})}),
			),
		}
	}
	for _, b := range history() {
		apply(t, s, b)
	}
	before := dump(t, drv, tenant)
	for _, b := range history() {
		apply(t, s, b)
	}
	after := dump(t, drv, tenant)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("replay changed the graph\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if len(before.Chunks) != 2 || len(before.Tombstones) != 2 {
		t.Fatalf("history left %d chunks and %d markers, want 2 and 2:\n%s", len(before.Chunks), len(before.Tombstones), before)
	}
}

func TestFollowReceivesAppliedWrites(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	var bt batcher
	apply(t, s, bt.batch(upsert(tenant, "old", 5, ts(0), nil, nil), deleteEv(tenant, "gone", 3)))

	b := bt.batch(
		upsert(tenant, "a", 1, ts(1), nil, nil),
		upsert(tenant, "a", 3, ts(2), nil, nil),
		upsert(tenant, "a", 2, ts(3), nil, nil), // stale within the batch
		upsert(tenant, "old", 4, ts(4), nil, nil),
		upsert(tenant, "gone", 2, ts(5), nil, nil), // below the marker
		deleteEv(tenant, "old", 5),
		tombstone(tenant, "b"),
	)
	b.Records = append(b.Records, &pipeline.Record{Err: errBad, Event: upsert(tenant, "bad", 1, ts(0), nil, nil)})
	writes := apply(t, s, b)

	type w struct {
		key     string
		action  pipeline.Action
		version int64
		record  int
		prior   pipeline.Stored
	}
	var got []w
	for _, x := range writes {
		got = append(got, w{x.Key.ID, x.Action, x.Version, slices.Index(b.Records, x.Record), x.Prior})
	}
	want := []w{
		{"a", pipeline.ActionUpsert, 3, 1, pipeline.Stored{}},
		{"old", pipeline.ActionDelete, 5, 5, pipeline.Stored{State: pipeline.Present, Version: 5}},
		{"b", pipeline.ActionDelete, 0, 6, pipeline.Stored{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("follow got\n%+v\nwant\n%+v", got, want)
	}
	wantOutcomes := []pipeline.Outcome{
		pipeline.OutcomeApplied, pipeline.OutcomeApplied, pipeline.OutcomeSkippedStale, pipeline.OutcomeSkippedStale,
		pipeline.OutcomeSkippedStale, pipeline.OutcomeApplied, pipeline.OutcomeApplied, pipeline.OutcomePending,
	}
	for i, r := range b.Records {
		if r.Outcome != wantOutcomes[i] {
			t.Errorf("record %d outcome %s, want %s", i, r.Outcome, wantOutcomes[i])
		}
	}
}
