package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/sinks/qdrant"
)

// snapshot is everything both stores hold for one test: the points of its
// collection and the graph of its tenants, in a comparable form.
type snapshot struct {
	// points maps "tenant/id" (from the payload) to the point.
	points map[string]point
	graph  graph
	// anomalies are findings that fit no map: a point whose id is not
	// PointID(tenant, id), an edge across tenants.
	anomalies []string
}

type point struct {
	id      string
	payload map[string]any // ingested_at removed
	vector  []float32
	// ingestedAt is the removed ingested_at ("" when absent).
	ingestedAt string
}

// graph is a tenant set's graph. Set-valued lists (a relationship's
// sources, the _pk/_pr bookkeeping pairs) are normalised, since their order
// records arrival order.
type graph struct {
	chunks     map[string]map[string]any // "tenant/id" -> props, ingested_at removed
	entities   map[string]map[string]any // "tenant/id" -> props + "_labels"
	rels       map[string]map[string]any // relKey -> props
	mentions   map[string][]string       // "tenant/chunk" -> sorted entity ids
	tombstones map[string]map[string]any // "tenant/id" -> props
}

// take reads both stores.
func (e *env) take(collection string) snapshot {
	e.t.Helper()
	s := snapshot{points: map[string]point{}}
	e.readPoints(collection, &s)
	s.graph = e.readGraph(&s)
	return s
}

func (e *env) readPoints(collection string, s *snapshot) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeCall)
	defer cancel()
	var offset *qc.PointId
	for {
		pts, next, err := e.qc.ScrollAndOffset(ctx, &qc.ScrollPoints{
			CollectionName: collection,
			Limit:          qc.PtrOf(uint32(1000)),
			Offset:         offset,
			WithPayload:    qc.NewWithPayload(true),
			WithVectors:    qc.NewWithVectors(true),
		})
		if err != nil {
			e.t.Fatalf("scroll %s: %v", collection, err)
		}
		for _, p := range pts {
			pt := toPoint(p.GetId(), p.GetPayload(), p.GetVectors())
			key := fmt.Sprint(pt.payload[qdrant.FieldTenant]) + "/" + fmt.Sprint(pt.payload[qdrant.FieldID])
			if _, dup := s.points[key]; dup {
				s.anomalies = append(s.anomalies, "two points for "+key)
			}
			if want := qdrant.PointID(fmt.Sprint(pt.payload[qdrant.FieldTenant]), fmt.Sprint(pt.payload[qdrant.FieldID])); pt.id != want {
				s.anomalies = append(s.anomalies, fmt.Sprintf("point %s of %s: id is not PointID = %s", pt.id, key, want))
			}
			s.points[key] = pt
		}
		if next == nil {
			return
		}
		offset = next
	}
}

func toPoint(id *qc.PointId, payload map[string]*qc.Value, vecs *qc.VectorsOutput) point {
	pt := point{id: id.GetUuid(), payload: map[string]any{}}
	if pt.id == "" {
		pt.id = fmt.Sprint(id.GetNum())
	}
	for k, v := range payload {
		pt.payload[k] = plain(v)
	}
	if at, ok := pt.payload[qdrant.FieldIngestedAt]; ok {
		pt.ingestedAt = fmt.Sprint(at)
		delete(pt.payload, qdrant.FieldIngestedAt)
	}
	if vo := vecs.GetVector(); vo != nil {
		if d := vo.GetDense(); d != nil {
			pt.vector = d.GetData()
		} else {
			//lint:ignore SA1019 servers before 1.14 answer here
			pt.vector = vo.GetData()
		}
	}
	return pt
}

// plain converts a payload value into Go values that keep its kind.
func plain(v *qc.Value) any {
	switch k := v.GetKind().(type) {
	case *qc.Value_NullValue:
		return nil
	case *qc.Value_BoolValue:
		return k.BoolValue
	case *qc.Value_IntegerValue:
		return k.IntegerValue
	case *qc.Value_DoubleValue:
		return k.DoubleValue
	case *qc.Value_StringValue:
		return k.StringValue
	case *qc.Value_ListValue:
		out := make([]any, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			out[i] = plain(e)
		}
		return out
	case *qc.Value_StructValue:
		out := map[string]any{}
		for f, e := range k.StructValue.GetFields() {
			out[f] = plain(e)
		}
		return out
	}
	return fmt.Sprintf("unknown value kind %T", v.GetKind())
}

// query runs a read query over the test's tenants.
func (e *env) query(cypher string, params map[string]any) []*neo4jdrv.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeCall)
	defer cancel()
	if params == nil {
		params = map[string]any{}
	}
	params["tenants"] = e.tenants
	res, err := neo4jdrv.ExecuteQuery(ctx, e.drv, cypher, params, neo4jdrv.EagerResultTransformer,
		neo4jdrv.ExecuteQueryWithReadersRouting())
	if err != nil {
		e.t.Fatalf("neo4j %s: %v", strings.Join(strings.Fields(cypher), " "), err)
	}
	return res.Records
}

func (e *env) readGraph(s *snapshot) graph {
	e.t.Helper()
	g := graph{chunks: map[string]map[string]any{}, entities: map[string]map[string]any{},
		rels: map[string]map[string]any{}, mentions: map[string][]string{}, tombstones: map[string]map[string]any{}}
	for _, r := range e.query(`MATCH (c:Chunk) WHERE c.tenant IN $tenants RETURN c.tenant, c.id, properties(c), labels(c)`, nil) {
		k := r.Values[0].(string) + "/" + r.Values[1].(string)
		p := normalise(r.Values[2]).(map[string]any)
		if labels := r.Values[3].([]any); len(labels) != 1 {
			s.anomalies = append(s.anomalies, fmt.Sprintf("chunk %s has labels %v", k, labels))
		}
		g.chunks[k] = p
	}
	for _, r := range e.query(`MATCH (n:Entity) WHERE n.tenant IN $tenants RETURN n.tenant, n.id, properties(n), labels(n)`, nil) {
		k := r.Values[0].(string) + "/" + r.Values[1].(string)
		p := normalise(r.Values[2]).(map[string]any)
		labels := r.Values[3].([]any)
		sortAny(labels)
		p["_labels"] = labels
		g.entities[k] = p
	}
	for _, r := range e.query(`MATCH (a:Entity)-[x]->(b) WHERE a.tenant IN $tenants
RETURN a.tenant, a.id, type(x), b.id, b.tenant, labels(b), properties(x)`, nil) {
		k := relKey(r.Values[0].(string), r.Values[1].(string), r.Values[2].(string), fmt.Sprint(r.Values[3]))
		if r.Values[0] != r.Values[4] || !contains(r.Values[5].([]any), "Entity") {
			s.anomalies = append(s.anomalies, fmt.Sprintf("relationship %s ends at a node of tenant %v labelled %v", k, r.Values[4], r.Values[5]))
		}
		if _, dup := g.rels[k]; dup {
			s.anomalies = append(s.anomalies, "two relationships "+k)
		}
		g.rels[k] = normalise(r.Values[6]).(map[string]any)
	}
	for _, r := range e.query(`MATCH (c:Chunk)-[m]->(x) WHERE c.tenant IN $tenants
RETURN c.tenant, c.id, type(m), x.tenant, x.id, labels(x)`, nil) {
		k := r.Values[0].(string) + "/" + r.Values[1].(string)
		if r.Values[2] != "MENTIONS" || r.Values[0] != r.Values[3] || !contains(r.Values[5].([]any), "Entity") {
			s.anomalies = append(s.anomalies, fmt.Sprintf("chunk %s has a %v edge to %v/%v labelled %v", k, r.Values[2], r.Values[3], r.Values[4], r.Values[5]))
		}
		g.mentions[k] = append(g.mentions[k], fmt.Sprint(r.Values[4]))
	}
	for k := range g.mentions {
		sort.Strings(g.mentions[k])
	}
	for _, r := range e.query(`MATCH (n) WHERE n.tenant IN $tenants AND NOT n:Chunk AND NOT n:Entity AND NOT n:ChunkTombstone
RETURN n.tenant, n.id, labels(n)`, nil) {
		s.anomalies = append(s.anomalies, fmt.Sprintf("node %v/%v labelled %v", r.Values[0], r.Values[1], r.Values[2]))
	}
	for _, r := range e.query(`MATCH (n:ChunkTombstone) WHERE n.tenant IN $tenants RETURN n.tenant, n.id, properties(n)`, nil) {
		g.tombstones[r.Values[0].(string)+"/"+r.Values[1].(string)] = normalise(r.Values[2]).(map[string]any)
	}
	return g
}

func contains(l []any, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// normalise makes Neo4j values comparable: times as RFC 3339 strings in
// UTC, a relationship's sources sorted, the _pk/_pr bookkeeping lists as
// one map.
func normalise(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case neo4jdrv.LocalDateTime:
		return time.Time(x).Format("2006-01-02T15:04:05.999999999")
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e)
		}
		if s, ok := out["sources"].([]any); ok {
			sortAny(s)
		}
		if pk, ok := out["_pk"].([]any); ok {
			pr, _ := out["_pr"].([]any)
			m := map[string]any{}
			for i, k := range pk {
				if i < len(pr) {
					m[fmt.Sprint(k)] = pr[i]
				} else {
					m[fmt.Sprint(k)] = "missing rank"
				}
			}
			out["_pk"] = m
			delete(out, "_pr")
		}
		return out
	}
	return v
}

// problems collects differences, capped in what it prints.
type problems struct {
	list []string
}

func (p *problems) add(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

func (p *problems) report(t testing.TB, what string) {
	t.Helper()
	if len(p.list) == 0 {
		return
	}
	sort.Strings(p.list)
	shown := p.list[:min(len(p.list), 25)]
	t.Errorf("%s: %d problems:\n  %s", what, len(p.list), strings.Join(shown, "\n  "))
}

// check compares both stores with w: exactly the live chunks as points and
// Chunk nodes with the input's payload, properties and vector; exactly the
// entities and relationships the live chunks assert, with their properties
// and sources; each chunk's MENTIONS; a deletion marker with the right
// version for each deleted key, and nothing else of the test's tenants.
func (s snapshot) check(w *want) []string {
	var p problems
	p.list = append(p.list, s.anomalies...)
	for k, c := range w.chunks {
		pt, ok := s.points[k]
		if !ok {
			p.add("chunk %s (version %d, offset %d/%d): no Qdrant point", k, c.version, c.rec.Partition, c.rec.Offset)
		} else {
			if d := diff(c.payload(), pt.payload); d != "" {
				p.add("chunk %s: Qdrant payload: %s", k, d)
			}
			if pt.ingestedAt == "" {
				p.add("chunk %s: Qdrant payload has no ingested_at", k)
			}
			if d := vectorDiff(c.vector(), pt.vector); d != "" {
				p.add("chunk %s: Qdrant vector: %s", k, d)
			}
		}
		node, ok := s.graph.chunks[k]
		if !ok {
			p.add("chunk %s (version %d, offset %d/%d): no Chunk node", k, c.version, c.rec.Partition, c.rec.Offset)
		} else {
			got := map[string]any{}
			for pk, pv := range node {
				got[pk] = pv
			}
			if _, ok := got["ingested_at"]; !ok {
				p.add("chunk %s: node has no ingested_at", k)
			}
			delete(got, "ingested_at")
			delete(got, "assertions") // the sink's own bookkeeping
			if m, ok := got["metadata"].(string); ok {
				dm, err := decodeJSON([]byte(m))
				if err != nil {
					p.add("chunk %s: node metadata %q is not JSON: %v", k, m, err)
				} else {
					got["metadata"] = numbersAsFloat(typed(dm))
				}
			}
			if d := diff(c.node(), got); d != "" {
				p.add("chunk %s: Chunk node: %s", k, d)
			}
		}
		exp := []string{}
		for _, id := range entityIDs(c.ev) {
			exp = append(exp, id.(string))
		}
		sort.Strings(exp)
		if got := s.graph.mentions[k]; !reflect.DeepEqual(exp, append([]string{}, got...)) {
			p.add("chunk %s: MENTIONS %v, want %v", k, got, exp)
		}
	}
	for k := range s.points {
		if _, ok := w.chunks[k]; !ok {
			p.add("point %s: not a live chunk (deleted: %v)", k, isDeleted(w, k))
		}
	}
	for k := range s.graph.chunks {
		if _, ok := w.chunks[k]; !ok {
			p.add("Chunk node %s: not a live chunk (deleted: %v)", k, isDeleted(w, k))
		}
	}
	for k := range s.graph.mentions {
		if _, ok := w.chunks[k]; !ok {
			p.add("MENTIONS from %s: not a live chunk", k)
		}
	}
	for k, v := range w.deleted {
		ts, ok := s.graph.tombstones[k]
		switch {
		case !ok:
			p.add("deleted chunk %s: no deletion marker", k)
		case ts["version"] != v:
			p.add("deleted chunk %s: marker remembers version %v, want %d", k, ts["version"], v)
		}
	}
	for k := range s.graph.tombstones {
		if _, ok := w.deleted[k]; !ok {
			p.add("deletion marker %s: not a deleted key", k)
		}
	}
	for k, em := range w.entities {
		n, ok := s.graph.entities[k]
		if !ok {
			p.add("entity %s: no Entity node", k)
			continue
		}
		got := map[string]any{"labels": n["_labels"], "name": n["name"], "type": n["type"], "props": map[string]any{}}
		for pk, pv := range n {
			switch {
			case pk == "tenant" || pk == "id" || pk == "name" || pk == "type" || strings.HasPrefix(pk, "_"):
			default:
				got["props"].(map[string]any)[pk] = pv
			}
		}
		if d := diff(wantEntity(em), got); d != "" {
			p.add("entity %s: %s", k, d)
		}
	}
	for k := range s.graph.entities {
		if _, ok := w.entities[k]; !ok {
			p.add("Entity node %s: no live chunk mentions it", k)
		}
	}
	for k, r := range w.rels {
		x, ok := s.graph.rels[k]
		if !ok {
			p.add("relationship %s: missing", k)
			continue
		}
		got := map[string]any{"props": map[string]any{}, "sources": x["sources"]}
		for pk, pv := range x {
			if pk != "sources" && !strings.HasPrefix(pk, "_") {
				got["props"].(map[string]any)[pk] = pv
			}
		}
		if d := diff(r, got); d != "" {
			p.add("relationship %s: %s", k, d)
		}
	}
	for k := range s.graph.rels {
		if _, ok := w.rels[k]; !ok {
			p.add("relationship %s: no live chunk asserts it", k)
		}
	}
	return p.list
}

func isDeleted(w *want, k string) bool {
	_, ok := w.deleted[k]
	return ok
}

// mustMatch fails the test unless both stores hold exactly w.
func (e *env) mustMatch(collection string, w *want) snapshot {
	e.t.Helper()
	s := e.take(collection)
	p := problems{list: s.check(w)}
	p.report(e.t, "stores against the expected state")
	return s
}

// diff describes how got differs from want, key by key; "" when equal.
func diff(want, got map[string]any) string {
	var out []string
	for k, wv := range want {
		gv, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s missing (want %s)", k, short(wv)))
		case !reflect.DeepEqual(wv, gv):
			out = append(out, fmt.Sprintf("%s = %s, want %s", k, short(gv), short(wv)))
		}
	}
	for k, gv := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %s = %s", k, short(gv)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func short(v any) string {
	b, err := json.Marshal(v)
	s := string(b)
	if err != nil {
		s = fmt.Sprint(v)
	}
	s = fmt.Sprintf("%s (%T)", s, v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func vectorDiff(want, got []float32) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d elements, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(want[i]-got[i])) > 1e-5 {
			return fmt.Sprintf("element %d = %g, want %g", i, got[i], want[i])
		}
	}
	return ""
}

// sameState reports how two snapshots differ in anything but the fields
// named in ignore (ingested_at is never compared).
func sameState(a, b snapshot, ignore ...string) []string {
	var p problems
	skip := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		delete(out, "ingested_at")
		for _, k := range ignore {
			delete(out, k)
		}
		return out
	}
	cmpMaps := func(what string, x, y map[string]map[string]any) {
		for k, xv := range x {
			yv, ok := y[k]
			if !ok {
				p.add("%s %s: only in the first", what, k)
				continue
			}
			if d := diff(skip(xv), skip(yv)); d != "" {
				p.add("%s %s: %s", what, k, d)
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				p.add("%s %s: only in the second", what, k)
			}
		}
	}
	pa, pb := map[string]map[string]any{}, map[string]map[string]any{}
	for k, pt := range a.points {
		pa[k] = map[string]any{"payload": pt.payload, "vector": pt.vector, "id": pt.id}
	}
	for k, pt := range b.points {
		pb[k] = map[string]any{"payload": pt.payload, "vector": pt.vector, "id": pt.id}
	}
	cmpMaps("point", pa, pb)
	cmpMaps("Chunk", a.graph.chunks, b.graph.chunks)
	cmpMaps("Entity", a.graph.entities, b.graph.entities)
	cmpMaps("relationship", a.graph.rels, b.graph.rels)
	cmpMaps("ChunkTombstone", a.graph.tombstones, b.graph.tombstones)
	ma, mb := map[string]map[string]any{}, map[string]map[string]any{}
	for k, v := range a.graph.mentions {
		ma[k] = map[string]any{"entities": v}
	}
	for k, v := range b.graph.mentions {
		mb[k] = map[string]any{"entities": v}
	}
	cmpMaps("MENTIONS of", ma, mb)
	return p.list
}

// checkCounts compares the stores' counts per tenant with internal/sample's
// Expect: points (counted by Qdrant with a tenant filter), Chunk nodes,
// Entity nodes, relationships between entities and MENTIONS edges.
func (e *env) checkCounts(collection string, st sample.State) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeCall)
	defer cancel()
	total, err := e.qc.Count(ctx, &qc.CountPoints{CollectionName: collection, Exact: qc.PtrOf(true)})
	if err != nil {
		e.t.Fatalf("count %s: %v", collection, err)
	}
	if want := st.Counts().Chunks; int(total) != want {
		e.t.Errorf("collection %s holds %d points, want %d", collection, total, want)
	}
	for _, tenant := range e.tenants {
		want := st.CountsFor(tenant)
		n, err := e.qc.Count(ctx, &qc.CountPoints{CollectionName: collection, Exact: qc.PtrOf(true),
			Filter: &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeyword(qdrant.FieldTenant, tenant)}}})
		if err != nil {
			e.t.Fatalf("count %s for tenant %s: %v", collection, tenant, err)
		}
		rec := e.query(`
CALL { MATCH (c:Chunk {tenant: $t}) RETURN count(c) AS chunks }
CALL { MATCH (x:Entity {tenant: $t}) RETURN count(x) AS entities }
CALL { MATCH (:Entity {tenant: $t})-[r]->(:Entity) RETURN count(r) AS rels }
CALL { MATCH (:Chunk {tenant: $t})-[m:MENTIONS]->(:Entity) RETURN count(m) AS mentions }
RETURN chunks, entities, rels, mentions`, map[string]any{"t": tenant})[0].Values
		got := sample.Counts{Chunks: int(rec[0].(int64)), Entities: int(rec[1].(int64)),
			Relationships: int(rec[2].(int64)), MentionEdges: int(rec[3].(int64))}
		if got != want || int(n) != want.Chunks {
			e.t.Errorf("tenant %s: %d points and Neo4j %+v, want %+v", tenant, n, got, want)
		}
	}
}

// getPoint reads one chunk's point by its point id.
func (e *env) getPoint(collection, tenant, id string) (point, bool) {
	e.t.Helper()
	pts := e.getPoints(collection, []string{qdrant.PointID(tenant, id)})
	if len(pts) == 0 {
		return point{}, false
	}
	return pts[0], true
}

// getPoints reads the points with these ids (those that exist).
func (e *env) getPoints(collection string, ids []string) []point {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storeCall)
	defer cancel()
	pids := make([]*qc.PointId, len(ids))
	for i, id := range ids {
		pids[i] = qc.NewIDUUID(id)
	}
	got, err := e.qc.Get(ctx, &qc.GetPoints{CollectionName: collection, Ids: pids,
		WithPayload: qc.NewWithPayload(true), WithVectors: qc.NewWithVectors(true)})
	if err != nil {
		e.t.Fatalf("get %d points of %s: %v", len(ids), collection, err)
	}
	out := make([]point, len(got))
	for i, p := range got {
		out[i] = toPoint(p.GetId(), p.GetPayload(), p.GetVectors())
	}
	return out
}
