package neo4j

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// BenchmarkWrite measures raw Neo4j writes of sample batches (each event one
// chunk, 3 entities, 2 relations, from internal/sample) at several batch
// sizes, twice in the same run: through the sink's own Cypher (Apply with a
// follower that does nothing) and through the plain reference writer (one
// UNWIND MERGE statement per kind, no version check, no provenance
// withdrawal). The two alternate batch by batch, on tenants of their own, so
// both see the same database as it grows. It reports events/s of each and
// their ratio (own/ref); ns/op covers one batch of each.
//
//	go test -run '^$' -bench BenchmarkWrite -benchtime 20x ./sinks/neo4j/
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, drv := testSink(b, Config{StoreText: true, Timeout: 5 * time.Minute})
			run := fmt.Sprintf("%08x", rand.Uint32())
			// One untimed batch each first: the server compiles and caches
			// the plans of both writers' statements.
			own := benchBatches(b, "bo"+run, size, b.N+1)
			ref := benchBatches(b, "br"+run, size, b.N+1)
			b.Cleanup(func() { dropTenants(b, drv, "bo"+run, "br"+run) })
			noFollow := func(context.Context, []pipeline.Write) error { return nil }
			ctx := context.Background()
			if err := s.Apply(ctx, own[0], noFollow); err != nil {
				b.Fatalf("sink warm-up: %v", err)
			}
			if err := referenceWrite(ctx, drv, ref[0], true); err != nil {
				b.Fatalf("reference warm-up: %v", err)
			}
			own, ref = own[1:], ref[1:]
			var ownTime, refTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if err := s.Apply(ctx, own[i], noFollow); err != nil {
					b.Fatalf("sink batch %d: %v", i, err)
				}
				mid := time.Now()
				if err := referenceWrite(ctx, drv, ref[i], true); err != nil {
					b.Fatalf("reference batch %d: %v", i, err)
				}
				ownTime += mid.Sub(start)
				refTime += time.Since(mid)
			}
			b.StopTimer()
			events := float64(size * b.N)
			ownRate, refRate := events/ownTime.Seconds(), events/refTime.Seconds()
			b.ReportMetric(ownRate, "own_events/s")
			b.ReportMetric(refRate, "ref_events/s")
			b.ReportMetric(ownRate/refRate, "own/ref")
		})
	}
}

// benchBatches returns n batches of size new-chunk events from the sample
// generator, for tenants prefix-a..d.
func benchBatches(b testing.TB, prefix string, size, n int) []*pipeline.Batch {
	b.Helper()
	const dims = 8
	recs := sample.Generate(size*n, sample.Options{
		Seed: 7, Dims: dims,
		Tenants: []string{prefix + "-a", prefix + "-b", prefix + "-c", prefix + "-d"},
	})
	dec := event.NewDecoder(event.DefaultLimits(dims))
	batches := make([]*pipeline.Batch, n)
	for i := range batches {
		batch := &pipeline.Batch{Topic: "bench", Records: make([]*pipeline.Record, size)}
		for j := range size {
			off := int64(i*size + j)
			r := recs[off]
			ev, err := dec.Decode(r.Key, r.Value)
			if err != nil {
				b.Fatalf("sample record %d: %v", off, err)
			}
			batch.Records[j] = &pipeline.Record{
				Src:           &kgo.Record{Topic: "bench", Offset: off, Key: r.Key, Value: r.Value},
				Event:         ev,
				CorrelationID: fmt.Sprintf("bench/0/%d", off),
			}
		}
		batches[i] = batch
	}
	return batches
}

// dropTenants deletes the benchmark's graphs in transactions of bounded size.
func dropTenants(b testing.TB, drv neo4j.DriverWithContext, prefixes ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sess := drv.NewSession(ctx, neo4j.SessionConfig{})
	defer sess.Close(ctx)
	for _, p := range prefixes {
		res, err := sess.Run(ctx, `
			MATCH (n:Chunk|Entity|ChunkTombstone) WHERE n.tenant STARTS WITH $p
			CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS`, map[string]any{"p": p + "-"})
		if err == nil {
			_, err = res.Consume(ctx)
		}
		if err != nil {
			b.Errorf("drop benchmark tenants %s-*: %v", p, err)
		}
	}
}

// The reference writer: what a plain implementation of the storage model
// writes for a batch, one UNWIND MERGE statement per kind in one
// transaction, with no version check and no provenance withdrawal. Its chunk
// rows carry the same lineage properties as the sink's (but not the sink's
// assertions bookkeeping); entities and relationships are written per
// mention, as they come; relationship types are grouped into one statement
// each, as the sink's are (a dynamic type makes the planner scan every
// relationship on a young database).
const (
	refChunks = `
UNWIND $rows AS r
MERGE (c:Chunk {tenant: r.tenant, id: r.id})
SET c += r.props`
	refEntities = `
UNWIND $rows AS r
MERGE (e:Entity {tenant: r.tenant, id: r.id})
SET e += r.props, e.name = r.name, e.type = r.type, e:$(r.type)`
	refMentions = `
UNWIND $rows AS r
MATCH (c:Chunk {tenant: r.tenant, id: r.chunk})
MATCH (e:Entity {tenant: r.tenant, id: r.entity})
MERGE (c)-[:MENTIONS]->(e)`
	refRelations = `
UNWIND $rows AS r
MATCH (a:Entity {tenant: r.tenant, id: r.from})
MATCH (b:Entity {tenant: r.tenant, id: r.to})
MERGE (a)-[x:<TYPE>]->(b)
SET x += r.props,
    x.sources = CASE WHEN r.src IN coalesce(x.sources, []) THEN x.sources ELSE coalesce(x.sources, []) + r.src END`
)

func referenceWrite(ctx context.Context, drv neo4j.DriverWithContext, b *pipeline.Batch, storeText bool) error {
	now := time.Now().UTC()
	var chunks, ents, mentions, rels []any
	for _, r := range b.Records {
		ev := &r.Event
		w := pipeline.Write{Key: r.Key(), Action: pipeline.ActionUpsert, Record: r, Version: ev.Version}
		props, err := chunkProps(&w, "", chunkMeta{storeText: storeText, now: now})
		if err != nil {
			return err
		}
		delete(props, "assertions")
		chunks = append(chunks, map[string]any{"tenant": ev.Tenant, "id": ev.ID, "props": props})
		for _, e := range ev.Entities {
			ents = append(ents, map[string]any{"tenant": ev.Tenant, "id": e.ID, "type": e.Type, "name": e.Name, "props": nonNilMap(dropNulls(e.Props))})
			mentions = append(mentions, map[string]any{"tenant": ev.Tenant, "chunk": ev.ID, "entity": e.ID})
		}
		for _, rl := range ev.Relations {
			rels = append(rels, map[string]any{"tenant": ev.Tenant, "from": rl.From, "type": rl.Type, "to": rl.To, "src": ev.ID, "props": nonNilMap(dropNulls(rl.Props))})
		}
	}
	sess := drv.NewSession(ctx, neo4j.SessionConfig{AccessMode: neo4j.AccessModeWrite})
	defer sess.Close(ctx)
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		statements := []struct {
			q    string
			rows []any
		}{{refChunks, chunks}, {refEntities, ents}, {refMentions, mentions}}
		for _, g := range byType(rels) {
			q, err := relType(refRelations, g.typ)
			if err != nil {
				return nil, err
			}
			statements = append(statements, struct {
				q    string
				rows []any
			}{q, g.rows})
		}
		for _, st := range statements {
			if len(st.rows) == 0 {
				continue
			}
			res, err := tx.Run(ctx, st.q, map[string]any{"rows": st.rows})
			if err != nil {
				return nil, err
			}
			if _, err := res.Consume(ctx); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return err
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
