package neo4j

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// points is a follower that keeps, like Qdrant, one point per key, and logs
// its calls.
type points struct {
	mu    sync.Mutex
	state map[pipeline.Key]int64 // key -> version
	calls [][]pipeline.Write
}

func (p *points) follow(_ context.Context, ws []pipeline.Write) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		p.state = map[pipeline.Key]int64{}
	}
	p.calls = append(p.calls, append([]pipeline.Write(nil), ws...))
	for _, w := range ws {
		if w.Action == pipeline.ActionDelete {
			delete(p.state, w.Key)
		} else {
			p.state[w.Key] = w.Version
		}
	}
	return nil
}

// TestEarlyFollowUndoneWhenNeo4jRefuses: the upserts of new chunks go to
// the follower while Neo4j's statements run (earlyFollow); when Neo4j then
// refuses the batch for a record's content, the follower is put back where
// it was before the batch — the points are deleted — and Neo4j holds none
// of it. The update of a stored chunk is written to the follower only after
// Neo4j's statements, so the follower never sees it when Neo4j refuses. A
// probe (pipeline.Probing) has its follower called after the statements
// only, so Neo4j's own refusal of the record shows.
func TestEarlyFollowUndoneWhenNeo4jRefuses(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	label := "Refused" + tenant
	run := func(q string) {
		t.Helper()
		runCypher(t, drv, q)
	}
	name := "first_" + tenant
	t.Cleanup(func() {
		run("DROP CONSTRAINT " + name + " IF EXISTS")
		run("MATCH (n:" + label + ") DETACH DELETE n")
	})
	run("CREATE CONSTRAINT " + name + " FOR (n:" + label + ") REQUIRE n.serial IS UNIQUE")
	run("CALL db.awaitIndexes(300)")
	run("CREATE (:" + label + " {serial: 'taken'})")

	var bt batcher
	refused := func(id string, v int64) event.Event {
		return upsert(tenant, id, v, ts(0), []event.Entity{ent("e-"+id, label, "E", map[string]any{"serial": "taken"})}, nil)
	}

	t.Run("new chunks", func(t *testing.T) {
		var p points
		b := bt.batch(upsert(tenant, "fine", 1, ts(0), nil, nil), refused("bad", 1))
		err := s.Apply(context.Background(), b, p.follow)
		if pipeline.ClassOf(err) != pipeline.ClassPermanent {
			t.Fatalf("Apply: %v (class %s), want Neo4j's permanent refusal", err, pipeline.ClassOf(err))
		}
		if len(p.calls) != 2 || len(p.calls[0]) != 2 || p.calls[0][0].Action != pipeline.ActionUpsert ||
			len(p.calls[1]) != 2 || p.calls[1][0].Action != pipeline.ActionDelete {
			t.Errorf("follower calls %+v, want the two upserts, then their deletes", p.calls)
		}
		if len(p.state) != 0 {
			t.Errorf("the follower holds %v after Neo4j refused the batch, want nothing", p.state)
		}
		if g := dump(t, drv, tenant); len(g.Chunks) != 0 {
			t.Errorf("Neo4j holds chunks of a refused batch:\n%s", g)
		}
		for i, r := range b.Records {
			if r.Outcome != pipeline.OutcomePending {
				t.Errorf("record %d outcome %s after a failed Apply, want pending", i, r.Outcome)
			}
		}
	})

	t.Run("a probe", func(t *testing.T) {
		called := false
		probe := errors.New("probe")
		err := s.Apply(pipeline.WithProbe(context.Background()), bt.batch(refused("probed", 1)),
			func(context.Context, []pipeline.Write) error { called = true; return probe })
		if pipeline.ClassOf(err) != pipeline.ClassPermanent || errors.Is(err, probe) || called {
			t.Errorf("probe: Apply returned %v with the follower called %v, want Neo4j's permanent refusal and no follower call", err, called)
		}
	})

	t.Run("an update", func(t *testing.T) {
		apply(t, s, bt.batch(upsert(tenant, "stored", 1, ts(0), nil, nil)))
		p := points{state: map[pipeline.Key]int64{{Tenant: tenant, ID: "stored"}: 1}}
		b := bt.batch(upsert(tenant, "stored", 2, ts(1), nil, nil), refused("bad2", 1))
		err := s.Apply(context.Background(), b, p.follow)
		if pipeline.ClassOf(err) != pipeline.ClassPermanent {
			t.Fatalf("Apply: %v (class %s), want Neo4j's permanent refusal", err, pipeline.ClassOf(err))
		}
		for _, c := range p.calls {
			for _, w := range c {
				if w.Key.ID == "stored" {
					t.Errorf("the follower got %+v of a stored chunk in a batch Neo4j refused", w)
				}
			}
		}
		if want := map[pipeline.Key]int64{{Tenant: tenant, ID: "stored"}: 1}; !maps.Equal(p.state, want) {
			t.Errorf("the follower holds %v after Neo4j refused the batch, want %v: as before it", p.state, want)
		}
	})
}

// TestEarlyFollow: a batch's new chunks reach the follower once, in one
// call, and its update of a stored chunk in another, and both land in
// Neo4j; a follower refusal of the new chunks ends the transaction (nothing
// is written and the error comes back as the follower gave it); content
// Neo4j cannot hold fails before the follower is asked anything.
func TestEarlyFollow(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	var bt batcher

	apply(t, s, bt.batch(upsert(tenant, "stored", 1, ts(0), nil, nil)))
	var p points
	b := bt.batch(upsert(tenant, "a", 1, ts(0), []event.Entity{ent("x", "Person", "X", nil)}, nil),
		upsert(tenant, "stored", 2, ts(1), nil, nil), upsert(tenant, "b", 3, ts(1), nil, nil))
	if err := s.Apply(context.Background(), b, p.follow); err != nil {
		t.Fatal(err)
	}
	ids := func(ws []pipeline.Write) (out []string) {
		for _, w := range ws {
			out = append(out, w.Key.ID)
		}
		return out
	}
	if len(p.calls) != 2 || !slices.Equal(ids(p.calls[0]), []string{"a", "b"}) || !slices.Equal(ids(p.calls[1]), []string{"stored"}) {
		t.Errorf("follower calls %+v, want the new chunks a and b, then the stored one", p.calls)
	}
	if g := dump(t, drv, tenant); len(g.Chunks) != 3 || g.Chunks["stored"]["version"] != int64(2) {
		t.Errorf("Neo4j holds %d chunks, want 3 with stored at version 2:\n%s", len(g.Chunks), g)
	}

	boom := pipeline.Permanent(errors.New("qdrant: Wrong input: Vector dimension error"))
	c := bt.batch(upsert(tenant, "c", 1, ts(2), nil, nil))
	err := s.Apply(context.Background(), c, func(context.Context, []pipeline.Write) error { return boom })
	if err != boom {
		t.Fatalf("Apply returned %v, want the follower's error itself", err)
	}
	if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: 'c'}) RETURN count(c)`, map[string]any{"t": tenant}); n != 0 {
		t.Errorf("chunk c written although the follower refused it")
	}

	// Metadata Neo4j cannot store fails the plan, before the follower is
	// asked anything.
	bad := upsert(tenant, "d", 1, ts(3), nil, nil)
	bad.Metadata = map[string]any{"k": struct{}{}}
	called := false
	err = s.Apply(context.Background(), bt.batch(bad), func(context.Context, []pipeline.Write) error { called = true; return nil })
	var re *pipeline.RecordError
	if !errors.As(err, &re) || called {
		t.Errorf("Apply returned %v with the follower called %v, want Neo4j's *RecordError and no follower call", err, called)
	}
}
