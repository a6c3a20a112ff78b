package neo4j

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

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

// TestFollowFirstUndoneWhenNeo4jRefuses: a batch of new chunks goes to the
// follower before Neo4j's transaction (followFirst); when Neo4j then
// refuses the batch for a record's content, the follower is put back where
// it was before the batch — the points are deleted — and Neo4j holds none
// of it. A batch that updates a stored chunk is written to the follower
// only after Neo4j's statements, so the follower never sees a batch Neo4j
// refuses.
func TestFollowFirstUndoneWhenNeo4jRefuses(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	label := "Refused" + tenant
	run := func(q string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := neo4j.ExecuteQuery(ctx, drv, q, nil, neo4j.EagerResultTransformer); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
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

	t.Run("an update", func(t *testing.T) {
		var p points
		apply(t, s, bt.batch(upsert(tenant, "stored", 1, ts(0), nil, nil)))
		b := bt.batch(upsert(tenant, "stored", 2, ts(1), nil, nil), refused("bad2", 1))
		err := s.Apply(context.Background(), b, p.follow)
		if pipeline.ClassOf(err) != pipeline.ClassPermanent {
			t.Fatalf("Apply: %v (class %s), want Neo4j's permanent refusal", err, pipeline.ClassOf(err))
		}
		if len(p.calls) != 0 {
			t.Errorf("follower called %d times for a batch with an update that Neo4j refused, want 0", len(p.calls))
		}
	})
}

// TestFollowFirst: a batch of new chunks reaches the follower once, before
// the transaction, and lands in Neo4j; a follower refusal costs no
// transaction (nothing is written and the error comes back as the follower
// gave it); a probe (pipeline.Probing) has its follower called after the
// statements, so Neo4j's own refusal of the record shows.
func TestFollowFirst(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	var bt batcher

	var p points
	b := bt.batch(upsert(tenant, "a", 1, ts(0), []event.Entity{ent("x", "Person", "X", nil)}, nil),
		upsert(tenant, "b", 3, ts(1), nil, nil))
	if err := s.Apply(context.Background(), b, p.follow); err != nil {
		t.Fatal(err)
	}
	if len(p.calls) != 1 || len(p.calls[0]) != 2 {
		t.Errorf("follower calls %+v, want one with both writes", p.calls)
	}
	if g := dump(t, drv, tenant); len(g.Chunks) != 2 {
		t.Errorf("Neo4j holds %d chunks, want 2:\n%s", len(g.Chunks), g)
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

	// A probe: the follower refuses on purpose after the statements; the
	// metadata Neo4j cannot store fails the plan first.
	bad := upsert(tenant, "d", 1, ts(3), nil, nil)
	bad.Metadata = map[string]any{"k": struct{}{}}
	d := bt.batch(bad)
	called := false
	probe := errors.New("probe")
	err = s.Apply(pipeline.WithProbe(context.Background()), d, func(context.Context, []pipeline.Write) error { called = true; return probe })
	var re *pipeline.RecordError
	if !errors.As(err, &re) || called {
		t.Errorf("probe: Apply returned %v with the follower called %v, want Neo4j's *RecordError and no follower call", err, called)
	}
	called = false
	err = s.Apply(context.Background(), d, func(context.Context, []pipeline.Write) error { called = true; return nil })
	if !errors.As(err, &re) || !called {
		t.Errorf("not a probe: Apply returned %v with the follower called %v, want the follower asked first, then Neo4j's *RecordError", err, called)
	}
}
