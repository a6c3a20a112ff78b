package qdrant_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/sinks/qdrant"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

const dims = 8

// Computed independently of Go: python3 -c 'import uuid; ns = uuid.uuid5(
// uuid.NAMESPACE_URL, "https://github.com/ragstream/ragstream"); print(ns,
// uuid.uuid5(ns, "acme/doc-42#3"))'
const (
	wantNamespace = "83a89362-5614-5de5-b686-a59b47784c0c"
	wantPointID   = "0564eac1-bd8a-5bcd-a1fa-66b8578defa4"
)

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// newSink returns a set-up sink on its own collection of the target, and a
// raw client to inspect it; the collection is deleted when the test ends.
func newSink(t *testing.T, ti qdranttest.TargetInfo, mutate ...func(*qdrant.Config)) (*qdrant.Sink, *qc.Client, qdrant.Config) {
	t.Helper()
	cfg := qdrant.Config{
		Addr: ti.Addr(), APIKey: ti.APIKey, Collection: uniqueName("sink"),
		VectorSize: dims, Distance: "Cosine", Timeout: 10 * time.Second, StoreText: true,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := qdrant.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	raw := ti.Client(t)
	t.Cleanup(func() { _ = raw.DeleteCollection(context.Background(), cfg.Collection) })
	if err := s.Setup(context.Background()); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return s, raw, cfg
}

func vec(seed float32) []float32 {
	v := make([]float32, dims)
	for i := range v {
		v[i] = seed + float32(i)
	}
	return v
}

func record(tenant, id string, version int64, off int64) *pipeline.Record {
	return &pipeline.Record{
		Src: &kgo.Record{Topic: "events", Partition: 3, Offset: off},
		Event: event.Event{
			Op: event.OpUpsert, ID: id, Tenant: tenant, DocID: "doc-" + id,
			Text: "Zoë founded Müller GmbH in 東京.", HasText: true, Vector: vec(float32(version)),
			Metadata: map[string]any{"source": "crm", "year": int64(2019), "score": 1.0, "tags": []any{"a", "b"}, "nested": map[string]any{"ok": true}},
			Entities: []event.Entity{{ID: "person:zoe", Type: "Person", Name: "Zoë"}},
			Version:  version, HasVersion: true,
		},
		CorrelationID: fmt.Sprintf("events/3/%d", off),
	}
}

func upsert(r *pipeline.Record) pipeline.Write {
	return pipeline.Write{Key: r.Key(), Action: pipeline.ActionUpsert, Record: r, Version: r.Event.Version}
}

func getPoint(t *testing.T, raw *qc.Client, coll, tenant, id string) *qc.RetrievedPoint {
	t.Helper()
	pts, err := raw.Get(context.Background(), &qc.GetPoints{
		CollectionName: coll,
		Ids:            []*qc.PointId{qc.NewIDUUID(qdrant.PointID(tenant, id))},
		WithPayload:    qc.NewWithPayload(true),
		WithVectors:    qc.NewWithVectors(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) == 0 {
		return nil
	}
	return pts[0]
}

func TestPointIDIsUUIDv5OfTenantSlashID(t *testing.T) {
	if got := qdrant.Namespace.String(); got != wantNamespace {
		t.Fatalf("namespace %s, want %s", got, wantNamespace)
	}
	if got := qdrant.PointID("acme", "doc-42#3"); got != wantPointID {
		t.Fatalf("PointID(acme, doc-42#3) = %s, want %s", got, wantPointID)
	}
	a, b := qdrant.PointID("acme", "doc-42#3"), qdrant.PointID("globex", "doc-42#3")
	if a == b {
		t.Fatal("same id under two tenants must be two points")
	}
	if a != qdrant.PointID("acme", "doc-42#3") {
		t.Fatal("point id is not deterministic")
	}
	// The hand-written UUIDv5 equals the uuid package's, for short names
	// and for names longer than PointID's stack buffer, unicode included.
	long := strings.Repeat("ü", 300)
	for _, k := range [][2]string{{"", ""}, {"a", "b"}, {"tenant-ü", "chunk/1"}, {long, "x"}, {"t", long}} {
		want := uuid.NewSHA1(qdrant.Namespace, []byte(k[0]+"/"+k[1])).String()
		if got := qdrant.PointID(k[0], k[1]); got != want {
			t.Errorf("PointID(%.20q, %.20q) = %s, want %s", k[0], k[1], got, want)
		}
	}
}

func BenchmarkPointID(b *testing.B) {
	b.ReportAllocs()
	for i := range b.N {
		_ = qdrant.PointID("tenant-a", "doc-"+strconv.Itoa(i&1023))
	}
}

func TestSetupCreatesCollectionAndIndexes(t *testing.T) {
	ti := qdranttest.Target(t)
	_, raw, cfg := newSink(t, ti)
	info, err := raw.GetCollectionInfo(context.Background(), cfg.Collection)
	if err != nil {
		t.Fatal(err)
	}
	p := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if p.GetSize() != dims || p.GetDistance() != qc.Distance_Cosine {
		t.Fatalf("collection vectors %v, want size %d Cosine", p, dims)
	}
	schema := info.GetPayloadSchema()
	for _, f := range []string{"tenant", "doc_id"} {
		if schema[f].GetDataType() != qc.PayloadSchemaType_Keyword {
			t.Errorf("payload index on %s: %v, want keyword", f, schema[f])
		}
	}
	if !schema["tenant"].GetParams().GetKeywordIndexParams().GetIsTenant() {
		t.Errorf("tenant index is not tenant-aware: %v", schema["tenant"])
	}
	// A second Setup (another replica, a restart) is fine.
	s2, err := qdrant.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Setup(context.Background()); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
}

func TestSetupRefusesDifferentCollection(t *testing.T) {
	ti := qdranttest.Target(t)
	_, _, cfg := newSink(t, ti)
	tests := []struct {
		name   string
		mutate func(*qdrant.Config)
		want   string
	}{
		{"size", func(c *qdrant.Config) { c.VectorSize = dims * 2 }, "vector size is 8, config qdrant.vector_size is 16"},
		{"distance", func(c *qdrant.Config) { c.Distance = "Dot" }, "distance is Cosine, config qdrant.distance is Dot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.mutate(&c)
			s, err := qdrant.New(c)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Setup(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Setup error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestWriteUpsertsPayloadAndVector(t *testing.T) {
	ti := qdranttest.Target(t)
	s, raw, cfg := newSink(t, ti)
	r1, r2 := record("acme", "doc-42#3", 2, 10), record("globex", "doc-42#3", 5, 11)
	r2.Event.HasText = false
	if err := s.Write(context.Background(), []pipeline.Write{upsert(r1), upsert(r2)}); err != nil {
		t.Fatal(err)
	}
	p := getPoint(t, raw, cfg.Collection, "acme", "doc-42#3")
	if p == nil {
		t.Fatal("point not visible after Write returned")
	}
	pl := p.GetPayload()
	checks := map[string]any{
		"tenant": "acme", "id": "doc-42#3", "doc_id": "doc-doc-42#3", "text": "Zoë founded Müller GmbH in 東京.",
		"version": int64(2), "correlation_id": "events/3/10", "source_topic": "events",
		"source_partition": int64(3), "source_offset": int64(10),
	}
	for k, want := range checks {
		var got any
		switch v := pl[k].GetKind().(type) {
		case *qc.Value_StringValue:
			got = v.StringValue
		case *qc.Value_IntegerValue:
			got = v.IntegerValue
		}
		if got != want {
			t.Errorf("payload %s = %v (%T), want %v", k, got, got, want)
		}
	}
	md := pl["metadata"].GetStructValue().GetFields()
	if _, ok := md["year"].GetKind().(*qc.Value_IntegerValue); !ok {
		t.Errorf("metadata.year lost its integer kind: %v", md["year"])
	}
	if _, ok := md["score"].GetKind().(*qc.Value_DoubleValue); !ok {
		t.Errorf("metadata.score 1.0 lost its double kind: %v", md["score"])
	}
	if !md["nested"].GetStructValue().GetFields()["ok"].GetBoolValue() {
		t.Errorf("metadata.nested.ok lost: %v", md["nested"])
	}
	if ents := pl["entities"].GetListValue().GetValues(); len(ents) != 1 || ents[0].GetStringValue() != "person:zoe" {
		t.Errorf("entities = %v", ents)
	}
	if _, err := time.Parse(time.RFC3339Nano, pl["ingested_at"].GetStringValue()); err != nil {
		t.Errorf("ingested_at %q: %v", pl["ingested_at"].GetStringValue(), err)
	}
	// Cosine: stored normalised.
	vo := p.GetVectors().GetVector()
	got := vo.GetDense().GetData()
	if got == nil {
		//lint:ignore SA1019 older servers fill only the deprecated field
		got = vo.GetData()
	}
	if len(got) != dims {
		t.Fatalf("vector read back %v", vo)
	}
	want := vec(2)
	var n float64
	for _, x := range want {
		n += float64(x) * float64(x)
	}
	for i := range want {
		if math.Abs(float64(got[i])-float64(want[i])/math.Sqrt(n)) > 1e-5 {
			t.Fatalf("vector %v, want normalised %v", got, want)
		}
	}
	if p2 := getPoint(t, raw, cfg.Collection, "globex", "doc-42#3"); p2 == nil {
		t.Fatal("second tenant's point missing")
	} else if _, has := p2.GetPayload()["text"]; has {
		t.Error("text stored for an event without text")
	}
}

func TestWriteDeletesAndReplays(t *testing.T) {
	ti := qdranttest.Target(t)
	s, raw, cfg := newSink(t, ti)
	ctx := context.Background()
	a, b := record("acme", "a", 1, 1), record("acme", "b", 1, 2)
	if err := s.Write(ctx, []pipeline.Write{upsert(a), upsert(b)}); err != nil {
		t.Fatal(err)
	}
	// Replaying the same writes overwrites the same points.
	if err := s.Write(ctx, []pipeline.Write{upsert(a), upsert(b)}); err != nil {
		t.Fatal(err)
	}
	n, err := raw.Count(ctx, &qc.CountPoints{CollectionName: cfg.Collection, Exact: qc.PtrOf(true)})
	if err != nil || n != 2 {
		t.Fatalf("count %d (%v), want 2 after a replay", n, err)
	}
	del := pipeline.Write{Key: a.Key(), Action: pipeline.ActionDelete, Record: a}
	if err := s.Write(ctx, []pipeline.Write{del}); err != nil {
		t.Fatal(err)
	}
	if getPoint(t, raw, cfg.Collection, "acme", "a") != nil {
		t.Fatal("deleted point still there")
	}
	if getPoint(t, raw, cfg.Collection, "acme", "b") == nil {
		t.Fatal("delete removed another point")
	}
	// Deleting what is gone is fine (a redo after a crash).
	if err := s.Write(ctx, []pipeline.Write{del}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

// TestWriteSlicesLargeUpserts: a write larger than the bound of one upsert
// request goes as several requests, and every point lands, with deletes
// among the upserts; under the default bound the same write is one request.
func TestWriteSlicesLargeUpserts(t *testing.T) {
	ti := qdranttest.Target(t)
	var upserts atomic.Int64
	count := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == "/qdrant.Points/Upsert" {
			upserts.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	s, raw, cfg := newSink(t, ti, func(c *qdrant.Config) { c.DialOptions = append(c.DialOptions, count) })
	ctx := context.Background()
	gone := []*pipeline.Record{record("acme", "gone1", 1, 1), record("acme", "gone2", 1, 2)}
	if err := s.Write(ctx, []pipeline.Write{upsert(gone[0]), upsert(gone[1])}); err != nil {
		t.Fatal(err)
	}
	if n := upserts.Swap(0); n != 1 {
		t.Fatalf("two points under the default bound took %d upsert requests, want 1", n)
	}
	// A bound smaller than one point: one request per point.
	qdrant.SetSliceBytes(s, 1)
	var writes []pipeline.Write
	for i := range 5 {
		writes = append(writes, upsert(record("acme", fmt.Sprintf("p%d", i), 1, int64(10+i))))
		if i < len(gone) {
			writes = append(writes, pipeline.Write{Key: gone[i].Key(), Action: pipeline.ActionDelete, Record: gone[i]})
		}
	}
	if err := s.Write(ctx, writes); err != nil {
		t.Fatal(err)
	}
	if n := upserts.Load(); n != 5 {
		t.Fatalf("five points under a one-byte bound took %d upsert requests, want 5", n)
	}
	for i := range 5 {
		p := getPoint(t, raw, cfg.Collection, "acme", fmt.Sprintf("p%d", i))
		if p == nil || p.Payload["id"].GetStringValue() != fmt.Sprintf("p%d", i) {
			t.Fatalf("point p%d after a sliced write: %v", i, p)
		}
	}
	n, err := raw.Count(ctx, &qc.CountPoints{CollectionName: cfg.Collection, Exact: qc.PtrOf(true)})
	if err != nil || n != 5 {
		t.Fatalf("count %d (%v), want the 5 upserted points and neither deleted one", n, err)
	}
}

func TestWriteErrorsAreClassified(t *testing.T) {
	ti := qdranttest.Target(t)
	ctx := context.Background()

	t.Run("missing collection is sink down", func(t *testing.T) {
		s, raw, cfg := newSink(t, ti)
		if err := raw.DeleteCollection(ctx, cfg.Collection); err != nil {
			t.Fatal(err)
		}
		err := s.Write(ctx, []pipeline.Write{upsert(record("acme", "x", 1, 1))})
		if pipeline.ClassOf(err) != pipeline.ClassSinkDown {
			t.Fatalf("error %v has class %v, want sink_down", err, pipeline.ClassOf(err))
		}
	})
	t.Run("wrong api key is sink down", func(t *testing.T) {
		if ti.APIKey == "" {
			// A real Qdrant without a key accepts any key: nothing to refuse.
			return
		}
		_, _, cfg := newSink(t, ti)
		cfg.APIKey = "wrong-" + cfg.APIKey
		s, err := qdrant.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Write(ctx, []pipeline.Write{upsert(record("acme", "x", 1, 1))})
		if pipeline.ClassOf(err) != pipeline.ClassSinkDown {
			t.Fatalf("error %v has class %v, want sink_down", err, pipeline.ClassOf(err))
		}
	})
	t.Run("wrong dimension is permanent", func(t *testing.T) {
		s, _, _ := newSink(t, ti)
		r := record("acme", "x", 1, 1)
		r.Event.Vector = r.Event.Vector[:3]
		err := s.Write(ctx, []pipeline.Write{upsert(r)})
		if pipeline.ClassOf(err) != pipeline.ClassPermanent || !strings.Contains(err.Error(), "dimension") {
			t.Fatalf("error %v has class %v, want permanent about the dimension", err, pipeline.ClassOf(err))
		}
	})
	t.Run("unreachable is transient", func(t *testing.T) {
		s, err := qdrant.New(qdrant.Config{Addr: "127.0.0.1:1", Collection: "c", VectorSize: dims, Distance: "Cosine", Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Write(ctx, []pipeline.Write{upsert(record("acme", "x", 1, 1))})
		if err == nil || pipeline.ClassOf(err) != pipeline.ClassTransient {
			t.Fatalf("error %v has class %v, want transient", err, pipeline.ClassOf(err))
		}
	})
}

// The cases below need the stand-in's fault injection, so they start one
// directly rather than taking the target.

func standIn(t *testing.T) (*qdranttest.Server, qdranttest.TargetInfo) {
	srv := qdranttest.Start(t)
	host, port := srv.HostPort()
	return srv, qdranttest.TargetInfo{Host: host, Port: port}
}

// TestWriteIsVisibleWhenItReturns proves the sink waits for the apply: the
// stand-in delays applying wait=false writes, so a sink that forgot
// wait=true would return before the point is readable.
func TestWriteIsVisibleWhenItReturns(t *testing.T) {
	srv, ti := standIn(t)
	s, raw, cfg := newSink(t, ti)
	srv.Faults().SetApplyDelay(2 * time.Second)
	r := record("acme", "visible", 1, 1)
	if err := s.Write(context.Background(), []pipeline.Write{upsert(r)}); err != nil {
		t.Fatal(err)
	}
	if getPoint(t, raw, cfg.Collection, "acme", "visible") == nil {
		t.Fatal("point not readable right after Write returned: the upsert did not wait")
	}
}

func TestInjectedCodesAreClassified(t *testing.T) {
	srv, ti := standIn(t)
	s, _, _ := newSink(t, ti)
	tests := []struct {
		code codes.Code
		want pipeline.Class
	}{
		{codes.Unavailable, pipeline.ClassTransient},
		{codes.DeadlineExceeded, pipeline.ClassTransient},
		{codes.ResourceExhausted, pipeline.ClassTransient},
		{codes.Internal, pipeline.ClassTransient},
		{codes.InvalidArgument, pipeline.ClassPermanent},
		{codes.Unauthenticated, pipeline.ClassSinkDown},
		{codes.PermissionDenied, pipeline.ClassSinkDown},
		{codes.NotFound, pipeline.ClassSinkDown},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			srv.Faults().FailNext("Upsert", tt.code, 1)
			err := s.Write(context.Background(), []pipeline.Write{upsert(record("acme", "x", 1, 1))})
			if err == nil || pipeline.ClassOf(err) != tt.want {
				t.Fatalf("%v: error %v class %v, want %v", tt.code, err, pipeline.ClassOf(err), tt.want)
			}
		})
	}
	// Once the fault is spent the same write succeeds.
	if err := s.Write(context.Background(), []pipeline.Write{upsert(record("acme", "x", 1, 1))}); err != nil {
		t.Fatal(err)
	}
}
