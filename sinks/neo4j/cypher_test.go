package neo4j

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

func TestWriteStatementParts(t *testing.T) {
	t.Parallel()
	relRow := func(i int64, typ string) any { return map[string]any{"i": i, "type": typ} }
	entRow := map[string]any{"i": int64(0)}
	chunkRow := map[string]any{"id": "c"}

	if q, params, err := writeStatement(nil, nil, nil); err != nil || q != "" || params != nil {
		t.Errorf("nothing to write: got %q, %v, %v; want no statement", q, params, err)
	}

	t.Run("chunks only", func(t *testing.T) {
		q, params, err := writeStatement(nil, []any{chunkRow}, nil)
		if err != nil || q == "" {
			t.Fatalf("got statement %q, err %v", q, err)
		}
		if strings.Contains(q, "$ents") || strings.Contains(q, "$rels") || !strings.Contains(q, "UNWIND $chunks AS r") {
			t.Errorf("statement has other parts than the chunk upsert:\n%s", q)
		}
		if !strings.HasSuffix(q, "RETURN [] AS ents, [] AS rels") {
			t.Errorf("statement ends %q, want empty lists returned", q[max(0, len(q)-40):])
		}
		if want := (map[string]any{"chunks": []any{chunkRow}}); !reflect.DeepEqual(params, want) {
			t.Errorf("params %v, want %v", params, want)
		}
	})

	t.Run("types in name order", func(t *testing.T) {
		rels := []any{relRow(0, "WORKS_AT"), relRow(1, "FOUNDED"), relRow(2, "WORKS_AT"), relRow(3, "LIVES_IN")}
		q, params, err := writeStatement([]any{entRow}, []any{chunkRow}, rels)
		if err != nil || q == "" {
			t.Fatalf("got statement %q, err %v", q, err)
		}
		// Entities, then chunks, then one part per type by name.
		var at []int
		for _, s := range []string{"UNWIND $ents AS r", "UNWIND $chunks AS r",
			"UNWIND $rels0 AS r", "[n:`FOUNDED`]", "UNWIND $rels1 AS r", "[n:`LIVES_IN`]", "UNWIND $rels2 AS r", "[n:`WORKS_AT`]"} {
			i := strings.Index(q, s)
			if i < 0 {
				t.Fatalf("statement lacks %q:\n%s", s, q)
			}
			at = append(at, i)
		}
		if !slices.IsSorted(at) {
			t.Errorf("parts out of order (positions %v):\n%s", at, q)
		}
		if strings.Count(q, "CALL () {") != 5 {
			t.Errorf("want 5 subqueries (entities, chunks, three types):\n%s", q)
		}
		want := map[string]any{
			"ents": []any{entRow}, "chunks": []any{chunkRow},
			"rels0": []any{rels[1]}, "rels1": []any{rels[3]}, "rels2": []any{rels[0], rels[2]},
		}
		if !reflect.DeepEqual(params, want) {
			t.Errorf("params %v, want %v", params, want)
		}
		if !strings.HasSuffix(q, "RETURN ents AS ents, [] + rels0 + rels1 + rels2 AS rels") {
			t.Errorf("statement ends %q", q[max(0, len(q)-60):])
		}
		// The same types in another order give the same statement.
		q2, _, _ := writeStatement([]any{entRow}, []any{chunkRow}, []any{rels[3], rels[0], rels[1]})
		if q2 != q {
			t.Errorf("statement depends on the rows' order:\n%s\n---\n%s", q, q2)
		}
	})

	t.Run("type not allowed", func(t *testing.T) {
		if _, _, err := writeStatement(nil, nil, []any{relRow(0, "NOT A TYPE")}); err == nil {
			t.Error("a relationship type outside the allow-list was put into a statement")
		}
	})
}

// TestBatchWriteVariants writes batches that leave out parts of the batch
// write (no entities, no relationships, nothing but deletes) and one whose
// relationship types come out of name order, and reads the graph back.
func TestBatchWriteVariants(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{StoreText: true})
	tenant := newTenant(t, drv)
	var bt batcher

	apply(t, s, bt.batch(upsert(tenant, "plain", 1, ts(0), nil, nil)))
	g := dump(t, drv, tenant)
	if g.Chunks["plain"] == nil || len(g.Entities) != 0 || len(g.Mentions) != 0 {
		t.Fatalf("chunk without entities: got\n%s", g)
	}

	ents := []event.Entity{
		ent("person:ann", "Person", "Ann", nil),
		ent("org:hub", "Organization", "Hub", map[string]any{"size": int64(3)}),
		ent("place:oslo", "Place", "Oslo", nil),
	}
	apply(t, s, bt.batch(
		upsert(tenant, "c1", 1, ts(1), ents, []event.Relation{
			rel("person:ann", "WORKS_AT", "org:hub", map[string]any{"title": "CTO"}),
			rel("person:ann", "LIVES_IN", "place:oslo", nil),
			rel("org:hub", "LOCATED_IN", "place:oslo", nil),
		}),
		upsert(tenant, "c2", 1, ts(2), ents[:2], []event.Relation{
			rel("person:ann", "FOUNDED", "org:hub", map[string]any{"year": int64(2020)}),
		}),
	))
	g = dump(t, drv, tenant)
	wantMentions := []string{"c1->org:hub", "c1->person:ann", "c1->place:oslo", "c2->org:hub", "c2->person:ann"}
	if !reflect.DeepEqual(g.Mentions, wantMentions) {
		t.Errorf("mentions %v, want %v", g.Mentions, wantMentions)
	}
	wantRels := map[string]map[string]any{
		"person:ann-WORKS_AT->org:hub":    {"title": "CTO", "sources": []string{"c1"}},
		"person:ann-LIVES_IN->place:oslo": {"sources": []string{"c1"}},
		"org:hub-LOCATED_IN->place:oslo":  {"sources": []string{"c1"}},
		"person:ann-FOUNDED->org:hub":     {"year": int64(2020), "sources": []string{"c2"}},
	}
	for k, want := range wantRels {
		got := g.Relations[k]
		if got == nil {
			t.Errorf("relationship %s missing; graph:\n%s", k, g)
			continue
		}
		for pk, pv := range want {
			if !reflect.DeepEqual(got[pk], pv) {
				t.Errorf("relationship %s: %s = %v, want %v", k, pk, got[pk], pv)
			}
		}
	}
	if len(g.Relations) != len(wantRels) {
		t.Errorf("%d relationships, want %d; graph:\n%s", len(g.Relations), len(wantRels), g)
	}
	if e := g.Entities["org:hub"]; e.Props["size"] != int64(3) || !slices.Contains(e.Labels, "Organization") {
		t.Errorf("entity org:hub: %v", e)
	}

	// Nothing but a delete: no batch write at all.
	apply(t, s, bt.batch(deleteEv(tenant, "plain", 2)))
	g = dump(t, drv, tenant)
	if g.Chunks["plain"] != nil || g.Tombstones["plain"] != 2 || len(g.Chunks) != 2 {
		t.Errorf("after deleting plain: got\n%s", g)
	}
}

// TestWriteSlices: a batch written as many small statements (two chunks and
// five rows each) ends in the same graph as one statement, including the
// rows the fast paths leave to the general ones (whose indexes come back
// from every slice) and relationships whose entities an earlier slice wrote.
func TestWriteSlices(t *testing.T) {
	t.Parallel()
	whole, drv := testSink(t, Config{StoreText: true})
	sliced, _ := testSink(t, Config{StoreText: true})
	sliced.slice = writeSlice{chunks: 2, rows: 5}
	types := []string{"WORKS_AT", "LOCATED_IN", "FOUNDED"}
	batches := func(tenant string) [][]event.Event {
		var first, second []event.Event
		for i := range 6 {
			var ents []event.Entity
			var rels []event.Relation
			for j := range 3 {
				id := fmt.Sprintf("e%d", (i+j)%5)
				ents = append(ents, ent(id, "Organization", "Org "+id, map[string]any{"k1": fmt.Sprint(i)}))
			}
			for j := range 2 {
				rels = append(rels, rel(ents[j].ID, types[(i+j)%3], ents[j+1].ID, map[string]any{"r1": int64(i)}))
			}
			first = append(first, upsert(tenant, fmt.Sprintf("c%d", i), 1, ts(1), ents, rels))
			// Later and naming other keys than the stored ones: the
			// general paths merge these.
			later := []event.Entity{ent(ents[0].ID, "Organization", "Org", map[string]any{"k2": int64(i)}),
				ent(fmt.Sprintf("new%d", i), "Place", "Place", nil)}
			second = append(second, upsert(tenant, fmt.Sprintf("d%d", i), 1, ts(2), later,
				[]event.Relation{rel(rels[0].From, rels[0].Type, rels[0].To, map[string]any{"r2": "x"}),
					rel(later[0].ID, "LOCATED_IN", later[1].ID, nil)}))
		}
		return [][]event.Event{first, second}
	}
	var gs []graph
	for _, s := range []*Sink{whole, sliced} {
		tenant := newTenant(t, drv)
		var bt batcher
		for _, evs := range batches(tenant) {
			apply(t, s, bt.batch(evs...))
		}
		g := dump(t, drv, tenant)
		rewriteTenant(g, tenant, "x")
		gs = append(gs, g)
	}
	if !reflect.DeepEqual(gs[0], gs[1]) {
		t.Fatalf("written in slices:\n%s\nin one statement:\n%s", gs[1], gs[0])
	}
	g := gs[1]
	if len(g.Chunks) != 12 || len(g.Entities) != 11 || len(g.Mentions) != 30 {
		t.Fatalf("%d chunks, %d entities, %d mentions, want 12, 11, 30:\n%s", len(g.Chunks), len(g.Entities), len(g.Mentions), g)
	}
	for _, id := range []string{"e0", "e1", "e2", "e3", "e4"} {
		if e := g.Entities[id]; e.Props["k1"] == nil || e.Props["k2"] == nil {
			t.Errorf("%s should hold k1 from the first batch and k2 from the second (general path): %v", id, e.Props)
		}
	}
	for i := range 6 {
		k := fmt.Sprintf("e%d-%s->e%d", i%5, types[i%3], (i+1)%5)
		if r := g.Relations[k]; r["r1"] == nil || r["r2"] != "x" {
			t.Errorf("relationship %s should hold r1 from the first batch and r2 from the second (general path): %v", k, r)
		}
	}
}
