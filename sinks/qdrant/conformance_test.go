package qdrant_test

// The Qdrant conformance suite: every rule of qdrant-standin.md and every
// call the sink makes, written once against the go-client and run against
// the target qdranttest.Target picks — the stand-in, or the real Qdrant at
// RAGSTREAM_TEST_QDRANT_ADDR. Cases reach the target only through the
// go-client and an address (conformance_imports_test.go checks that), each
// creates its own uniquely named collection and deletes it, and no case
// compares the version string.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// confTarget is the server under test, as an address.
type confTarget struct {
	host   string
	port   int
	apiKey string
	real   bool
}

func newConfTarget(t *testing.T) confTarget {
	t.Helper()
	ti := qdranttest.Target(t)
	return confTarget{host: ti.Host, port: ti.Port, apiKey: ti.APIKey, real: ti.Real}
}

func (ct confTarget) addr() string { return net.JoinHostPort(ct.host, strconv.Itoa(ct.port)) }

// client connects with the target's key, or with key when one is given
// ("-" for none).
func (ct confTarget) client(t *testing.T, key ...string) *qdrant.Client {
	t.Helper()
	k := ct.apiKey
	if len(key) > 0 {
		k = key[0]
		if k == "-" {
			k = ""
		}
	}
	c, err := qdrant.NewClient(&qdrant.Config{Host: ct.host, Port: ct.port, APIKey: k, SkipCompatibilityCheck: true, PoolSize: 1})
	if err != nil {
		t.Fatalf("client for %s:%d: %v", ct.host, ct.port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func confCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// uniqueName returns conf_<case>_<random>, safe on a shared server.
func confUniqueName(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(base) > 60 {
		base = base[len(base)-60:]
	}
	return "conf_" + base + "_" + hex.EncodeToString(b)
}

// newCollection creates a collection with one unnamed vector, deleted when
// the case ends.
func confNewCollection(t *testing.T, c *qdrant.Client, size uint64, dist qdrant.Distance) string {
	t.Helper()
	return confCreateCollection(t, c, &qdrant.CreateCollection{
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: size, Distance: dist}),
	})
}

func confCreateCollection(t *testing.T, c *qdrant.Client, req *qdrant.CreateCollection) string {
	t.Helper()
	name := confUniqueName(t)
	req.CollectionName = name
	if err := c.CreateCollection(confCtx(t), req); err != nil {
		t.Fatalf("create collection %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.DeleteCollection(ctx, name)
	})
	return name
}

// id builds a point id: a uint64/int is numeric, a string a UUID.
func confID(v any) *qdrant.PointId {
	switch x := v.(type) {
	case int:
		return qdrant.NewIDNum(uint64(x))
	case uint64:
		return qdrant.NewIDNum(x)
	case string:
		return qdrant.NewIDUUID(x)
	}
	panic(fmt.Sprintf("bad id %T", v))
}

func confPt(idv any, vec []float32, payload map[string]any) *qdrant.PointStruct {
	p := &qdrant.PointStruct{Id: confID(idv), Vectors: qdrant.NewVectorsDense(vec)}
	if payload != nil {
		p.Payload = qdrant.NewValueMap(payload)
	}
	return p
}

func confUpsertWait(t *testing.T, c *qdrant.Client, name string, points ...*qdrant.PointStruct) *qdrant.UpdateResult {
	t.Helper()
	res, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: points})
	if err != nil {
		t.Fatalf("upsert %d points: %v", len(points), err)
	}
	return res
}

// idStr formats an id as the tests write them: a number, or a UUID.
func confIDStr(p *qdrant.PointId) string {
	if u, ok := p.GetPointIdOptions().(*qdrant.PointId_Uuid); ok {
		return u.Uuid
	}
	return fmt.Sprint(p.GetNum())
}

func confRetrievedIDs(ps []*qdrant.RetrievedPoint) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, confIDStr(p.GetId()))
	}
	return out
}

func confScoredIDs(ps []*qdrant.ScoredPoint) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, confIDStr(p.GetId()))
	}
	return out
}

// plain turns a payload into Go values keeping the kind: int64 for an
// IntegerValue, float64 for a DoubleValue, nil for null.
func confPlain(m map[string]*qdrant.Value) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = confPlainValue(v)
	}
	return out
}

func confPlainValue(v *qdrant.Value) any {
	switch k := v.GetKind().(type) {
	case *qdrant.Value_NullValue:
		return nil
	case *qdrant.Value_IntegerValue:
		return k.IntegerValue
	case *qdrant.Value_DoubleValue:
		return k.DoubleValue
	case *qdrant.Value_StringValue:
		return k.StringValue
	case *qdrant.Value_BoolValue:
		return k.BoolValue
	case *qdrant.Value_StructValue:
		return confPlain(k.StructValue.GetFields())
	case *qdrant.Value_ListValue:
		l := []any{}
		for _, e := range k.ListValue.GetValues() {
			l = append(l, confPlainValue(e))
		}
		return l
	}
	return "<no kind>"
}

func confWantEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

// wantStatus checks a gRPC status code and message prefix.
func confWantStatus(t *testing.T, err error, code codes.Code, prefix string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %q, got no error", code, prefix)
	}
	// The go-client wraps the gRPC error; take the status from the wrapped one.
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		t.Fatalf("want %s %q, got a non-gRPC error %v", code, prefix, err)
	}
	st := se.GRPCStatus()
	if st.Code() != code || !strings.HasPrefix(st.Message(), prefix) {
		t.Fatalf("want %s %q..., got %s %q", code, prefix, st.Code(), st.Message())
	}
}

// wantScores checks ids in order and scores within 1e-5.
func confWantScores(t *testing.T, got []*qdrant.ScoredPoint, ids []string, scores []float32) {
	t.Helper()
	confWantEqual(t, "ids", confScoredIDs(got), ids)
	for i, p := range got {
		if math.Abs(float64(p.GetScore()-scores[i])) > 1e-5 {
			t.Fatalf("score of %s = %v, want %v", ids[i], p.GetScore(), scores[i])
		}
	}
}

func confWantVector(t *testing.T, got *qdrant.VectorsOutput, want []float32) {
	t.Helper()
	v := got.GetVector().GetDenseVector().GetData()
	if len(v) != len(want) {
		t.Fatalf("vector %v, want %v", v, want)
	}
	for i := range v {
		if math.Abs(float64(v[i]-want[i])) > 1e-5 {
			t.Fatalf("vector %v, want %v", v, want)
		}
	}
}

// eventually polls cond until it holds or 10 s pass.
func confEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func confCount(t *testing.T, c *qdrant.Client, name string, f *qdrant.Filter) uint64 {
	t.Helper()
	n, err := c.Count(confCtx(t), &qdrant.CountPoints{CollectionName: name, Filter: f, Exact: qdrant.PtrOf(true)})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}
