package neo4j

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// TestVersionRule runs histories of one key, batch by batch, and checks the
// stored chunk (version and text) or deletion marker, and every record's
// outcome.
func TestVersionRule(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{StoreText: true})
	type step []event.Event
	up := func(v int64, text string) event.Event {
		ev := upsert("", "k", v, ts(int(v)), []event.Entity{ent("e"+text, "Thing", text, nil)}, nil)
		ev.Text = text
		return ev
	}
	noVersion := func(text string) event.Event {
		ev := up(0, text)
		ev.HasVersion = false
		return ev
	}
	del := func(v int64) event.Event { return deleteEv("", "k", v) }
	tomb := func() event.Event { return tombstone("", "k") }
	const (
		A = pipeline.OutcomeApplied
		S = pipeline.OutcomeSkippedStale
	)
	for _, tc := range []struct {
		name     string
		batches  []step
		outcomes [][]pipeline.Outcome
		text     string // the stored chunk's text; "" when there is no chunk
		version  int64  // the chunk's version, or the marker's
	}{
		{"lower_in_batch_skipped", []step{{up(2, "two"), up(1, "one")}}, [][]pipeline.Outcome{{A, S}}, "two", 2},
		{"lower_later_skipped", []step{{up(2, "two")}, {up(1, "one")}}, [][]pipeline.Outcome{{A}, {S}}, "two", 2},
		{"equal_reapplies", []step{{up(2, "two")}, {up(2, "again")}}, [][]pipeline.Outcome{{A}, {A}}, "again", 2},
		{"higher_applies", []step{{up(1, "one")}, {up(3, "three"), up(2, "two")}}, [][]pipeline.Outcome{{A}, {A, S}}, "three", 3},
		{"absent_version_is_0", []step{{noVersion("zero")}, {up(0, "again")}}, [][]pipeline.Outcome{{A}, {A}}, "again", 0},
		{"absent_version_below_stored", []step{{up(1, "one")}, {noVersion("zero")}}, [][]pipeline.Outcome{{A}, {S}}, "one", 1},
		{"delete_then_older_upsert_later", []step{{up(1, "one")}, {del(3)}, {up(2, "two")}}, [][]pipeline.Outcome{{A}, {A}, {S}}, "", 3},
		{"delete_then_older_upsert_same_batch", []step{{up(1, "one"), del(3), up(2, "two")}}, [][]pipeline.Outcome{{A, A, S}}, "", 3},
		{"older_delete_skipped", []step{{up(5, "five")}, {del(4)}}, [][]pipeline.Outcome{{A}, {S}}, "five", 5},
		{"delete_then_equal_upsert_recreates", []step{{up(1, "one")}, {del(3)}, {up(3, "three")}}, [][]pipeline.Outcome{{A}, {A}, {A}}, "three", 3},
		{"tombstone_remembers_stored_version", []step{{up(5, "five")}, {tomb()}, {up(4, "four")}}, [][]pipeline.Outcome{{A}, {A}, {S}}, "", 5},
		{"tombstone_then_equal_upsert", []step{{up(5, "five")}, {tomb()}, {up(5, "back")}}, [][]pipeline.Outcome{{A}, {A}, {A}}, "back", 5},
		{"tombstone_applies_over_higher", []step{{up(5, "five"), tomb()}}, [][]pipeline.Outcome{{A, A}}, "", 5},
		{"tombstone_of_absent_key", []step{{tomb()}, {up(0, "zero")}}, [][]pipeline.Outcome{{A}, {A}}, "zero", 0},
		{"delete_of_absent_key_blocks_older", []step{{del(7)}, {up(6, "six")}}, [][]pipeline.Outcome{{A}, {S}}, "", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tenant := newTenant(t, drv)
			var bt batcher
			for i, st := range tc.batches {
				evs := make([]event.Event, len(st))
				for j, ev := range st {
					ev.Tenant = tenant
					evs[j] = ev
				}
				b := bt.batch(evs...)
				apply(t, s, b)
				for j, r := range b.Records {
					if r.Outcome != tc.outcomes[i][j] {
						t.Errorf("batch %d record %d: outcome %s, want %s", i, j, r.Outcome, tc.outcomes[i][j])
					}
				}
			}
			g := dump(t, drv, tenant)
			c, marker := g.Chunks["k"], g.Tombstones
			switch {
			case tc.text == "":
				if c != nil {
					t.Fatalf("chunk present (%v), want deleted", c)
				}
				if v, ok := marker["k"]; !ok || v != tc.version {
					t.Fatalf("marker %v, want version %d", marker, tc.version)
				}
				if len(g.Entities) != 0 {
					t.Errorf("entities left behind: %v", g.Entities)
				}
			default:
				if c == nil || c["text"] != tc.text || c["version"] != tc.version {
					t.Fatalf("chunk %v, want text %q at version %d", c, tc.text, tc.version)
				}
				if len(marker) != 0 {
					t.Errorf("marker %v left beside a live chunk", marker)
				}
				if len(g.Entities) != 1 || g.Entities["e"+tc.text].Props == nil {
					t.Errorf("entities %v, want only e%s", g.Entities, tc.text)
				}
			}
		})
	}
}

// TestFollowFailureRollsBack: when the follower fails, nothing is written,
// the follower's error comes back unchanged and the outcomes are as before.
func TestFollowFailureRollsBack(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	tenant := newTenant(t, drv)
	var bt batcher
	apply(t, s, bt.batch(upsert(tenant, "keep", 1, ts(0), []event.Entity{ent("x", "Person", "X", map[string]any{"a": "1"})}, nil)))
	before := dump(t, drv, tenant)

	boom := pipeline.Transient(errors.New("qdrant unavailable"))
	b := bt.batch(
		upsert(tenant, "new", 1, ts(1), []event.Entity{ent("x", "Person", "X2", map[string]any{"a": "2"}), ent("y", "Place", "Y", nil)},
			[]event.Relation{rel("x", "LIVES_IN", "y", nil)}),
		deleteEv(tenant, "keep", 2),
	)
	calls := 0
	err := s.Apply(context.Background(), b, func(context.Context, []pipeline.Write) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || err != boom {
		t.Fatalf("Apply returned %v, want the follower's error itself", err)
	}
	if calls != 1 {
		t.Errorf("follow called %d times, want 1 (the driver must not retry a follower error)", calls)
	}
	if after := dump(t, drv, tenant); !reflect.DeepEqual(before, after) {
		t.Fatalf("a failed follow left writes behind\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for i, r := range b.Records {
		if r.Outcome != pipeline.OutcomePending {
			t.Errorf("record %d outcome %s after a failed Apply, want pending", i, r.Outcome)
		}
	}
}

// TestReservedNamesRefused: a record whose graph content would corrupt the
// model fails alone as a permanent *RecordError, and nothing is written.
func TestReservedNamesRefused(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{})
	for _, tc := range []struct {
		name  string
		ev    func(tenant string) event.Event
		field string
	}{
		{"entity_type_chunk", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Chunk", "X", nil)}, nil)
		}, `entities[0].type: "Chunk" is reserved by the graph model`},
		{"entity_prop_id", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Person", "X", map[string]any{"id": "y"})}, nil)
		}, `entities[0].props.id: reserved by the graph model`},
		{"relation_type_mentions", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Person", "X", nil)}, []event.Relation{rel("x", "MENTIONS", "x", nil)})
		}, `relations[0].type: "MENTIONS" is reserved by the graph model`},
		{"relation_prop_sources", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Person", "X", nil)}, []event.Relation{rel("x", "KNOWS", "x", map[string]any{"sources": "y"})})
		}, `relations[0].props.sources: reserved by the graph model`},
		{"entity_prop_map", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Person", "X", map[string]any{"m": map[string]any{"a": int64(1)}})}, nil)
		}, `entities[0].props.m: value of type map[string]interface {} (Neo4j stores scalars and arrays of scalars only)`},
		{"bad_label", func(tn string) event.Event {
			return upsert(tn, "c", 1, ts(0), []event.Entity{ent("x", "Person`) DETACH DELETE (n", "X", nil)}, nil)
		}, "entities[0].type: \"Person`) DETACH DELETE (n\" must match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tenant := newTenant(t, drv)
			var bt batcher
			b := bt.batch(upsert(tenant, "fine", 1, ts(0), nil, nil), tc.ev(tenant))
			err := s.Apply(context.Background(), b, func(context.Context, []pipeline.Write) error {
				t.Errorf("follow called for a refused batch")
				return nil
			})
			if pipeline.ClassOf(err) != pipeline.ClassPermanent {
				t.Fatalf("error %v of class %s, want permanent", err, pipeline.ClassOf(err))
			}
			var re *pipeline.RecordError
			if !errors.As(err, &re) || re.Record != b.Records[1] {
				t.Fatalf("error %v does not name record 1 as a *RecordError", err)
			}
			if got := re.Err.Error(); !strings.Contains(got, tc.field) {
				t.Errorf("message %q does not say %q", got, tc.field)
			}
			if g := dump(t, drv, tenant); len(g.Chunks)+len(g.Entities) != 0 {
				t.Errorf("a refused batch wrote:\n%s", g)
			}
		})
	}
}

// TestSweepExpiresOldMarkersOnly: markers older than the retention go, in
// bounded statements; younger ones stay and still block older upserts.
func TestSweepExpiresOldMarkersOnly(t *testing.T) {
	t.Parallel()
	// Markers aged two hours against a one-hour retention: sweepers with the
	// 7-day default (other tests, other packages) leave them alone, and this
	// sweep leaves every fresh marker of the shared instance alone.
	const retention = time.Hour
	s, drv := testSink(t, Config{TombstoneRetention: retention, SweepBatch: 2})
	tenant := newTenant(t, drv)
	var bt batcher
	apply(t, s, bt.batch(deleteEv(tenant, "old1", 5), deleteEv(tenant, "old2", 5), deleteEv(tenant, "old3", 5), deleteEv(tenant, "young", 5)))
	long := time.Now().UTC().Add(-2 * retention)
	if _, err := neo4j.ExecuteQuery(context.Background(), drv,
		`MATCH (t:ChunkTombstone {tenant: $t}) WHERE t.id STARTS WITH 'old' SET t.deleted_at = $at`,
		map[string]any{"t": tenant, "at": long}, neo4j.EagerResultTransformer); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepTombstones(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if n < 3 {
		t.Errorf("sweep deleted %d markers, want at least 3", n)
	}
	g := dump(t, drv, tenant)
	if !reflect.DeepEqual(g.Tombstones, map[string]int64{"young": 5}) {
		t.Fatalf("markers after the sweep %v, want only young", g.Tombstones)
	}
	// The young marker still blocks an older upsert; an expired one does not.
	b := bt.batch(upsert(tenant, "young", 4, ts(0), nil, nil), upsert(tenant, "old1", 4, ts(0), nil, nil))
	apply(t, s, b)
	if b.Records[0].Outcome != pipeline.OutcomeSkippedStale || b.Records[1].Outcome != pipeline.OutcomeApplied {
		t.Errorf("outcomes %s, %s: want the young marker to block and the swept one not", b.Records[0].Outcome, b.Records[1].Outcome)
	}
}

// TestRunSweeperStopsWithContext: the loop sweeps and returns nil when its
// context ends.
func TestRunSweeperStopsWithContext(t *testing.T) {
	t.Parallel()
	// A retention nothing reaches: this loop must not sweep other tests' markers.
	s, _ := testSink(t, Config{TombstoneRetention: 100 * 365 * 24 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunSweeper(ctx, 10*time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunSweeper returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunSweeper did not return after its context ended")
	}
	if err := s.RunSweeper(context.Background(), 0); err == nil {
		t.Error("RunSweeper accepted a zero interval")
	}
}

// TestConcurrentPartitionsShareEntities writes batches of four partitions at
// once, every chunk mentioning the same entities: deadlocks between them are
// retried, and the end state holds every chunk's assertions.
func TestConcurrentPartitionsShareEntities(t *testing.T) {
	t.Parallel()
	s, drv := testSink(t, Config{Timeout: time.Minute})
	tenant := newTenant(t, drv)
	const partitions, batches, perBatch = 4, 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, partitions)
	for p := range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bt := batcher{offset: int64(p) * 1000}
			for i := range batches {
				var evs []event.Event
				for j := range perBatch {
					n := (i*perBatch+j)*partitions + p
					id := fmt.Sprintf("c%04d", n)
					evs = append(evs, upsert(tenant, id, 1, ts(n), []event.Entity{
						ent("hub1", "Organization", "Hub", map[string]any{"last": int64(n)}),
						ent("hub2", "Place", "Hub2", nil),
						ent(fmt.Sprintf("own%d", n), "Person", "Own", nil),
					}, []event.Relation{rel("hub1", "LOCATED_IN", "hub2", map[string]any{"n": int64(n)})}))
				}
				b := bt.batch(evs...)
				b.Partition = int32(p)
				if err := s.Apply(context.Background(), b, func(context.Context, []pipeline.Write) error { return nil }); err != nil {
					errs <- fmt.Errorf("partition %d batch %d: %w", p, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g := dump(t, drv, tenant)
	total := partitions * batches * perBatch
	if len(g.Chunks) != total || len(g.Entities) != total+2 {
		t.Fatalf("%d chunks and %d entities, want %d and %d", len(g.Chunks), len(g.Entities), total, total+2)
	}
	if got := g.Entities["hub1"].Props["last"]; got != int64(total-1) {
		t.Errorf("hub1.last = %v, want %d (the highest ts wins)", got, total-1)
	}
	r := g.Relations["hub1-LOCATED_IN->hub2"]
	if len(r["sources"].([]string)) != total || r["n"] != int64(total-1) {
		t.Errorf("hub relationship has %d sources and n=%v, want %d and %d", len(r["sources"].([]string)), r["n"], total, total-1)
	}
}
