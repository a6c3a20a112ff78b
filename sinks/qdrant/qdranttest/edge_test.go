package qdranttest_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qdrant/go-client/qdrant"

	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

var updateEdge = flag.Bool("update-edge", false, "regenerate testdata/edge_golden.json with qdrant-edge-py (pip install qdrant-edge-py)")

// edgeGolden is testdata/edge_golden.json: a seeded random data set with
// filters, queries and scroll pages, and the answers of Qdrant's own
// engine (qdrant-edge-py) to them.
type edgeGolden struct {
	Engine string `json:"engine"`
	Dim    uint64 `json:"dim"`
	Points []struct {
		ID      any            `json:"id"`
		Vector  []float32      `json:"vector"`
		Payload map[string]any `json:"payload"`
	} `json:"points"`
	Filters []struct {
		Filter map[string]any `json:"filter"`
		IDs    []any          `json:"ids"`
	} `json:"filters"`
	Queries []struct {
		Distance  string         `json:"distance"`
		Vector    []float32      `json:"vector"`
		Limit     uint64         `json:"limit"`
		Offset    uint64         `json:"offset"`
		Filter    map[string]any `json:"filter"`
		Threshold *float32       `json:"score_threshold"`
		IDs       []any          `json:"ids"`
		Scores    []float32      `json:"scores"`
	} `json:"queries"`
	Scrolls []struct {
		Limit  uint32         `json:"limit"`
		Offset any            `json:"offset"`
		Filter map[string]any `json:"filter"`
		IDs    []any          `json:"ids"`
		Next   any            `json:"next"`
	} `json:"scrolls"`
}

// TestEdgeDifferential replays Qdrant's engine's answers against the
// stand-in: filter semantics, scores and ordering of all four metrics with
// thresholds and offsets, and scroll paging.
func TestEdgeDifferential(t *testing.T) {
	golden := filepath.Join("testdata", "edge_golden.json")
	if *updateEdge {
		var out bytes.Buffer
		cmd := exec.Command("python3", filepath.Join("testdata", "edge_diff.py"))
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("edge_diff.py (needs pip install qdrant-edge-py): %v", err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var g edgeGolden
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&g); err != nil {
		t.Fatal(err)
	}

	s := qdranttest.Start(t)
	host, port := s.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, PoolSize: 1, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cx := ctx(t)
	var pts []*qdrant.PointStruct
	for _, p := range g.Points {
		pl := map[string]*qdrant.Value{}
		for k, v := range p.Payload {
			pl[k] = edgeValue(v)
		}
		pts = append(pts, &qdrant.PointStruct{Id: edgeID(p.ID), Vectors: qdrant.NewVectorsDense(p.Vector), Payload: pl})
	}
	for _, d := range []string{"Cosine", "Dot", "Euclid", "Manhattan"} {
		if err := c.CreateCollection(cx, &qdrant.CreateCollection{CollectionName: d,
			VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: g.Dim, Distance: qdrant.Distance(qdrant.Distance_value[d])})}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Upsert(cx, &qdrant.UpsertPoints{CollectionName: d, Wait: qdrant.PtrOf(true), Points: pts}); err != nil {
			t.Fatal(err)
		}
	}

	for i, f := range g.Filters {
		got, err := c.Scroll(cx, &qdrant.ScrollPoints{CollectionName: "Dot", Filter: edgeFilter(f.Filter), Limit: qdrant.PtrOf(uint32(1000)), WithPayload: qdrant.NewWithPayload(false)})
		if err != nil {
			t.Fatalf("filter %d: %v", i, err)
		}
		if want := edgeIDs(f.IDs); !reflect.DeepEqual(retrieved(got), want) {
			t.Errorf("filter %d %s:\n got  %v\n want %v", i, jsonOf(f.Filter), retrieved(got), want)
		}
	}
	for i, q := range g.Queries {
		req := &qdrant.QueryPoints{CollectionName: q.Distance, Query: qdrant.NewQueryDense(q.Vector), Limit: qdrant.PtrOf(q.Limit),
			Offset: qdrant.PtrOf(q.Offset), ScoreThreshold: q.Threshold}
		if q.Filter != nil {
			req.Filter = edgeFilter(q.Filter)
		}
		got, err := c.Query(cx, req)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		var ids []string
		for j, p := range got {
			ids = append(ids, pointString(p.GetId()))
			if j < len(q.Scores) && math.Abs(float64(p.GetScore()-q.Scores[j])) > 1e-5 {
				t.Errorf("query %d (%s) rank %d: score %v, want %v", i, q.Distance, j, p.GetScore(), q.Scores[j])
			}
		}
		if want := edgeIDs(q.IDs); !reflect.DeepEqual(nonNil(ids), want) {
			t.Errorf("query %d (%s, limit %d offset %d threshold %v):\n got  %v\n want %v", i, q.Distance, q.Limit, q.Offset, q.Threshold, ids, want)
		}
	}
	for i, sc := range g.Scrolls {
		req := &qdrant.ScrollPoints{CollectionName: "Dot", Limit: qdrant.PtrOf(sc.Limit)}
		if sc.Offset != nil {
			req.Offset = edgeID(sc.Offset)
		}
		if sc.Filter != nil {
			req.Filter = edgeFilter(sc.Filter)
		}
		got, next, err := c.ScrollAndOffset(cx, req)
		if err != nil {
			t.Fatalf("scroll %d: %v", i, err)
		}
		wantNext := "<nil>"
		if sc.Next != nil {
			wantNext = pointString(edgeID(sc.Next))
		}
		gotNext := "<nil>"
		if next != nil {
			gotNext = pointString(next)
		}
		if !reflect.DeepEqual(retrieved(got), edgeIDs(sc.IDs)) || gotNext != wantNext {
			t.Errorf("scroll %d (offset %v limit %d): got %v next %s, want %v next %s", i, sc.Offset, sc.Limit, retrieved(got), gotNext, edgeIDs(sc.IDs), wantNext)
		}
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func pointString(p *qdrant.PointId) string {
	if u, ok := p.GetPointIdOptions().(*qdrant.PointId_Uuid); ok {
		return u.Uuid
	}
	return fmt.Sprint(p.GetNum())
}

func retrieved(ps []*qdrant.RetrievedPoint) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, pointString(p.GetId()))
	}
	return out
}

func edgeIDs(ids []any) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, pointString(edgeID(id)))
	}
	return out
}

func edgeID(v any) *qdrant.PointId {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			panic(err)
		}
		return qdrant.NewIDNum(uint64(n))
	case string:
		return qdrant.NewIDUUID(x)
	}
	panic(fmt.Sprintf("id %T", v))
}

// edgeValue converts a JSON value keeping Qdrant's number kinds: a literal
// with a fraction or exponent is a double, anything else an integer.
func edgeValue(v any) *qdrant.Value {
	switch x := v.(type) {
	case nil:
		return qdrant.NewValueNull()
	case bool:
		return qdrant.NewValueBool(x)
	case string:
		return qdrant.NewValueString(x)
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			f, _ := x.Float64()
			return qdrant.NewValueDouble(f)
		}
		n, _ := x.Int64()
		return qdrant.NewValueInt(n)
	case []any:
		l := make([]*qdrant.Value, len(x))
		for i, e := range x {
			l[i] = edgeValue(e)
		}
		return qdrant.NewValueFromList(l...)
	case map[string]any:
		m := map[string]*qdrant.Value{}
		for k, e := range x {
			m[k] = edgeValue(e)
		}
		return qdrant.NewValueStruct(&qdrant.Struct{Fields: m})
	}
	panic(fmt.Sprintf("value %T", v))
}

func num(v any) float64 { f, _ := v.(json.Number).Float64(); return f }

// edgeFilter converts Qdrant's REST filter JSON (the subset edge_diff.py
// writes) to the gRPC Filter.
func edgeFilter(f map[string]any) *qdrant.Filter {
	out := &qdrant.Filter{}
	conds := func(key string) []*qdrant.Condition {
		var cs []*qdrant.Condition
		list, _ := f[key].([]any)
		for _, c := range list {
			cs = append(cs, edgeCondition(c.(map[string]any)))
		}
		return cs
	}
	out.Must, out.Should, out.MustNot = conds("must"), conds("should"), conds("must_not")
	if ms, ok := f["min_should"].(map[string]any); ok {
		var cs []*qdrant.Condition
		for _, c := range ms["conditions"].([]any) {
			cs = append(cs, edgeCondition(c.(map[string]any)))
		}
		n, _ := ms["min_count"].(json.Number).Int64()
		out.MinShould = &qdrant.MinShould{Conditions: cs, MinCount: uint64(n)}
	}
	return out
}

func edgeCondition(c map[string]any) *qdrant.Condition {
	if n, ok := c["nested"].(map[string]any); ok {
		return qdrant.NewNestedFilter(n["key"].(string), edgeFilter(n["filter"].(map[string]any)))
	}
	if e, ok := c["is_empty"].(map[string]any); ok {
		return qdrant.NewIsEmpty(e["key"].(string))
	}
	if e, ok := c["is_null"].(map[string]any); ok {
		return qdrant.NewIsNull(e["key"].(string))
	}
	if ids, ok := c["has_id"].([]any); ok {
		var ps []*qdrant.PointId
		for _, id := range ids {
			ps = append(ps, edgeID(id))
		}
		return qdrant.NewHasID(ps...)
	}
	key, ok := c["key"].(string)
	if !ok {
		return qdrant.NewFilterAsCondition(edgeFilter(c))
	}
	if m, ok := c["match"].(map[string]any); ok {
		if v, ok := m["value"]; ok {
			if s, isStr := v.(string); isStr {
				return qdrant.NewMatchKeyword(key, s)
			}
			n, _ := v.(json.Number).Int64()
			return qdrant.NewMatchInt(key, n)
		}
		list, except := m["except"].([]any)
		if !except {
			list = m["any"].([]any)
		}
		var strs []string
		var ints []int64
		for _, v := range list {
			if s, isStr := v.(string); isStr {
				strs = append(strs, s)
			} else {
				n, _ := v.(json.Number).Int64()
				ints = append(ints, n)
			}
		}
		switch {
		case except && strs != nil:
			return qdrant.NewMatchExcept(key, strs...)
		case except:
			return qdrant.NewMatchExceptInts(key, ints...)
		case strs != nil:
			return qdrant.NewMatchKeywords(key, strs...)
		}
		return qdrant.NewMatchInts(key, ints...)
	}
	if r, ok := c["range"].(map[string]any); ok {
		rg := &qdrant.Range{}
		for op, v := range r {
			f := num(v)
			switch op {
			case "gt":
				rg.Gt = &f
			case "gte":
				rg.Gte = &f
			case "lt":
				rg.Lt = &f
			case "lte":
				rg.Lte = &f
			}
		}
		return qdrant.NewRange(key, rg)
	}
	vc := &qdrant.ValuesCount{}
	for op, v := range c["values_count"].(map[string]any) {
		n, _ := v.(json.Number).Int64()
		u := uint64(n)
		switch op {
		case "gt":
			vc.Gt = &u
		case "gte":
			vc.Gte = &u
		case "lt":
			vc.Lt = &u
		case "lte":
			vc.Lte = &u
		}
	}
	return qdrant.NewValuesCount(key, vc)
}
