package sample

import (
	"bytes"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

var update = flag.Bool("update", false, "rewrite testdata/events/sample.jsonl")

const sampleFile = "../../testdata/events/sample.jsonl"

func decodeAll(t *testing.T, dims int, recs []Record) []event.Event {
	t.Helper()
	dec := event.NewDecoder(event.DefaultLimits(dims))
	out := make([]event.Event, len(recs))
	for i, r := range recs {
		ev, err := dec.Decode(r.Key, r.Value)
		if err != nil {
			t.Fatalf("record %d (key %q) does not decode: %v\n%s", i, r.Key, err, r.Value)
		}
		out[i] = ev
	}
	return out
}

func TestGenerateIsDeterministic(t *testing.T) {
	a := Generate(300, DefaultOptions())
	b := Generate(300, DefaultOptions())
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) || fmt.Sprint(a[i].Headers) != fmt.Sprint(b[i].Headers) {
			t.Fatalf("record %d differs between two runs with the same options", i)
		}
	}
	o := DefaultOptions()
	o.Seed = 2
	c := Generate(300, o)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Value, c[i].Value) {
			same++
		}
	}
	if same > 10 {
		t.Errorf("seeds 1 and 2 share %d of 300 values", same)
	}
}

func TestGeneratedEventsAreValidAndRealistic(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"defaults", DefaultOptions()},
		{"zero options", Options{}},
		{"small dims, no graph", Options{Seed: 4, Dims: 8, EntitiesPerEvent: -1, RelationsPerEvent: -1}},
		{"big graph", Options{Seed: 5, Dims: 16, EntitiesPerEvent: 9, RelationsPerEvent: 12, EscapeNonASCII: 1}},
		{"one tenant", Options{Seed: 6, Tenants: []string{"solo"}, Updates: 0.3, Deletes: 0.2, Tombstones: 0.2, Stale: 0.2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opt.withDefaults()
			recs := Generate(400, tc.opt)
			evs := decodeAll(t, o.Dims, recs)
			tenants := map[string]bool{}
			idTenants := map[string]map[string]bool{}
			escaped, nonASCII, size, upserts := 0, 0, 0, 0
			mentions := 0
			distinct := map[string]bool{}
			for i, ev := range evs {
				tenants[ev.Tenant] = true
				if idTenants[ev.ID] == nil {
					idTenants[ev.ID] = map[string]bool{}
				}
				idTenants[ev.ID][ev.Tenant] = true
				if recs[i].Value == nil || ev.Op == event.OpDelete {
					continue
				}
				upserts++
				size += len(recs[i].Value)
				if bytes.Contains(recs[i].Value, []byte(`\u`)) {
					escaped++
				}
				if strings.ContainsFunc(ev.Text, func(r rune) bool { return r > 0x7f }) {
					nonASCII++
				}
				var norm float64
				for _, x := range ev.Vector {
					norm += float64(x) * float64(x)
				}
				if math.Abs(math.Sqrt(norm)-1) > 1e-3 {
					t.Fatalf("record %d: vector norm %v, want 1", i, math.Sqrt(norm))
				}
				want := min(max(o.EntitiesPerEvent, 0), len(catalog))
				if len(ev.Entities) != want {
					t.Fatalf("record %d: %d entities, want %d", i, len(ev.Entities), want)
				}
				if o.RelationsPerEvent < 0 && len(ev.Relations) > 0 {
					t.Fatalf("record %d: relations despite RelationsPerEvent < 0", i)
				}
				for _, e := range ev.Entities {
					mentions++
					distinct[ev.Tenant+"/"+e.ID] = true
				}
			}
			if len(tenants) != len(o.Tenants) {
				t.Errorf("%d tenants seen, want %d", len(tenants), len(o.Tenants))
			}
			collisions := 0
			for _, ts := range idTenants {
				if len(ts) > 1 {
					collisions++
				}
			}
			if len(o.Tenants) > 1 && collisions == 0 {
				t.Errorf("no chunk id is shared by two tenants")
			}
			if nonASCII < upserts/2 {
				t.Errorf("only %d of %d upserts have non-ASCII text", nonASCII, upserts)
			}
			if tc.opt.EscapeNonASCII > 0 && escaped == 0 {
				t.Errorf("no record with \\u escapes")
			}
			if mentions > 0 && len(distinct) >= mentions/2 {
				t.Errorf("entities are barely shared: %d distinct of %d mentions", len(distinct), mentions)
			}
			if o.Dims == 384 {
				avg := size / upserts
				if avg < 3500 || avg > 6000 {
					t.Errorf("average upsert is %d bytes, want about 4.8 KB", avg)
				}
			}
		})
	}
}

func TestDefaultMixHasEveryKind(t *testing.T) {
	recs := Generate(2000, DefaultOptions())
	evs := decodeAll(t, 384, recs)
	var tombstones, deletes, unkeyed, noCorr, updates int
	seen := map[string]bool{}
	for i, r := range recs {
		switch {
		case r.Value == nil:
			tombstones++
		case evs[i].Op == event.OpDelete:
			deletes++
		case seen[evs[i].Key()]:
			updates++
		}
		seen[evs[i].Key()] = true
		if r.Key == nil {
			unkeyed++
		}
		if len(r.Headers) == 0 {
			noCorr++
		}
	}
	for name, n := range map[string]int{"tombstones": tombstones, "deletes": deletes, "unkeyed": unkeyed,
		"records without correlation-id": noCorr, "updates": updates} {
		if n == 0 {
			t.Errorf("no %s in 2000 default records", name)
		}
	}
}

// rec builds a record for the fold tests; value "" is a tombstone.
func rec(key, value string) Record {
	r := Record{Key: []byte(key)}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

func upsert(tenant, id string, version int, ents ...string) string {
	var es, rs []string
	for i, e := range ents {
		es = append(es, fmt.Sprintf(`{"id":%q,"type":"Thing","name":%q}`, e, e))
		if i > 0 {
			rs = append(rs, fmt.Sprintf(`{"from":%q,"to":%q,"type":"NEXT"}`, ents[i-1], e))
		}
	}
	return fmt.Sprintf(`{"id":%q,"tenant":%q,"vector":[1,0],"version":%d,"entities":[%s],"relations":[%s]}`,
		id, tenant, version, strings.Join(es, ","), strings.Join(rs, ","))
}

func del(tenant, id string, version int) string {
	return fmt.Sprintf(`{"op":"delete","id":%q,"tenant":%q,"version":%d}`, id, tenant, version)
}

func TestFoldFollowsTheVersionRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
		want Counts
	}{
		{"upserts of two tenants with the same id", []Record{
			rec("a/x", upsert("a", "x", 1, "e1", "e2")),
			rec("b/x", upsert("b", "x", 1, "e1", "e2")),
		}, Counts{Chunks: 2, Entities: 4, Relationships: 2, MentionEdges: 4}},
		{"newer version replaces, withdrawing old assertions", []Record{
			rec("a/x", upsert("a", "x", 1, "e1", "e2")),
			rec("a/x", upsert("a", "x", 2, "e3")),
		}, Counts{Chunks: 1, Entities: 1, Relationships: 0, MentionEdges: 1}},
		{"equal version re-applies", []Record{
			rec("a/x", upsert("a", "x", 2, "e1")),
			rec("a/x", upsert("a", "x", 2, "e2", "e3")),
		}, Counts{Chunks: 1, Entities: 2, Relationships: 1, MentionEdges: 2}},
		{"stale version is skipped", []Record{
			rec("a/x", upsert("a", "x", 3, "e1")),
			rec("a/x", upsert("a", "x", 2, "e2", "e3")),
		}, Counts{Chunks: 1, Entities: 1, MentionEdges: 1}},
		{"delete at a higher version, then a late older upsert stays out", []Record{
			rec("a/x", upsert("a", "x", 1, "e1")),
			rec("a/x", del("a", "x", 5)),
			rec("a/x", upsert("a", "x", 4, "e1")),
		}, Counts{}},
		{"stale delete is skipped", []Record{
			rec("a/x", upsert("a", "x", 5, "e1")),
			rec("a/x", del("a", "x", 4)),
		}, Counts{Chunks: 1, Entities: 1, MentionEdges: 1}},
		{"tombstone applies whatever the version and keeps it", []Record{
			rec("a/x", upsert("a", "x", 7, "e1")),
			rec("a/x", ""),
			rec("a/x", upsert("a", "x", 6, "e1")),
		}, Counts{}},
		{"upsert after a tombstone at a newer version comes back", []Record{
			rec("a/x", upsert("a", "x", 7, "e1")),
			rec("a/x", ""),
			rec("a/x", upsert("a", "x", 7, "e2")),
		}, Counts{Chunks: 1, Entities: 1, MentionEdges: 1}},
		{"entity shared by two chunks lives while one mentions it", []Record{
			rec("a/x", upsert("a", "x", 1, "e1", "e2")),
			rec("a/y", upsert("a", "y", 1, "e1", "e2")),
			rec("a/x", ""),
		}, Counts{Chunks: 1, Entities: 2, Relationships: 1, MentionEdges: 2}},
		{"unkeyed records fold by their body", []Record{
			{Value: []byte(upsert("a", "x", 1, "e1"))},
			{Value: []byte(upsert("a", "x", 2, "e2"))},
		}, Counts{Chunks: 1, Entities: 1, MentionEdges: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expect(2, tc.recs)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := Expect(2, []Record{rec("a/x", `{"id":"x"}`)}); err == nil {
		t.Errorf("Expect accepted a record that does not decode")
	}
}

// TestExpectIsOrderIndependentAcrossPartitions spreads a default stream over
// partitions by key, as Kafka does, and interleaves the partitions at random:
// the final state must not depend on the interleaving, or integration tests
// could not assert exact counts.
func TestExpectIsOrderIndependentAcrossPartitions(t *testing.T) {
	o := DefaultOptions()
	o.Updates, o.Deletes, o.Tombstones, o.Stale, o.Unkeyed = 0.15, 0.05, 0.05, 0.05, 0.05
	recs := Generate(1500, o)
	want, err := Fold(384, recs)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for trial := range 5 {
		const parts = 6
		var queues [parts][]Record
		for _, rec := range recs {
			p := r.IntN(parts) // an unkeyed record lands anywhere
			if rec.Key != nil {
				h := fnv.New32a()
				h.Write(rec.Key)
				p = int(h.Sum32() % parts)
			}
			queues[p] = append(queues[p], rec)
		}
		var mixed []Record
		for {
			var open []int
			for p := range queues {
				if len(queues[p]) > 0 {
					open = append(open, p)
				}
			}
			if len(open) == 0 {
				break
			}
			p := open[r.IntN(len(open))]
			mixed = append(mixed, queues[p][0])
			queues[p] = queues[p][1:]
		}
		got, err := Fold(384, mixed)
		if err != nil {
			t.Fatal(err)
		}
		if got.Counts() != want.Counts() || fmt.Sprint(got.EntityKeys()) != fmt.Sprint(want.EntityKeys()) ||
			fmt.Sprint(got.RelationshipKeys()) != fmt.Sprint(want.RelationshipKeys()) {
			t.Fatalf("trial %d: interleaving changed the final state: %+v, want %+v", trial, got.Counts(), want.Counts())
		}
	}
	c := want.Counts()
	if c.Chunks == 0 || c.Entities == 0 || c.Relationships == 0 || c.MentionEdges == 0 {
		t.Errorf("degenerate final state %+v", c)
	}
	var sum Counts
	for _, tenant := range want.Tenants() {
		tc := want.CountsFor(tenant)
		sum.Chunks += tc.Chunks
		sum.Entities += tc.Entities
		sum.Relationships += tc.Relationships
		sum.MentionEdges += tc.MentionEdges
	}
	if sum != c {
		t.Errorf("per-tenant counts sum to %+v, total %+v", sum, c)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	recs := Generate(200, DefaultOptions())
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, recs); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != len(recs) {
		t.Fatalf("%d lines for %d records", n, len(recs))
	}
	back, err := ReadJSONL(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(recs) {
		t.Fatalf("read %d records, wrote %d", len(back), len(recs))
	}
	for i := range recs {
		a, b := recs[i], back[i]
		if (a.Key == nil) != (b.Key == nil) || !bytes.Equal(a.Key, b.Key) ||
			(a.Value == nil) != (b.Value == nil) || !bytes.Equal(a.Value, b.Value) ||
			fmt.Sprint(a.Headers) != fmt.Sprint(b.Headers) {
			t.Fatalf("record %d changed in the round trip", i)
		}
	}
	if _, err := ReadJSONL(strings.NewReader("{\"key\":\n")); err == nil {
		t.Errorf("ReadJSONL accepted a broken line")
	}
}

// sampleFileOptions make the 50 records of the docs' sample show every
// kind of record.
var sampleFileOptions = Options{Seed: 1, Updates: 0.1, Stale: 0.05, Deletes: 0.06, Tombstones: 0.06,
	Unkeyed: 0.08, EscapeNonASCII: 0.2, NoCorrelationID: 0.1}

// TestSampleFile keeps testdata/events/sample.jsonl, the sample the docs
// show, equal to Generate(50, sampleFileOptions), and holding every kind of
// record.
func TestSampleFile(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, Generate(50, sampleFileOptions)); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(sampleFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatalf("%v (go test ./internal/sample -update writes it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s is not Generate(50, sampleFileOptions); go test ./internal/sample -update rewrites it", sampleFile)
	}
	recs, err := ReadJSONL(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	evs := decodeAll(t, 384, recs)
	kinds := map[string]bool{}
	latest := map[string]int64{}
	for i, ev := range evs {
		switch {
		case ev.Tombstone:
			kinds["tombstone"] = true
		case ev.Op == event.OpDelete:
			kinds["delete"] = true
		case ev.Version < latest[ev.Key()]:
			kinds["stale"] = true
		case ev.Version > 1:
			kinds["update"] = true
		}
		latest[ev.Key()] = max(latest[ev.Key()], ev.Version)
		if recs[i].Key == nil {
			kinds["unkeyed"] = true
		}
		if len(recs[i].Headers) == 0 {
			kinds["no correlation-id"] = true
		}
		if bytes.Contains(recs[i].Value, []byte(`\u`)) {
			kinds["escaped"] = true
		}
	}
	for _, k := range []string{"tombstone", "delete", "stale", "update", "unkeyed", "no correlation-id", "escaped"} {
		if !kinds[k] {
			t.Errorf("%s shows no %s record", sampleFile, k)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Generate(100, DefaultOptions())
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func TestAppendFixed6(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{
		{0, "0"}, {0.0000004, "0"}, {-0.0000004, "0"}, {0.0000005, "0.000001"}, {0.5, "0.5"}, {-0.035013, "-0.035013"},
		{0.1234565, "0.123457"}, {0.9999996, "1"}, {-0.9999996, "-1"}, {0.000100, "0.0001"}, {1.5, "1.500000"}, {-1, "-1.000000"},
	} {
		if got := string(appendFixed6(nil, c.x)); got != c.want {
			t.Errorf("appendFixed6(%v) = %q, want %q", c.x, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 100000 {
		x := r.Float64()*2 - 1
		got := string(appendFixed6(nil, x))
		f, err := strconv.ParseFloat(got, 64)
		if err != nil || math.Abs(f-x) > 0.5e-6+1e-12 {
			t.Fatalf("appendFixed6(%v) = %q", x, got)
		}
	}
}
