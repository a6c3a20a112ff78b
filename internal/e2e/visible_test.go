package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/sinks/qdrant"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// applyDelay is how long the stand-in keeps a wait=false write invisible:
// far longer than the time between a commit and the check that follows it.
const applyDelay = 3 * time.Second

// TestVisibleWhenCommitted: at every commit the test observes — through kadm,
// polled every 50 ms, and through the Committed hook — every record below
// the committed offset is readable in both stores. The Qdrant stand-in
// delays the apply of wait=false writes, so a sink that did not wait for its
// writes would fail this test; the second subtest shows that it does.
// Stand-in only by construction: it needs the apply delay.
func TestVisibleWhenCommitted(t *testing.T) {
	t.Run("ragstream's sinks", func(t *testing.T) {
		v := runVisibility(t, 600, false)
		t.Logf("%d commit advances checked through kadm, %d through the hook; %d reads retried", v.kadmSeen, v.hookSeen, len(v.errs))
		if len(v.violations) > 0 {
			sort.Strings(v.violations)
			t.Errorf("%d records were not readable at a commit that covered them:\n  %s",
				len(v.violations), strings.Join(v.violations[:min(len(v.violations), 20)], "\n  "))
		}
		if v.kadmSeen < 3 || v.hookSeen < 3 {
			t.Errorf("observed %d commits through kadm and %d through the hook; too few for the test to mean anything", v.kadmSeen, v.hookSeen)
		}
	})
	t.Run("probe: a Qdrant sink writing with wait=false is caught", func(t *testing.T) {
		v := runVisibility(t, 150, true)
		if len(v.violations) == 0 {
			t.Errorf("a sink that does not wait for its writes passed the visibility check (%d kadm and %d hook observations)", v.kadmSeen, v.hookSeen)
		}
	})
}

// runVisibility ingests a clean stream of n new chunks (each record a
// distinct key) on a stand-in with the apply delay, checking visibility at
// every observed commit until everything is committed.
// With probe, the Qdrant writes go through noWaitSink.
func runVisibility(t *testing.T, n int, probe bool) *visibility {
	srv := qdranttest.Start(t)
	srv.Faults().SetApplyDelay(applyDelay)
	e := newEnv(t, envOptions{partitions: 3, standIn: srv})
	recs := e.produce(e.toKafka(sample.Generate(n, e.sampleOptions(sample.Options{Seed: 7}))))
	collection := e.collectionName("vis")
	group := e.name("vis")
	v := newVisibility(e, collection, recs)
	var follower func(*qdrant.Sink) pipeline.Sink
	if probe {
		follower = func(s *qdrant.Sink) pipeline.Sink { return noWaitSink{c: s.Client(), collection: collection} }
	}
	commits := make(chan pipeline.CommitStats, 4096)
	hooks := pipeline.Hooks{Committed: func(s pipeline.CommitStats) {
		select {
		case commits <- s:
		default: // the kadm poll still sees it
		}
	}}
	w := e.startWorker(workerConfig{name: "vis", group: group, collection: collection, follower: follower, hooks: hooks,
		options: func(o *pipeline.Options) { o.MaxRecords = 50 }})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { v.watch(ctx, group, commits) })
	e.waitCommitted(group, commitWait, w)
	cancel()
	wg.Wait()
	// The last commits, and every record once more.
	v.observe(ctx, v.lastCommitted(group), "final")
	if !probe {
		e.mustMatch(collection, foldWant(t, recs))
	}
	return v
}

// visibility checks records against commits.
type visibility struct {
	e          *env
	collection string
	byPart     map[int32][]*kgo.Record // by offset
	// verified[source][p]: records below are known readable at a commit
	// seen through source. Each source checks on its own, so a commit the
	// hook reported first is still checked when kadm sees it.
	verified   map[string]map[int32]int64
	kadmSeen   int // commit advances seen through kadm
	hookSeen   int // and through the hook
	violations []string
	errs       []error
}

func newVisibility(e *env, collection string, recs []*kgo.Record) *visibility {
	v := &visibility{e: e, collection: collection, byPart: map[int32][]*kgo.Record{}, verified: map[string]map[int32]int64{"hook": {}, "kadm": {}, "final": {}}}
	for _, r := range recs {
		v.byPart[r.Partition] = append(v.byPart[r.Partition], r)
	}
	for p, rs := range v.byPart {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
		for i, r := range rs {
			if r.Offset != int64(i) {
				e.t.Fatalf("partition %d: offset %d at index %d; the check wants a fresh topic", p, r.Offset, i)
			}
		}
	}
	return v
}

// watch observes commits until ctx ends: the hook's as they come, kadm's
// every 50 ms.
func (v *visibility) watch(ctx context.Context, group string, hook <-chan pipeline.CommitStats) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-hook:
			if v.observe(ctx, map[int32]int64{s.Partition: s.Offset}, "hook") {
				v.hookSeen++
			}
		case <-tick.C:
			c, err := v.e.committed(group)
			if err != nil {
				continue // a slow broker; the next poll tries again
			}
			if v.observe(ctx, c, "kadm") {
				v.kadmSeen++
			}
		}
	}
}

func (v *visibility) lastCommitted(group string) map[int32]int64 {
	c, err := v.e.committed(group)
	if err != nil {
		v.e.t.Fatalf("committed offsets: %v", err)
	}
	return c
}

// observe checks the records between what is verified and the commits; it
// reports whether any commit advanced. Records never leave the stores in
// this stream, so what was readable once need not be read again.
func (v *visibility) observe(ctx context.Context, commits map[int32]int64, source string) bool {
	advanced := false
	for p, c := range commits {
		from := v.verified[source][p]
		if c <= from {
			continue
		}
		advanced = true
		recs := v.byPart[p][from:min(c, int64(len(v.byPart[p])))]
		missing, err := v.unreadable(context.WithoutCancel(ctx), recs)
		if err != nil {
			v.errs = append(v.errs, err)
			continue // checked again at the next commit
		}
		for _, m := range missing {
			v.violations = append(v.violations, fmt.Sprintf("%s (seen through %s: %s/%d committed at %d)", m, source, v.e.topic, p, c))
		}
		v.verified[source][p] = c
	}
	return advanced
}

// unreadable returns the records of recs missing from either store.
func (v *visibility) unreadable(ctx context.Context, recs []*kgo.Record) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, storeCall)
	defer cancel()
	ids := make([]*qc.PointId, len(recs))
	keys := make([]any, len(recs))
	for i, r := range recs {
		tenant, id, _ := strings.Cut(string(r.Key), "/")
		ids[i] = qc.NewIDUUID(qdrant.PointID(tenant, id))
		keys[i] = map[string]any{"t": tenant, "id": id}
	}
	pts, err := v.e.qc.Get(ctx, &qc.GetPoints{CollectionName: v.collection, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("qdrant get: %w", err)
	}
	inQdrant := map[string]bool{}
	for _, p := range pts {
		inQdrant[p.GetId().GetUuid()] = true
	}
	res, err := neo4jdrv.ExecuteQuery(ctx, v.e.drv, `UNWIND $keys AS k MATCH (c:Chunk {tenant: k.t, id: k.id}) RETURN k.t + '/' + k.id`,
		map[string]any{"keys": keys}, neo4jdrv.EagerResultTransformer, neo4jdrv.ExecuteQueryWithReadersRouting())
	if err != nil {
		return nil, fmt.Errorf("neo4j read: %w", err)
	}
	inNeo4j := map[string]bool{}
	for _, r := range res.Records {
		inNeo4j[r.Values[0].(string)] = true
	}
	var missing []string
	for i, r := range recs {
		var where []string
		if !inQdrant[ids[i].GetUuid()] {
			where = append(where, "Qdrant")
		}
		if !inNeo4j[string(r.Key)] {
			where = append(where, "Neo4j")
		}
		if len(where) > 0 {
			missing = append(missing, fmt.Sprintf("%s@%d %s: not in %s", r.Topic, r.Offset, r.Key, strings.Join(where, ", ")))
		}
	}
	return missing, nil
}

// noWaitSink writes points as ragstream's sink would, but with wait=false:
// the defect the visibility test exists to catch.
type noWaitSink struct {
	c          *qc.Client
	collection string
}

func (noWaitSink) Name() string { return "qdrant" }

func (s noWaitSink) Write(ctx context.Context, writes []pipeline.Write) error {
	var pts []*qc.PointStruct
	for _, w := range writes {
		if w.Action != pipeline.ActionUpsert {
			continue
		}
		pts = append(pts, &qc.PointStruct{
			Id:      qc.NewIDUUID(qdrant.PointID(w.Key.Tenant, w.Key.ID)),
			Vectors: qc.NewVectorsDense(w.Record.Event.Vector),
			Payload: qc.NewValueMap(map[string]any{"tenant": w.Key.Tenant, "id": w.Key.ID, "version": w.Version}),
		})
	}
	if len(pts) == 0 {
		return nil
	}
	_, err := s.c.Upsert(ctx, &qc.UpsertPoints{CollectionName: s.collection, Wait: qc.PtrOf(false), Points: pts})
	return err
}
