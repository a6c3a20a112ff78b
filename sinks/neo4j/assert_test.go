package neo4j

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

func TestRankOrdersByTimeThenChunk(t *testing.T) {
	t.Parallel()
	// In increasing order.
	ranks := []string{
		rankOf(time.Time{}, "a"),
		rankOf(time.Time{}, "b"),
		rankOf(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), "z"),
		rankOf(time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), "z"),
		rankOf(time.Unix(0, 0), "a"),
		rankOf(time.Unix(0, 1), "a"),
		rankOf(ts(0), "a"),
		rankOf(ts(0), "a#1"),
		rankOf(ts(0), "b"),
		rankOf(ts(0).Add(time.Nanosecond), "a"),
		rankOf(time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), "a"),
	}
	if !sort.StringsAreSorted(ranks) {
		t.Fatalf("ranks out of order: %q", ranks)
	}
	if a, b := rankOf(ts(0), "x"), rankOf(ts(0).In(time.FixedZone("X", 3600)), "x"); a != b {
		t.Errorf("the same instant in two zones ranks differently: %q, %q", a, b)
	}
}

func TestGraphCodecKeepsKinds(t *testing.T) {
	t.Parallel()
	g := &chunkGraph{
		Rank: "r",
		Entities: []entityAssertion{{ID: "e\"1", Type: "T", Name: "Zoë <&>", Props: map[string]any{
			"int": int64(2), "float": 2.0, "big": 1e21, "small": -1.5e-7, "s": "2", "b": true,
			"ints": []any{int64(1), int64(2)}, "floats": []any{1.0, 2.5}, "strs": []any{"a"}, "empty": []any{},
			"max": int64(9223372036854775807),
		}}, {ID: "e2", Type: "T", Name: "n"}},
		Relations: []relationAssertion{{From: "e\"1", Type: "R", To: "e2", Props: map[string]any{"w": 0.5}}},
	}
	s, err := encodeGraph(g)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeGraph(s)
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	if !reflect.DeepEqual(back, g) {
		t.Fatalf("round trip changed the graph\n got %#v\nwant %#v\njson %s", back, g, s)
	}
	again, _ := encodeGraph(back)
	if again != s {
		t.Errorf("encoding is not deterministic:\n%s\n%s", s, again)
	}
	if _, err := encodeGraph(&chunkGraph{Entities: []entityAssertion{{Props: map[string]any{"f": math.Inf(1)}}}}); err == nil {
		t.Error("an infinite prop was encoded")
	}
}

func TestMergeAll(t *testing.T) {
	t.Parallel()
	as := []ranked{
		{rank: "2", name: "two", typ: "B", props: map[string]any{"x": "2", "y": "2"}},
		{rank: "1", name: "one", typ: "A", props: map[string]any{"x": "1", "z": "1"}},
		{rank: "3", name: "three", typ: "C", props: map[string]any{"y": "3"}},
	}
	want := merged{rank: "3", name: "three", typ: "C",
		keys: []string{"x", "y", "z"}, vals: []any{"2", "3", "1"}, ranks: []string{"2", "3", "1"}}
	for _, perm := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		var in []ranked
		for _, i := range perm {
			in = append(in, as[i])
		}
		if got := mergeAll(in); !reflect.DeepEqual(got, want) {
			t.Errorf("order %v: %+v, want %+v", perm, got, want)
		}
	}
	if got := mergeAll(nil); got.rank != "" || len(got.keys) != 0 {
		t.Errorf("merge of nothing: %+v", got)
	}
}

// TestPlanSkipsUnchangedAssertions: re-writing a chunk with the same graph
// content touches no entity or relationship; covering assertions merge
// without a withdrawal; anything else withdraws.
func TestPlanSkipsUnchangedAssertions(t *testing.T) {
	t.Parallel()
	x := ent("x", "Person", "X", map[string]any{"a": int64(1)})
	y := ent("y", "Place", "Y", nil)
	old := upsert("t", "c", 1, ts(1), []event.Entity{x, y}, []event.Relation{rel("x", "LIVES_IN", "y", map[string]any{"p": "1"})})
	prior := graphOf(&old)
	for _, tc := range []struct {
		name                  string
		ev                    event.Event
		in, out, relIn, relOt []string
		mentions, unmentions  int
	}{
		{"identical", old, nil, nil, nil, nil, 0, 0},
		{"identical_new_version", func() event.Event { e := old; e.Version = 2; return e }(), nil, nil, nil, nil, 0, 0},
		{"later_same_keys_covers", func() event.Event { e := old; e.TS = ts(2); return e }(),
			[]string{"x", "y"}, nil, []string{"x-LIVES_IN->y"}, nil, 0, 0},
		{"earlier_withdraws", func() event.Event { e := old; e.TS = ts(0); return e }(),
			[]string{"x", "y"}, []string{"x", "y"}, []string{"x-LIVES_IN->y"}, []string{"x-LIVES_IN->y"}, 0, 0},
		{"dropped_key_withdraws", upsert("t", "c", 2, ts(1), []event.Entity{ent("x", "Person", "X", nil), y},
			[]event.Relation{rel("x", "LIVES_IN", "y", map[string]any{"p": "1"})}),
			[]string{"x"}, []string{"x"}, nil, nil, 0, 0},
		{"dropped_entity_and_relation", upsert("t", "c", 2, ts(1), []event.Entity{x, ent("z", "Place", "Z", nil)}, nil),
			[]string{"z"}, []string{"y"}, nil, []string{"x-LIVES_IN->y"}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			w := pipeline.Write{Key: pipeline.Key{Tenant: "t", ID: "c"}, Action: pipeline.ActionUpsert,
				Record: &pipeline.Record{Event: ev}, Version: ev.Version, Prior: pipeline.Stored{State: pipeline.Present, Version: 1}}
			p, err := newPlan([]pipeline.Write{w}, map[pipeline.Key]*chunkGraph{w.Key: prior}, chunkMeta{now: ts(9)})
			if err != nil {
				t.Fatal(err)
			}
			ids := func(m map[entKey][]ranked) []string {
				var out []string
				for k := range m {
					out = append(out, k.ID)
				}
				slices.Sort(out)
				return out
			}
			outs := func(m map[entKey]*withdrawal) []string {
				var out []string
				for k := range m {
					out = append(out, k.ID)
				}
				slices.Sort(out)
				return out
			}
			rels := func(keys []relKey) []string {
				var out []string
				for _, k := range keys {
					out = append(out, k.From+"-"+k.Type+"->"+k.To)
				}
				return out
			}
			if got := ids(p.entIn); !slices.Equal(got, tc.in) {
				t.Errorf("incoming entities %v, want %v", got, tc.in)
			}
			if got := outs(p.entOut); !slices.Equal(got, tc.out) {
				t.Errorf("withdrawn entities %v, want %v", got, tc.out)
			}
			if got := rels(sortedRelKeys(p.relIn)); !slices.Equal(got, tc.relIn) {
				t.Errorf("incoming relations %v, want %v", got, tc.relIn)
			}
			if got := rels(sortedRelKeys(p.relOut)); !slices.Equal(got, tc.relOt) {
				t.Errorf("withdrawn relations %v, want %v", got, tc.relOt)
			}
			if m := p.upserts[0].(map[string]any)["mentions"].([]string); len(m) != tc.mentions {
				t.Errorf("new mentions %v, want %d", m, tc.mentions)
			}
			if len(p.unmentions) != tc.unmentions {
				t.Errorf("withdrawn mentions %v, want %d", p.unmentions, tc.unmentions)
			}
		})
	}
}

func TestWriteStringIsJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\n\r\t", "\x00\x01\x1f\x7f", "Zoë 東京 🚀", "<&>", "\u2028", "bad\xffutf8"} {
		var b bytes.Buffer
		writeString(&b, s)
		var back string
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Errorf("%q encodes as %s, not JSON: %v", s, b.String(), err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}
