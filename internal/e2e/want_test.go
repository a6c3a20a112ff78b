package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
)

// want is the state a stream must end in, folded from the produced records
// by DESIGN.md §4's rule without ragstream's code: the event JSON is read
// with encoding/json, and every expected store value is derived from the
// record's bytes and coordinates.
type want struct {
	// chunks maps "tenant/id" to the record whose content is stored.
	chunks map[string]*wantChunk
	// deleted maps "tenant/id" of deleted keys to the version the deletion
	// marker remembers.
	deleted map[string]int64
	// entities maps "tenant/entity-id" to what a live chunk says of it.
	entities map[string]map[string]any
	// rels maps "tenant/from -[TYPE]-> to" to its props and, under
	// "sources", the sorted ids of the live chunks asserting it.
	rels map[string]map[string]any
}

type wantChunk struct {
	rec     *kgo.Record
	ev      map[string]any // the decoded JSON value, numbers as json.Number
	version int64
}

// keyOf returns the chunk key of a record: its Kafka key, or the body's
// tenant/id for an unkeyed record.
func keyOf(r *kgo.Record, ev map[string]any) string {
	if len(r.Key) > 0 {
		return string(r.Key)
	}
	return fmt.Sprint(ev["tenant"]) + "/" + fmt.Sprint(ev["id"])
}

func decodeJSON(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func versionOf(ev map[string]any) int64 {
	n, ok := ev["version"].(json.Number)
	if !ok {
		return 0
	}
	v, err := n.Int64()
	if err != nil {
		panic(fmt.Sprintf("version %q: %v", n, err))
	}
	return v
}

// foldWant folds recs (produced, so with partitions and offsets) in
// partition and offset order: every key's records are in one partition.
func foldWant(t testing.TB, recs []*kgo.Record) *want {
	t.Helper()
	sorted := slices.Clone(recs)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	type keyState struct {
		known, live bool
		version     int64
		chunk       *wantChunk
	}
	keys := map[string]*keyState{}
	for _, r := range sorted {
		var ev map[string]any
		if r.Value != nil {
			var err error
			if ev, err = decodeJSON(r.Value); err != nil {
				t.Fatalf("want: record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
		}
		k := keyOf(r, ev)
		st := keys[k]
		if st == nil {
			st = &keyState{}
			keys[k] = st
		}
		v := versionOf(ev)
		switch {
		case r.Value == nil: // tombstone: always, at the stored version
			st.known, st.live = true, false
		case st.known && v < st.version: // stale
		case ev["op"] == "delete":
			st.known, st.live, st.version = true, false, v
		default:
			st.known, st.live, st.version = true, true, v
			st.chunk = &wantChunk{rec: r, ev: ev, version: v}
		}
	}
	w := &want{chunks: map[string]*wantChunk{}, deleted: map[string]int64{},
		entities: map[string]map[string]any{}, rels: map[string]map[string]any{}}
	for k, st := range keys {
		if st.live {
			w.chunks[k] = st.chunk
		} else {
			w.deleted[k] = st.version
		}
	}
	for _, c := range w.chunks {
		tenant := c.ev["tenant"].(string)
		for _, e := range list(c.ev["entities"]) {
			em := e.(map[string]any)
			w.entities[tenant+"/"+em["id"].(string)] = em
		}
		for _, x := range list(c.ev["relations"]) {
			rm := x.(map[string]any)
			rk := relKey(tenant, rm["from"].(string), rm["type"].(string), rm["to"].(string))
			cur := w.rels[rk]
			if cur == nil {
				cur = map[string]any{"props": typed(rm["props"]), "sources": []any{}}
				w.rels[rk] = cur
			}
			cur["sources"] = append(cur["sources"].([]any), c.ev["id"])
		}
	}
	for _, r := range w.rels {
		sortAny(r["sources"].([]any))
	}
	return w
}

// crossCheck holds want to internal/sample's own fold of the same stream:
// the same live keys, the same counts.
func (w *want) crossCheck(t testing.TB, recs []sample.Record) sample.State {
	t.Helper()
	st, err := sample.Fold(dims, recs)
	if err != nil {
		t.Fatalf("sample.Fold: %v", err)
	}
	var got, exp []string
	for k := range w.chunks {
		got = append(got, k)
	}
	for k := range st.Chunks {
		exp = append(exp, k)
	}
	sort.Strings(got)
	sort.Strings(exp)
	if !slices.Equal(got, exp) {
		t.Fatalf("the test's fold and sample.Fold disagree on the live keys: %d vs %d", len(got), len(exp))
	}
	c := st.Counts()
	if c.Entities != len(w.entities) || c.Relationships != len(w.rels) {
		t.Fatalf("the test's fold and sample.Fold disagree: %d entities, %d relationships vs %+v",
			len(w.entities), len(w.rels), c)
	}
	return *st
}

func relKey(tenant, from, typ, to string) string {
	return tenant + "/" + from + " -[" + typ + "]-> " + to
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func sortAny(l []any) {
	sort.Slice(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
}

// typed converts decoded JSON into the kinds the stores keep: an integer
// literal is an int64, any other number a float64. A nil or absent object
// becomes an empty map.
func typed(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			panic(fmt.Sprintf("number %q: %v", s, err))
		}
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = typed(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = typed(e)
		}
		return out
	case nil:
		return map[string]any{}
	}
	return v
}

// numbersAsFloat turns every number into a float64: Neo4j keeps metadata as
// a JSON string, whose numbers compare by value.
func numbersAsFloat(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = numbersAsFloat(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = numbersAsFloat(e)
		}
		return out
	}
	return v
}

// correlationID is the id a record's lineage carries: its correlation-id
// header, or topic/partition/offset.
func correlationID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "correlation-id" && len(h.Value) > 0 {
			return string(h.Value)
		}
	}
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}

func entityIDs(ev map[string]any) []any {
	ids := []any{}
	for _, e := range list(ev["entities"]) {
		ids = append(ids, e.(map[string]any)["id"])
	}
	return ids
}

// payload is the Qdrant payload the chunk must have, ingested_at aside.
func (c *wantChunk) payload() map[string]any {
	ev, r := c.ev, c.rec
	p := map[string]any{
		"tenant":           ev["tenant"],
		"id":               ev["id"],
		"version":          c.version,
		"entities":         entityIDs(ev),
		"correlation_id":   correlationID(r),
		"source_topic":     r.Topic,
		"source_partition": int64(r.Partition),
		"source_offset":    r.Offset,
	}
	if d, ok := ev["doc_id"]; ok && d != "" {
		p["doc_id"] = d
	}
	if s, ok := ev["text"]; ok {
		p["text"] = s
	}
	if m, ok := ev["metadata"].(map[string]any); ok && len(m) > 0 {
		p["metadata"] = typed(m)
	}
	return p
}

// node is the Chunk node's properties the chunk must have, ingested_at and
// the internal assertions aside; metadata is compared as decoded JSON.
func (c *wantChunk) node() map[string]any {
	p := c.payload()
	if m, ok := p["metadata"]; ok {
		p["metadata"] = numbersAsFloat(m)
	}
	if ts, ok := c.ev["ts"].(string); ok {
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			panic(fmt.Sprintf("ts %q: %v", ts, err))
		}
		p["ts"] = at.UTC().Format(time.RFC3339Nano)
	}
	return p
}

// vector is the stored vector the chunk must have: the input normalised, as
// Qdrant stores vectors of a Cosine collection.
func (c *wantChunk) vector() []float32 {
	raw := list(c.ev["vector"])
	v := make([]float32, len(raw))
	var norm float64
	for i, x := range raw {
		f, err := x.(json.Number).Float64()
		if err != nil {
			panic(err)
		}
		v[i] = float32(f)
		norm += float64(v[i]) * float64(v[i])
	}
	inv := float32(1 / math.Sqrt(norm))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// entity is the Entity node the entity must be: labels, name, type, props.
func wantEntity(em map[string]any) map[string]any {
	labels := []any{"Entity", em["type"]}
	sortAny(labels)
	return map[string]any{"labels": labels, "name": em["name"], "type": em["type"], "props": typed(em["props"])}
}
