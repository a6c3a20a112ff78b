package pipeline

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline/event"
)

// step is one record in a fold test: "u5" upsert v5, "d7" op:delete v7,
// "t" tombstone, "u" upsert without version; key defaults to "a".
type step struct {
	key string
	op  string
}

func rec(off int64, st step) *Record {
	key := st.key
	if key == "" {
		key = "a"
	}
	r := &Record{Src: &kgo.Record{Topic: "events", Offset: off}}
	r.Event.Tenant, r.Event.ID = "acme", key
	switch {
	case st.op == "t":
		r.Event.Op, r.Event.Tombstone = event.OpDelete, true
	case strings.HasPrefix(st.op, "u"):
		r.Event.Op = event.OpUpsert
	case strings.HasPrefix(st.op, "d"):
		r.Event.Op = event.OpDelete
	}
	if len(st.op) > 1 {
		fmt.Sscan(st.op[1:], &r.Event.Version)
		r.Event.HasVersion = true
	}
	return r
}

func TestFold(t *testing.T) {
	tests := []struct {
		name     string
		stored   map[string]Stored
		steps    []step
		want     []string // "key action@version from offset"
		outcomes string   // one letter per record: a applied, s skipped
	}{
		{"single upsert on absent", nil, []step{{"", "u3"}}, []string{"a upsert@3 from 0"}, "a"},
		{"last of increasing wins", nil, []step{{"", "u1"}, {"", "u2"}, {"", "u3"}}, []string{"a upsert@3 from 2"}, "aaa"},
		{"equal version re-applies", map[string]Stored{"a": {Present, 3}}, []step{{"", "u3"}}, []string{"a upsert@3 from 0"}, "a"},
		{"lower than stored skips", map[string]Stored{"a": {Present, 5}}, []step{{"", "u4"}}, nil, "s"},
		{"lower within batch skips", nil, []step{{"", "u5"}, {"", "u4"}}, []string{"a upsert@5 from 0"}, "as"},
		{"no version counts as 0", map[string]Stored{"a": {Present, 1}}, []step{{"", "u"}}, nil, "s"},
		{"no version on absent applies", nil, []step{{"", "u"}, {"", "u"}}, []string{"a upsert@0 from 1"}, "aa"},
		{"delete marker blocks older upsert", map[string]Stored{"a": {Deleted, 7}}, []step{{"", "u6"}}, nil, "s"},
		{"delete marker lets newer upsert in", map[string]Stored{"a": {Deleted, 7}}, []step{{"", "u8"}}, []string{"a upsert@8 from 0"}, "a"},
		{"op delete applies at its version", map[string]Stored{"a": {Present, 2}}, []step{{"", "d4"}}, []string{"a delete@4 from 0"}, "a"},
		{"stale op delete skips", map[string]Stored{"a": {Present, 5}}, []step{{"", "d4"}}, nil, "s"},
		{"tombstone deletes at stored version", map[string]Stored{"a": {Present, 9}}, []step{{"", "t"}}, []string{"a delete@9 from 0"}, "a"},
		{"tombstone on absent key", nil, []step{{"", "t"}}, []string{"a delete@0 from 0"}, "a"},
		{"tombstone keeps running version", nil, []step{{"", "u5"}, {"", "t"}, {"", "u4"}}, []string{"a delete@5 from 1"}, "aas"},
		{"upsert after tombstone at equal version", nil, []step{{"", "u5"}, {"", "t"}, {"", "u5"}}, []string{"a upsert@5 from 2"}, "aaa"},
		{"stale then tombstone vs newer store", map[string]Stored{"a": {Present, 10}}, []step{{"", "u3"}, {"", "t"}, {"", "u4"}}, []string{"a delete@10 from 1"}, "sas"},
		{"keys fold independently, first-seen order",
			map[string]Stored{"b": {Present, 4}},
			[]step{{"b", "u3"}, {"a", "u1"}, {"b", "u6"}, {"a", "t"}},
			[]string{"b upsert@6 from 2", "a delete@1 from 3"}, "saaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recs []*Record
			for i, st := range tt.steps {
				recs = append(recs, rec(int64(i), st))
			}
			writes := Fold(recs, func(k Key) Stored { return tt.stored[k.ID] })
			var got []string
			for _, w := range writes {
				got = append(got, fmt.Sprintf("%s %s@%d from %d", w.Key.ID, w.Action, w.Version, w.Record.Src.Offset))
				if w.Prior != tt.stored[w.Key.ID] {
					t.Errorf("key %s: Prior %+v, want %+v", w.Key.ID, w.Prior, tt.stored[w.Key.ID])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("writes %q, want %q", got, tt.want)
			}
			var outs strings.Builder
			for _, r := range recs {
				outs.WriteByte(map[Outcome]byte{OutcomeApplied: 'a', OutcomeSkippedStale: 's'}[r.Outcome])
			}
			if outs.String() != tt.outcomes {
				t.Errorf("outcomes %q, want %q", outs.String(), tt.outcomes)
			}
		})
	}
}

// TestFoldEqualsSequential checks the fold against applying records one by
// one to a store, for every sequence of a small alphabet: collapsing a batch
// must give the state sequential application gives.
func TestFoldEqualsSequential(t *testing.T) {
	alphabet := []string{"u1", "u2", "d2", "t", "u"}
	initial := []Stored{{Absent, 0}, {Present, 1}, {Present, 2}, {Deleted, 2}}
	var seqs [][]string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			seqs = append(seqs, append([]string(nil), prefix...))
		}
		if len(prefix) == 4 {
			return
		}
		for _, a := range alphabet {
			gen(append(prefix, a))
		}
	}
	gen(nil)
	for _, init := range initial {
		for _, seq := range seqs {
			// Sequential: one Fold per record, feeding the result back.
			state := init
			for i, op := range seq {
				w := Fold([]*Record{rec(int64(i), step{op: op})}, func(Key) Stored { return state })
				if len(w) == 1 {
					state = Stored{Present, w[0].Version}
					if w[0].Action == ActionDelete {
						state.State = Deleted
					}
				}
			}
			var recs []*Record
			for i, op := range seq {
				recs = append(recs, rec(int64(i), step{op: op}))
			}
			got := init
			if w := Fold(recs, func(Key) Stored { return init }); len(w) == 1 {
				got = Stored{Present, w[0].Version}
				if w[0].Action == ActionDelete {
					got.State = Deleted
				}
			}
			if got != state {
				t.Errorf("from %+v, %v: folded %+v, sequential %+v", init, seq, got, state)
			}
		}
	}
}
