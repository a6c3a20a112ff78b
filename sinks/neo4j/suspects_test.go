package neo4j

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

func TestParseViolation(t *testing.T) {
	tests := []struct {
		msg   string
		want  violation
		wantO bool
	}{
		{"Node(46570) already exists with label `Refused` and property `serial` = 'taken'",
			violation{name: "Refused", props: map[string]string{"serial": "'taken'"}}, true},
		{"Node(1) already exists with label `L` and properties `a` = 1, `b` = 'x, `y`'",
			violation{name: "L", props: map[string]string{"a": "1", "b": "'x, `y`'"}}, true},
		{"Node(1) already exists with label `L` and properties `b` = 'it''s', `a` = true",
			violation{name: "L", props: map[string]string{"b": "'it''s'", "a": "true"}}, true},
		{"Relationship(152750) already exists with type `LIVES_IN` and property `serial` = 7",
			violation{relationship: true, name: "LIVES_IN", props: map[string]string{"serial": "7"}}, true},
		{"Node(1) with label `L` must have the property `p`", violation{}, false},
		{"Node(1) already exists with label `L` and property serial = 1", violation{}, false},
	}
	for _, tc := range tests {
		got, ok := parseViolation(tc.msg)
		if ok != tc.wantO {
			t.Errorf("parseViolation(%q) ok = %v, want %v (%+v)", tc.msg, ok, tc.wantO, got)
			continue
		}
		if ok && (got.relationship != tc.want.relationship || got.name != tc.want.name || !maps.Equal(got.props, tc.want.props)) {
			t.Errorf("parseViolation(%q) = %+v, want %+v", tc.msg, got, tc.want)
		}
	}
}

// TestConstraintViolationNamesSuspects: a batch that violates a constraint
// of the user's (a uniqueness constraint on a property of a label, a
// composite one, one on a relationship property) is refused permanently,
// naming as suspects exactly the records that write the value the database
// found twice — not those writing another value, or the same value under
// another label. The suspect alone is refused too, with the database's
// words; the batch without it is written.
func TestConstraintViolationNamesSuspects(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	label, relType := "Refused"+tenant, "REFUSED_"+strings.ToUpper(tenant)
	run := func(q string) {
		t.Helper()
		runCypher(t, drv, q)
	}
	names := []string{"s1_" + tenant, "s2_" + tenant, "s3_" + tenant}
	t.Cleanup(func() {
		for _, n := range names {
			run("DROP CONSTRAINT " + n + " IF EXISTS")
		}
		run("MATCH (n:" + label + ") DETACH DELETE n")
		run("MATCH (n:Blocker" + tenant + ") DETACH DELETE n")
	})
	run("CREATE CONSTRAINT " + names[0] + " FOR (n:" + label + ") REQUIRE n.serial IS UNIQUE")
	run("CREATE CONSTRAINT " + names[1] + " FOR (n:" + label + ") REQUIRE (n.a, n.b) IS UNIQUE")
	run("CREATE CONSTRAINT " + names[2] + " FOR ()-[r:" + relType + "]-() REQUIRE r.serial IS UNIQUE")
	run("CALL db.awaitIndexes(300)")
	run("CREATE (:" + label + " {serial: 'taken', a: 1, b: 'x'})")
	run("CREATE (:Blocker" + tenant + ")-[:" + relType + " {serial: 7}]->(:Blocker" + tenant + ")")

	plain := func(id string) event.Event {
		return upsert(tenant, id, 1, ts(0), []event.Entity{ent("p-"+id, "Person", "P", nil)}, nil)
	}
	withEnt := func(id, typ string, props map[string]any) event.Event {
		return upsert(tenant, id, 1, ts(0), []event.Entity{ent("e-"+id, typ, "E", props)}, nil)
	}
	withRel := func(id string, serial int64) event.Event {
		return upsert(tenant, id, 1, ts(0), []event.Entity{ent("f-"+id, "Person", "F", nil), ent("t-"+id, "Person", "T", nil)},
			[]event.Relation{rel("f-"+id, relType, "t-"+id, map[string]any{"serial": serial})})
	}
	tests := []struct {
		name    string
		batch   []event.Event
		suspect int // index of the one suspect
	}{
		{"unique property", []event.Event{
			plain("a0"),
			withEnt("a1", label, map[string]any{"serial": "free"}),
			withEnt("a2", label, map[string]any{"serial": "taken"}),
			withEnt("a3", "Person", map[string]any{"serial": "taken"}),
			plain("a4"),
		}, 2},
		{"composite key", []event.Event{
			withEnt("b0", label, map[string]any{"a": int64(1), "b": "y"}),
			plain("b1"),
			withEnt("b2", label, map[string]any{"a": int64(1), "b": "x"}),
		}, 2},
		{"relationship property", []event.Event{
			withRel("c0", 8),
			withRel("c1", 7),
			plain("c2"),
		}, 1},
	}
	var bt batcher
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bt.batch(tc.batch...)
			ok := func(context.Context, []pipeline.Write) error { return nil }
			err := s.Apply(context.Background(), b, ok)
			if c := pipeline.ClassOf(err); err == nil || c != pipeline.ClassPermanent {
				t.Fatalf("Apply of a batch violating the constraint returned %v (class %s), want a permanent error", err, pipeline.ClassOf(err))
			}
			var se *pipeline.SuspectError
			if !errors.As(err, &se) {
				t.Fatalf("the refusal %v names no suspects", err)
			}
			want := b.Records[tc.suspect]
			if len(se.Records) != 1 || se.Records[0] != want {
				var got []string
				for _, r := range se.Records {
					got = append(got, r.Event.ID)
				}
				t.Fatalf("suspects %v, want only %s", got, want.Event.ID)
			}
			if !strings.Contains(err.Error(), "ConstraintValidationFailed") {
				t.Errorf("the refusal %q does not carry the database's code", err)
			}

			alone := &pipeline.Batch{Topic: b.Topic, Partition: b.Partition, Records: []*pipeline.Record{want}}
			if err := s.Apply(context.Background(), alone, ok); pipeline.ClassOf(err) != pipeline.ClassPermanent || !strings.Contains(err.Error(), "ConstraintValidationFailed") {
				t.Errorf("the suspect alone: Apply returned %v, want the constraint violation (permanent)", err)
			}
			rest := &pipeline.Batch{Topic: b.Topic, Partition: b.Partition,
				Records: slices.DeleteFunc(slices.Clone(b.Records), func(r *pipeline.Record) bool { return r == want })}
			if err := s.Apply(context.Background(), rest, ok); err != nil {
				t.Errorf("the batch without the suspect: %v", err)
			}
			for _, r := range rest.Records {
				if n := count(t, drv, `MATCH (c:Chunk {tenant: $t, id: $id}) RETURN count(c)`, map[string]any{"t": tenant, "id": r.Event.ID}); n != 1 {
					t.Errorf("chunk %s: %d stored, want 1", r.Event.ID, n)
				}
			}
		})
	}
}
