package e2e

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeletesWithdrawOnlyWhatTheChunkAsserted: a tombstone or op:"delete"
// removes the chunk from both stores together with the entities and
// relationships only it asserted, and nothing else; re-writing a chunk with
// fewer entities withdraws the dropped ones the same way; an entity two
// chunks mention survives the deletion of one. A second tenant holds the
// same chunk ids and entities throughout and must not change.
func TestDeletesWithdrawOnlyWhatTheChunkAsserted(t *testing.T) {
	e := newEnv(t, envOptions{partitions: 3})
	collection := e.collectionName("del")
	group := e.name("del")
	w := e.startWorker(workerConfig{name: "del", group: group, collection: collection})
	tenant, control := e.tenants[0], e.tenants[1]

	alice := ent{ID: "person:alice", Type: "Person", Name: "Alice", Props: map[string]any{"role": "CEO", "since": 2019}}
	bob := ent{ID: "person:bob", Type: "Person", Name: "Bob"}
	acme := ent{ID: "org:acme", Type: "Organization", Name: "Acme", Props: map[string]any{"employees": 120, "public": true}}
	globex := ent{ID: "org:globex", Type: "Organization", Name: "Globex Ünited"}
	chunks := func(tn string) []*kgo.Record {
		return []*kgo.Record{
			upsert(tn, "A", 1, "Alice runs Acme.", []ent{alice, acme},
				[]rel{{From: alice.ID, Type: "WORKS_AT", To: acme.ID, Props: map[string]any{"title": "CEO"}}}),
			upsert(tn, "B", 1, "Bob works at Globex.", []ent{bob, globex},
				[]rel{{From: bob.ID, Type: "WORKS_AT", To: globex.ID}}),
			upsert(tn, "C", 1, "Alice, of Acme, knows Bob.", []ent{alice, acme, bob},
				[]rel{{From: alice.ID, Type: "WORKS_AT", To: acme.ID, Props: map[string]any{"title": "CEO"}},
					{From: alice.ID, Type: "KNOWS", To: bob.ID, Props: map[string]any{"since": 2001.5}}}),
			upsert(tn, "D", 1, "Acme partners with Globex.", []ent{acme, globex},
				[]rel{{From: acme.ID, Type: "PARTNERS_WITH", To: globex.ID}}),
		}
	}
	var all []*kgo.Record
	step := func(name string, recs []*kgo.Record, expect func(w *want)) {
		t.Helper()
		all = append(all, e.produce(recs)...)
		e.waitCommitted(group, commitWait, w)
		want := foldWant(t, all)
		expect(want)
		e.mustMatch(collection, want)
		if t.Failed() {
			t.Fatalf("after %s: the stores do not hold the expected state", name)
		}
	}
	has := func(w *want, kind, key string, exp bool) {
		t.Helper()
		var ok bool
		switch kind {
		case "chunk":
			_, ok = w.chunks[key]
		case "entity":
			_, ok = w.entities[key]
		case "rel":
			_, ok = w.rels[key]
		}
		if ok != exp {
			t.Fatalf("scenario: %s %s present = %v, want %v", kind, key, ok, exp)
		}
	}
	relOf := func(from, typ, to string) string { return relKey(tenant, from, typ, to) }

	step("writing four chunks in two tenants", append(chunks(tenant), chunks(control)...), func(w *want) {
		has(w, "entity", tenant+"/"+bob.ID, true)
		has(w, "rel", relOf(alice.ID, "WORKS_AT", acme.ID), true)
	})
	step("op:delete of A", []*kgo.Record{deleteOp(tenant, "A", 2)}, func(w *want) {
		has(w, "chunk", tenant+"/A", false)
		has(w, "entity", tenant+"/"+alice.ID, true) // C mentions her
		has(w, "rel", relOf(alice.ID, "WORKS_AT", acme.ID), true)
		if src := w.rels[relOf(alice.ID, "WORKS_AT", acme.ID)]["sources"].([]any); len(src) != 1 || src[0] != "C" {
			t.Fatalf("scenario: sources %v, want [C]", src)
		}
	})
	step("tombstone of B", []*kgo.Record{tombstone(tenant, "B")}, func(w *want) {
		has(w, "chunk", tenant+"/B", false)
		has(w, "entity", tenant+"/"+bob.ID, true)    // C mentions him
		has(w, "entity", tenant+"/"+globex.ID, true) // D mentions it
		has(w, "rel", relOf(bob.ID, "WORKS_AT", globex.ID), false)
	})
	step("re-writing C with Alice alone", []*kgo.Record{upsert(tenant, "C", 2, "Alice.", []ent{alice}, nil)}, func(w *want) {
		has(w, "entity", tenant+"/"+bob.ID, false) // nobody mentions him now
		has(w, "entity", tenant+"/"+acme.ID, true) // D still does
		has(w, "rel", relOf(alice.ID, "KNOWS", bob.ID), false)
		has(w, "rel", relOf(alice.ID, "WORKS_AT", acme.ID), false)
	})
	// One produce, so the consumer most likely folds these in one batch: a
	// new chunk sharing Globex, then D's deletion; then C's at a version
	// below the stored one, which changes nothing.
	step("a new chunk E and deletes in one go", []*kgo.Record{
		upsert(tenant, "E", 1, "Globex grows.", []ent{globex}, nil),
		tombstone(tenant, "D"),
		deleteOp(tenant, "C", 1),
	}, func(w *want) {
		has(w, "chunk", tenant+"/C", true)
		has(w, "entity", tenant+"/"+acme.ID, false)
		has(w, "entity", tenant+"/"+globex.ID, true) // E mentions it
		has(w, "rel", relOf(acme.ID, "PARTNERS_WITH", globex.ID), false)
		has(w, "chunk", control+"/D", true)
	})
	step("deleting every chunk of the tenant", []*kgo.Record{deleteOp(tenant, "C", 3), tombstone(tenant, "E")}, func(w *want) {
		for k := range w.entities {
			if strings.HasPrefix(k, tenant+"/") {
				t.Fatalf("scenario: entity %s left", k)
			}
		}
	})
}
