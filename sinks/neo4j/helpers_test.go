package neo4j

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
)

// testSink returns a sink on the shared test Neo4j, set up, with cfg's
// settings (Timeout defaults to 30 s: the test machine is busy).
func testSink(t testing.TB, cfg Config) (*Sink, neo4j.DriverWithContext) {
	t.Helper()
	drv := neo4jtest.Connect(t)
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	s := NewWithDriver(drv, cfg)
	setupOnce.Do(func() { setupErr = s.Setup(context.Background()) })
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
	return s, drv
}

var (
	setupOnce sync.Once
	setupErr  error
)

// newTenant returns a tenant name of the test's own, whose graph is deleted
// when the test ends.
func newTenant(t testing.TB, drv neo4j.DriverWithContext) string {
	t.Helper()
	tenant := fmt.Sprintf("t%08x", rand.Uint32())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := neo4j.ExecuteQuery(ctx, drv,
			`MATCH (n:Chunk|Entity|ChunkTombstone) WHERE n.tenant = $t DETACH DELETE n`,
			map[string]any{"t": tenant}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Errorf("clean up tenant %s: %v", tenant, err)
		}
	})
	return tenant
}

// batcher builds batches of records with increasing offsets.
type batcher struct {
	offset int64
}

func (bt *batcher) batch(evs ...event.Event) *pipeline.Batch {
	b := &pipeline.Batch{Topic: "events", Partition: 0}
	for _, ev := range evs {
		src := &kgo.Record{Topic: "events", Partition: 0, Offset: bt.offset}
		b.Records = append(b.Records, &pipeline.Record{
			Src: src, Event: ev, CorrelationID: fmt.Sprintf("corr-%d", bt.offset),
		})
		bt.offset++
	}
	return b
}

// ts returns 2026-01-08T12:00:00Z plus s seconds.
func ts(s int) time.Time { return time.Date(2026, 1, 8, 12, 0, s, 0, time.UTC) }

func ent(id, typ, name string, props map[string]any) event.Entity {
	return event.Entity{ID: id, Type: typ, Name: name, Props: props}
}

func rel(from, typ, to string, props map[string]any) event.Relation {
	return event.Relation{From: from, Type: typ, To: to, Props: props}
}

// upsert returns an upsert event of tenant/id at version v and time ts.
func upsert(tenant, id string, v int64, at time.Time, ents []event.Entity, rels []event.Relation) event.Event {
	return event.Event{
		Op: event.OpUpsert, Tenant: tenant, ID: id, DocID: "doc-" + id, Text: "text of " + id, HasText: true,
		Vector: []float32{0.1, 0.2}, Metadata: map[string]any{"source": "test", "n": int64(1)},
		Entities: ents, Relations: rels, Version: v, HasVersion: true, TS: at,
	}
}

func deleteEv(tenant, id string, v int64) event.Event {
	return event.Event{Op: event.OpDelete, Tenant: tenant, ID: id, Version: v, HasVersion: true}
}

func tombstone(tenant, id string) event.Event {
	return event.Event{Op: event.OpDelete, Tenant: tenant, ID: id, Tombstone: true}
}

// apply applies b with a follower that records the writes, failing the test
// on an error.
func apply(t testing.TB, s *Sink, b *pipeline.Batch) []pipeline.Write {
	t.Helper()
	// The follower is called once or twice per run: the new keys' upserts
	// (early, beside the statements), then the rest.
	var mu sync.Mutex
	var got []pipeline.Write
	err := s.Apply(context.Background(), b, func(_ context.Context, w []pipeline.Write) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, w...)
		return nil
	})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return got
}

// graph is a tenant's stored graph in a comparable form.
type graph struct {
	Chunks     map[string]map[string]any // id -> props without ingested_at
	Tombstones map[string]int64          // id -> remembered version
	Entities   map[string]entityState    // id -> state
	Mentions   []string                  // "chunk->entity", sorted
	Relations  map[string]map[string]any // "from-TYPE->to" -> props, sources sorted
}

type entityState struct {
	Labels []string
	Props  map[string]any // user props, name, type; bookkeeping as key->rank
}

func (g graph) String() string {
	var b strings.Builder
	keys := func(m any) []string {
		var ks []string
		switch x := m.(type) {
		case map[string]map[string]any:
			for k := range x {
				ks = append(ks, k)
			}
		case map[string]entityState:
			for k := range x {
				ks = append(ks, k)
			}
		case map[string]int64:
			for k := range x {
				ks = append(ks, k)
			}
		}
		sort.Strings(ks)
		return ks
	}
	for _, k := range keys(g.Chunks) {
		fmt.Fprintf(&b, "chunk %s %v\n", k, g.Chunks[k])
	}
	for _, k := range keys(g.Tombstones) {
		fmt.Fprintf(&b, "tombstone %s v%d\n", k, g.Tombstones[k])
	}
	for _, k := range keys(g.Entities) {
		fmt.Fprintf(&b, "entity %s %v %v\n", k, g.Entities[k].Labels, g.Entities[k].Props)
	}
	for _, m := range g.Mentions {
		fmt.Fprintf(&b, "mention %s\n", m)
	}
	for _, k := range keys(g.Relations) {
		fmt.Fprintf(&b, "relation %s %v\n", k, g.Relations[k])
	}
	return b.String()
}

// dump reads tenant's graph. Set-valued lists (sources, the bookkeeping
// _pk/_pr pairs) are normalised, since their order records arrival order.
func dump(t testing.TB, drv neo4j.DriverWithContext, tenant string) graph {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := func(cypher string) []*neo4j.Record {
		t.Helper()
		res, err := neo4j.ExecuteQuery(ctx, drv, cypher, map[string]any{"t": tenant}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Fatalf("dump %s: %v", cypher, err)
		}
		return res.Records
	}
	g := graph{
		Chunks: map[string]map[string]any{}, Tombstones: map[string]int64{},
		Entities: map[string]entityState{}, Relations: map[string]map[string]any{},
	}
	for _, r := range q(`MATCH (c:Chunk {tenant: $t}) RETURN c.id, properties(c), labels(c)`) {
		p := r.Values[1].(map[string]any)
		delete(p, "ingested_at")
		p["labels"] = r.Values[2]
		g.Chunks[r.Values[0].(string)] = p
	}
	for _, r := range q(`MATCH (x:ChunkTombstone {tenant: $t}) RETURN x.id, x.version`) {
		g.Tombstones[r.Values[0].(string)] = r.Values[1].(int64)
	}
	for _, r := range q(`MATCH (e:Entity {tenant: $t}) RETURN e.id, labels(e), properties(e)`) {
		labels := stringList(r.Values[1])
		sort.Strings(labels)
		g.Entities[r.Values[0].(string)] = entityState{Labels: labels, Props: normalise(r.Values[2].(map[string]any))}
	}
	for _, r := range q(`MATCH (c:Chunk {tenant: $t})-[:MENTIONS]->(e:Entity) RETURN c.id + '->' + e.id`) {
		g.Mentions = append(g.Mentions, r.Values[0].(string))
	}
	sort.Strings(g.Mentions)
	for _, r := range q(`MATCH (a:Entity {tenant: $t})-[x]->(b:Entity) RETURN a.id + '-' + type(x) + '->' + b.id, properties(x)`) {
		p := normalise(r.Values[1].(map[string]any))
		k := r.Values[0].(string)
		if _, dup := g.Relations[k]; dup {
			t.Fatalf("two relationships %s", k)
		}
		g.Relations[k] = p
	}
	return g
}

func normalise(p map[string]any) map[string]any {
	if s, ok := p["sources"]; ok {
		l := stringList(s)
		sort.Strings(l)
		p["sources"] = l
	}
	if pk, ok := p[propKeys]; ok {
		keys, ranks := stringList(pk), stringList(p[propKeyRanks])
		m := map[string]string{}
		for i, k := range keys {
			m[k] = ranks[i]
		}
		p["_keyranks"] = m
		delete(p, propKeys)
		delete(p, propKeyRanks)
	}
	return p
}

func count(t testing.TB, drv neo4j.DriverWithContext, cypher string, params map[string]any) int64 {
	t.Helper()
	res, err := neo4j.ExecuteQuery(context.Background(), drv, cypher, params, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("%s: %v", cypher, err)
	}
	return res.Records[0].Values[0].(int64)
}

var errBad = errors.New("rejected by an earlier stage")

// runCypher runs a statement the test needs around the sink (a constraint,
// a node in the way) on drv.
func runCypher(t testing.TB, drv neo4j.DriverWithContext, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := neo4j.ExecuteQuery(ctx, drv, q, nil, neo4j.EagerResultTransformer); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
