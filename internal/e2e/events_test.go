package e2e

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Hand-written events for the scenario tests: small, readable, each field
// chosen by the test.

type ent struct {
	ID, Type, Name string
	Props          map[string]any
}

type rel struct {
	From, Type, To string
	Props          map[string]any
}

// upsert is the record of an upsert of tenant/id at version with text,
// entities and relations; its vector is derived from the text.
func upsert(tenant, id string, version int64, text string, ents []ent, rels []rel) *kgo.Record {
	ev := map[string]any{
		"op": "upsert", "id": id, "tenant": tenant, "doc_id": "doc-" + id, "text": text,
		"vector":   vectorOf(tenant + "/" + id + "/" + text),
		"metadata": map[string]any{"source": "e2e", "version_seen": version, "score": 0.5, "tags": []any{"a", "b"}},
		"version":  version,
		"ts":       "2026-01-08T12:00:00Z",
	}
	es := []any{}
	for _, e := range ents {
		m := map[string]any{"id": e.ID, "type": e.Type, "name": e.Name}
		if len(e.Props) > 0 {
			m["props"] = e.Props
		}
		es = append(es, m)
	}
	ev["entities"] = es
	rs := []any{}
	for _, r := range rels {
		m := map[string]any{"from": r.From, "type": r.Type, "to": r.To}
		if len(r.Props) > 0 {
			m["props"] = r.Props
		}
		rs = append(rs, m)
	}
	ev["relations"] = rs
	return record(tenant, id, ev)
}

// deleteOp is the record of an op:"delete" of tenant/id at version.
func deleteOp(tenant, id string, version int64) *kgo.Record {
	return record(tenant, id, map[string]any{"op": "delete", "id": id, "tenant": tenant, "version": version})
}

// tombstone is a record with key tenant/id and a null value.
func tombstone(tenant, id string) *kgo.Record {
	return &kgo.Record{Key: []byte(tenant + "/" + id)}
}

func record(tenant, id string, ev map[string]any) *kgo.Record {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Key: []byte(tenant + "/" + id), Value: b}
}

// vectorOf returns a unit vector of dims elements determined by seed,
// printed with 6 decimals as producers do.
func vectorOf(seed string) []float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		v[i] = r.NormFloat64()
		norm += v[i] * v[i]
	}
	for i := range v {
		v[i] = math.Round(v[i]/math.Sqrt(norm)*1e6) / 1e6
	}
	return v
}

// toPartition sets the partition of recs (for produceManual).
func toPartition(p int32, recs ...*kgo.Record) []*kgo.Record {
	for _, r := range recs {
		r.Partition = p
	}
	return recs
}
