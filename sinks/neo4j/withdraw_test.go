package neo4j

import (
	"reflect"
	"slices"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

// TestDeleteWithdrawsExactly deletes a chunk by op:delete and by tombstone:
// the chunk goes, with the entities and relationships only it asserted; what
// another chunk asserts stays, recomputed from that chunk's assertions alone,
// and the graph equals the one built from the surviving chunk alone.
func TestDeleteWithdrawsExactly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		del  func(tenant string) event.Event
	}{
		{"op_delete", func(tenant string) event.Event { return deleteEv(tenant, "a", 9) }},
		{"tombstone", func(tenant string) event.Event { return tombstone(tenant, "a") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, drv := testSink(t, Config{StoreText: true})
			tenant, alone := newTenant(t, drv), newTenant(t, drv)
			chunkA := func(tenant string) event.Event {
				return upsert(tenant, "a", 1, ts(2), []event.Entity{
					ent("x", "Person", "X", map[string]any{"p": "from a"}),
					ent("y", "Place", "Y from a", map[string]any{"shared": "a", "only_a": true}),
					ent("z", "Organization", "Z", nil),
				}, []event.Relation{
					rel("x", "LIVES_IN", "y", nil),
					rel("z", "LOCATED_IN", "y", map[string]any{"k": "a"}),
				})
			}
			chunkB := func(tenant string) event.Event {
				return upsert(tenant, "b", 1, ts(1), []event.Entity{
					ent("y", "Place", "Y from b", map[string]any{"shared": "b"}),
					ent("w", "Person", "W", nil),
					ent("z", "Organization", "Z", map[string]any{"size": int64(3)}),
				}, []event.Relation{
					rel("w", "LIVES_IN", "y", nil),
					rel("z", "LOCATED_IN", "y", map[string]any{"k": "b"}),
				})
			}
			var bt batcher
			apply(t, s, bt.batch(chunkA(tenant), chunkB(tenant)))
			g := dump(t, drv, tenant)
			if y := g.Entities["y"].Props; y["shared"] != "a" || y["name"] != "Y from a" || y["only_a"] != true {
				t.Fatalf("before the delete, y = %v: want a's values (a ranks higher)", y)
			}
			apply(t, s, bt.batch(tc.del(tenant)))

			var bt2 batcher
			apply(t, s, bt2.batch(chunkB(alone)))
			got, want := dump(t, drv, tenant), dump(t, drv, alone)
			if _, ok := got.Tombstones["a"]; !ok {
				t.Errorf("no deletion marker for a")
			}
			got.Tombstones = want.Tombstones
			rewriteTenant(want, alone, tenant)
			withoutLineage(got, want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("after deleting a, the graph is not b's alone\ngot:\n%s\nwant:\n%s", got, want)
			}
			if n := count(t, drv, `MATCH (c:Chunk {tenant: $t}) RETURN count(c)`, map[string]any{"t": tenant}); n != 1 {
				t.Errorf("%d chunks counted, want 1 (the marker is no chunk)", n)
			}
		})
	}
}

// rewriteTenant changes the tenant property recorded in g from one name to
// another, so graphs of two tenants compare.
func rewriteTenant(g graph, from, to string) {
	for _, c := range g.Chunks {
		if c["tenant"] == from {
			c["tenant"] = to
		}
	}
	for _, e := range g.Entities {
		if e.Props["tenant"] == from {
			e.Props["tenant"] = to
		}
	}
}

// withoutLineage drops the chunk properties that name the source record,
// which differ between graphs built from different records.
func withoutLineage(gs ...graph) {
	for _, g := range gs {
		for _, c := range g.Chunks {
			delete(c, "correlation_id")
			delete(c, "source_offset")
		}
	}
}

// TestRewriteWithdrawsDropped re-writes chunks with fewer entities and
// relations, or different props: the dropped assertions are withdrawn the
// same way a delete withdraws them.
func TestRewriteWithdrawsDropped(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant, fresh := newTenant(t, drv), newTenant(t, drv)
	first := func(tenant string) []event.Event {
		return []event.Event{
			upsert(tenant, "a", 1, ts(1), []event.Entity{
				ent("x", "Person", "X", map[string]any{"p": int64(1), "q": "drop me"}),
				ent("y", "Place", "Y", nil),
				ent("z", "Organization", "Z", nil),
			}, []event.Relation{rel("x", "LIVES_IN", "y", map[string]any{"r": "a"}), rel("x", "WORKS_AT", "z", nil)}),
			upsert(tenant, "b", 1, ts(2), []event.Entity{ent("z", "Organization", "Z", nil), ent("v", "Person", "V", nil)},
				[]event.Relation{rel("v", "WORKS_AT", "z", nil)}),
		}
	}
	second := func(tenant string) []event.Event {
		return []event.Event{
			// Fewer entities, x's props change (q dropped), ts earlier than before.
			upsert(tenant, "a", 2, ts(0), []event.Entity{ent("x", "Person", "X2", map[string]any{"p": int64(2)})}, nil),
		}
	}
	var bt batcher
	apply(t, s, bt.batch(first(tenant)...))
	apply(t, s, bt.batch(second(tenant)...))

	// The same final chunks written once, into an empty tenant.
	var bt2 batcher
	final := append(second(fresh), first(fresh)[1])
	apply(t, s, bt2.batch(final...))
	got, want := dump(t, drv, tenant), dump(t, drv, fresh)
	rewriteTenant(want, fresh, tenant)
	withoutLineage(got, want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("re-written graph differs from writing the final chunks once\ngot:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := got.Entities["y"]; ok {
		t.Errorf("y survived although no chunk mentions it")
	}
	if _, ok := got.Entities["z"]; !ok {
		t.Errorf("z was deleted although b mentions it")
	}
}

// TestSharedRelationKeepsOtherSource: a relationship two chunks assert
// survives the deletion of one, with the other as its only source.
func TestSharedRelationKeepsOtherSource(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	ents := []event.Entity{ent("x", "Person", "X", nil), ent("y", "Organization", "Y", nil)}
	var bt batcher
	apply(t, s, bt.batch(
		upsert(tenant, "a", 1, ts(2), ents, []event.Relation{rel("x", "WORKS_AT", "y", map[string]any{"since": int64(2020), "title": "CEO"})}),
		upsert(tenant, "b", 1, ts(1), ents, []event.Relation{rel("x", "WORKS_AT", "y", map[string]any{"since": int64(2019)})}),
	))
	r := dump(t, drv, tenant).Relations["x-WORKS_AT->y"]
	if !reflect.DeepEqual(r["sources"], []string{"a", "b"}) || r["since"] != int64(2020) || r["title"] != "CEO" {
		t.Fatalf("relationship %v: want sources [a b], since 2020 and title from a", r)
	}
	apply(t, s, bt.batch(deleteEv(tenant, "a", 2)))
	g := dump(t, drv, tenant)
	r = g.Relations["x-WORKS_AT->y"]
	if !reflect.DeepEqual(r["sources"], []string{"b"}) || r["since"] != int64(2019) {
		t.Fatalf("after deleting a: relationship %v, want sources [b] and since 2019", r)
	}
	if _, ok := r["title"]; ok {
		t.Errorf("title, asserted only by a, survived: %v", r)
	}
	if len(g.Entities) != 2 {
		t.Errorf("entities %v, want x and y (b mentions both)", g.Entities)
	}
	apply(t, s, bt.batch(tombstone(tenant, "b")))
	if g := dump(t, drv, tenant); len(g.Entities)+len(g.Relations)+len(g.Chunks) != 0 {
		t.Fatalf("after deleting both chunks something is left:\n%s", g)
	}
}

// TestMergeRuleIsOrderIndependent applies conflicting assertions in every
// order, in one batch or in several: the entity and relationship end the
// same, and after one assertion is withdrawn they equal the other alone.
func TestMergeRuleIsOrderIndependent(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	chunks := func(tenant string) []event.Event {
		return []event.Event{
			upsert(tenant, "a", 1, ts(3), []event.Entity{
				ent("e", "Organization", "E Corp", map[string]any{"k1": "a", "k2": "a"}), ent("f", "Place", "F", nil),
			}, []event.Relation{rel("e", "LOCATED_IN", "f", map[string]any{"r1": "a"})}),
			upsert(tenant, "b", 1, ts(1), []event.Entity{
				ent("e", "Person", "E", map[string]any{"k1": "b", "k3": int64(3)}), ent("f", "Place", "F", nil),
			}, []event.Relation{rel("e", "LOCATED_IN", "f", map[string]any{"r1": "b", "r2": "b"})}),
			// Same ts as a: the chunk id breaks the tie ("c" > "a").
			upsert(tenant, "c", 1, ts(3), []event.Entity{
				ent("e", "Organization", "E Corporation", map[string]any{"k2": "c"}),
			}, nil),
			// Ranks below a and names only keys a set: after a alone it
			// loses every key (the merge's "lost" fast path).
			upsert(tenant, "d", 1, ts(2), []event.Entity{
				ent("e", "Person", "E D", map[string]any{"k1": "d"}), ent("f", "Place", "F", nil),
			}, []event.Relation{rel("e", "LOCATED_IN", "f", map[string]any{"r1": "d"})}),
		}
	}
	orders := map[string][][]int{
		"one_batch":   {{0, 1, 2, 3}},
		"abcd":        {{0}, {1}, {2}, {3}},
		"dcba":        {{3}, {2}, {1}, {0}},
		"bacd":        {{1}, {0}, {2}, {3}},
		"ad_bc":       {{0}, {3}, {1}, {2}},
		"ad_then_cb":  {{0, 3}, {2, 1}},
		"b_then_cad":  {{1}, {2, 0, 3}},
		"ac_then_d_b": {{0, 2}, {3}, {1}},
		"reverse_in":  {{3, 2, 1, 0}},
	}
	var states []graph
	var names []string
	for name, order := range orders {
		tenant := newTenant(t, drv)
		evs := chunks(tenant)
		var bt batcher
		for _, idx := range order {
			var b []event.Event
			for _, i := range idx {
				b = append(b, evs[i])
			}
			apply(t, s, bt.batch(b...))
		}
		g := dump(t, drv, tenant)
		g.Chunks = nil
		rewriteTenant(g, tenant, "x")
		for _, e := range g.Entities {
			e.Props["tenant"] = "x"
		}
		states = append(states, g)
		names = append(names, name)
	}
	for i := range states {
		if !reflect.DeepEqual(states[i], states[0]) {
			t.Fatalf("order %s ends in\n%s\norder %s in\n%s", names[i], states[i], names[0], states[0])
		}
	}
	e := states[0].Entities["e"]
	wantProps := map[string]any{"k1": "a", "k2": "c", "k3": int64(3), "name": "E Corporation", "type": "Organization"}
	for k, v := range wantProps {
		if e.Props[k] != v {
			t.Errorf("e.%s = %v, want %v (highest rank per key; name and type from c)", k, e.Props[k], v)
		}
	}
	if !reflect.DeepEqual(e.Labels, []string{"Entity", "Organization"}) {
		t.Errorf("e labels %v, want [Entity Organization]", e.Labels)
	}
	if r := states[0].Relations["e-LOCATED_IN->f"]; r["r1"] != "a" || r["r2"] != "b" {
		t.Errorf("relationship %v, want r1 from a, r2 from b", r)
	}

	// Withdrawing a, c and d leaves b's assertion alone, type label included.
	tenant, alone := newTenant(t, drv), newTenant(t, drv)
	var bt batcher
	apply(t, s, bt.batch(chunks(tenant)...))
	apply(t, s, bt.batch(deleteEv(tenant, "a", 1), deleteEv(tenant, "c", 1), deleteEv(tenant, "d", 1)))
	var bt2 batcher
	apply(t, s, bt2.batch(chunks(alone)[1]))
	got, want := dump(t, drv, tenant), dump(t, drv, alone)
	got.Chunks, want.Chunks, got.Tombstones, want.Tombstones = nil, nil, nil, nil
	rewriteTenant(want, alone, tenant)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after withdrawing a, c and d\ngot:\n%s\nwant (b alone):\n%s", got, want)
	}
	if l := got.Entities["e"].Labels; !slices.Equal(l, []string{"Entity", "Person"}) {
		t.Errorf("e labels %v after the Organization assertions went, want [Entity Person]", l)
	}
}
