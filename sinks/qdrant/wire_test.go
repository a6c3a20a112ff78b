package qdrant

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// referenceUpsert builds the request with the go-client's generated types,
// as the sink did before wire.go: the model the encoder is held to.
func referenceUpsert(collection string, writes []pipeline.Write, storeText bool, now time.Time) *qc.UpsertPoints {
	req := &qc.UpsertPoints{CollectionName: collection, Wait: qc.PtrOf(true)}
	for i := range writes {
		w := &writes[i]
		if w.Action != pipeline.ActionUpsert {
			continue
		}
		req.Points = append(req.Points, &qc.PointStruct{
			Id:      qc.NewIDUUID(PointID(w.Key.Tenant, w.Key.ID)),
			Vectors: qc.NewVectorsDense(w.Record.Event.Vector),
			Payload: referencePayload(w.Record, storeText, now),
		})
	}
	return req
}

func referencePayload(r *pipeline.Record, storeText bool, ingestedAt time.Time) map[string]*qc.Value {
	ev := &r.Event
	p := map[string]*qc.Value{
		FieldTenant:  qc.NewValueString(ev.Tenant),
		FieldID:      qc.NewValueString(ev.ID),
		FieldVersion: qc.NewValueInt(ev.Version),
	}
	if ev.DocID != "" {
		p[FieldDocID] = qc.NewValueString(ev.DocID)
	}
	if storeText && ev.HasText {
		p[FieldText] = qc.NewValueString(ev.Text)
	}
	if len(ev.Metadata) > 0 {
		p[FieldMetadata] = referenceValue(ev.Metadata)
	}
	ents := make([]*qc.Value, len(ev.Entities))
	for i := range ev.Entities {
		ents[i] = qc.NewValueString(ev.Entities[i].ID)
	}
	p[FieldEntities] = qc.NewValueList(&qc.ListValue{Values: ents})
	p[FieldCorrelationID] = qc.NewValueString(r.CorrelationID)
	p[FieldIngestedAt] = qc.NewValueString(ingestedAt.UTC().Format(time.RFC3339Nano))
	if r.Src != nil {
		p[FieldSourceTopic] = qc.NewValueString(r.Src.Topic)
		p[FieldSourcePartition] = qc.NewValueInt(int64(r.Src.Partition))
		p[FieldSourceOffset] = qc.NewValueInt(r.Src.Offset)
	}
	return p
}

func referenceValue(v any) *qc.Value {
	switch v := v.(type) {
	case nil:
		return qc.NewValueNull()
	case bool:
		return qc.NewValueBool(v)
	case int64:
		return qc.NewValueInt(v)
	case int:
		return qc.NewValueInt(int64(v))
	case float64:
		return qc.NewValueDouble(v)
	case string:
		return qc.NewValueString(v)
	case []any:
		vals := make([]*qc.Value, len(v))
		for i, e := range v {
			vals[i] = referenceValue(e)
		}
		return qc.NewValueList(&qc.ListValue{Values: vals})
	case map[string]any:
		f := make(map[string]*qc.Value, len(v))
		for k, e := range v {
			f[k] = referenceValue(e)
		}
		return qc.NewValueStruct(&qc.Struct{Fields: f})
	}
	panic(fmt.Sprintf("test value of type %T", v))
}

// wireCases are writes covering every payload shape: sample events (text,
// unicode, entities, metadata), every JSON kind in metadata at several
// depths, empty containers, long strings (multi-byte lengths), absent
// doc_id and text, a record without a Kafka source, and deletes mixed in.
func wireCases(t testing.TB) map[string][]pipeline.Write {
	t.Helper()
	const dims = 384
	fromSample := sampleWrites(t, 300)
	if len(fromSample) < 250 {
		t.Fatalf("only %d sample writes", len(fromSample))
	}
	long := string(make([]byte, 70000))
	meta := map[string]any{
		"null": nil, "t": true, "f": false, "zero": int64(0), "neg": int64(-7), "big": int64(1) << 62,
		"pi": 3.25, "negzero": math.Copysign(0, -1), "s": "ü€😀", "empty": "", "long": long,
		"list":   []any{int64(1), "two", 3.5, nil, true, []any{}, map[string]any{}},
		"nested": map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": int64(300)}}}},
		"emptyl": []any{}, "emptym": map[string]any{},
	}
	handMade := func(src bool, text bool, docID string, md map[string]any, vec []float32) pipeline.Write {
		rec := &pipeline.Record{Event: event.Event{Tenant: "t-ü", ID: "chunk/1", DocID: docID, Version: 1 << 40,
			Text: "text " + long[:200], HasText: text, Metadata: md, Vector: vec,
			Entities: []event.Entity{{ID: "e1"}, {ID: "ë2"}}}, CorrelationID: "c-1"}
		if src {
			rec.Src = &kgo.Record{Topic: "in", Partition: 2147483647, Offset: 1<<63 - 1}
		}
		return pipeline.Write{Key: rec.Key(), Action: pipeline.ActionUpsert, Version: 1, Record: rec}
	}
	vec := make([]float32, dims)
	for i := range vec {
		vec[i] = float32(i)/7 - 20
	}
	// Lengths whose varint the encoder guesses too long or too short, at
	// every level: a wide Struct of tiny values, a long List of nulls, a
	// single entry holding a long string, ints of Go's int type.
	guesses := map[string]any{
		"wide":  map[string]any{"a": int64(1), "b": true, "c": nil, "d": "", "e": int64(-1), "f": 0.5, "g": int(7), "h": int(-9), "i": "ï", "j": false},
		"nulls": make([]any, 40),
		"one":   map[string]any{"s": long[:300]},
		"deep":  map[string]any{"x": []any{map[string]any{"y": long[:20000]}, long[:130]}},
		"ключ":  []any{long[:200], int64(-1) << 63, math.MaxFloat64, math.Inf(-1)},
	}
	// Points on both sides of 16 KiB, where a point's length takes three
	// bytes instead of two, with and without metadata.
	var across []pipeline.Write
	for n := 16384 - 2600; n < 16384-1400; n += 40 {
		w := handMade(true, true, "doc", nil, vec)
		w.Record.Event.Text = long[:n]
		across = append(across, w)
		w = handMade(true, true, "doc", map[string]any{"m": long[:n]}, vec)
		w.Record.Event.HasText = false
		across = append(across, w)
	}
	return map[string][]pipeline.Write{
		"sample":          fromSample,
		"wrong_guesses":   {handMade(true, true, "doc", guesses, vec)},
		"across_16k":      across,
		"empty_metadata":  {handMade(true, true, "doc", map[string]any{}, vec)},
		"outgrows_buffer": {handMade(true, true, "doc", map[string]any{"big": []any{long, long, long, long, long}}, vec), handMade(false, false, "", guesses, vec)},
		"every_kind":      {handMade(true, true, "doc", meta, vec)},
		"no_src_no_text":  {handMade(false, false, "", nil, vec[:1])},
		"long_text":       {handMade(true, true, long, map[string]any{"k": long}, vec)},
		"no_entities":     {{Key: pipeline.Key{Tenant: "a", ID: "b"}, Action: pipeline.ActionUpsert, Record: &pipeline.Record{Event: event.Event{Tenant: "a", ID: "b", Vector: vec}}}},
		"only_deletes":    {{Key: pipeline.Key{Tenant: "a", ID: "b"}, Action: pipeline.ActionDelete, Record: &pipeline.Record{}}},
		"mixed_with_data": append([]pipeline.Write{{Key: pipeline.Key{Tenant: "a", ID: "d"}, Action: pipeline.ActionDelete, Record: &pipeline.Record{}}}, handMade(true, true, "x", meta, vec)),
	}
}

func TestUpsertWireEqualsProto(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 4, 5, 678901234, time.FixedZone("x", 3600))
	for name, writes := range wireCases(t) {
		for i, storeText := range []bool{true, false} {
			// Every other case in a pooled buffer: a reused buffer must not
			// leak bytes of an earlier request.
			var pool mem.BufferPool
			if i == 1 {
				pool = mem.DefaultBufferPool()
			}
			t.Run(fmt.Sprintf("%s/text=%v", name, storeText), func(t *testing.T) {
				want := referenceUpsert("coll_ü", writes, storeText, now)
				req, n, err := encodeUpsert("coll_ü", writes, storeText, now, pool)
				b := *req.buf
				if err != nil {
					t.Fatal(err)
				}
				if n != len(want.Points) {
					t.Fatalf("encoded %d points, want %d", n, len(want.Points))
				}
				var got qc.UpsertPoints
				if err := proto.Unmarshal(b, &got); err != nil {
					t.Fatalf("the encoding does not parse as qdrant.UpsertPoints: %v", err)
				}
				if !proto.Equal(&got, want) {
					for i := range want.Points {
						if i < len(got.Points) && !proto.Equal(got.Points[i], want.Points[i]) {
							t.Fatalf("point %d differs:\n got %v\nwant %v", i, got.Points[i], want.Points[i])
						}
					}
					t.Fatalf("request differs:\n got %v\nwant %v", &got, want)
				}
				// Same length as the generated marshaller's: no field is
				// written twice and none is missing.
				if ref, _ := proto.Marshal(want); len(ref) != len(b) {
					t.Errorf("encoding is %d bytes, proto.Marshal %d", len(b), len(ref))
				}
			})
		}
	}
}

func TestUpsertWireRefusesUnknownValueType(t *testing.T) {
	rec := &pipeline.Record{Event: event.Event{Tenant: "a", ID: "b", Vector: []float32{1},
		Metadata: map[string]any{"k": []any{struct{}{}}}}}
	_, _, err := encodeUpsert("c", []pipeline.Write{{Key: rec.Key(), Action: pipeline.ActionUpsert, Record: rec}}, true, time.Now(), nil)
	if err == nil || !strings.Contains(err.Error(), `payload "metadata": value of an unsupported type`) {
		t.Fatalf("err = %v, want the unsupported metadata value named", err)
	}
}

// ownerPool is a buffer pool that fails the test when a buffer it holds is
// still in use: handed out in a request, or put back twice.
type ownerPool struct {
	t    *testing.T
	held map[*[]byte]bool // true: in the pool
}

func (p *ownerPool) Get(n int) *[]byte {
	for buf, free := range p.held {
		if free && cap(*buf) >= n {
			p.held[buf] = false
			*buf = (*buf)[:n]
			return buf
		}
	}
	buf := make([]byte, n)
	p.held[&buf] = false
	return &buf
}

func (p *ownerPool) Put(buf *[]byte) {
	if p.held[buf] {
		p.t.Errorf("buffer %p put back twice", buf)
	}
	p.held[buf] = true
}

func (p *ownerPool) out() int {
	n := 0
	for _, free := range p.held {
		if !free {
			n++
		}
	}
	return n
}

// TestUpsertWireBufferOwnership holds the encoder to the pool's contract:
// the request's buffer is the one buffer it keeps, whether the request fits
// the room sized for it or outgrows it, and none when it fails.
func TestUpsertWireBufferOwnership(t *testing.T) {
	cases := wireCases(t)
	bad := &pipeline.Record{Event: event.Event{Tenant: "a", ID: "b", Vector: []float32{1},
		Metadata: map[string]any{"k": []any{int64(1), map[string]any{"x": struct{}{}}}}}}
	for _, tc := range []struct {
		name    string
		writes  []pipeline.Write
		wantErr bool
	}{
		{"fits", cases["sample"], false},
		{"outgrows", cases["outgrows_buffer"], false},
		{"fails", append(cases["every_kind"], pipeline.Write{Key: bad.Key(), Action: pipeline.ActionUpsert, Record: bad}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := &ownerPool{t: t, held: map[*[]byte]bool{}}
			for range 3 { // later rounds reuse the pool's buffers
				req, _, err := encodeUpsert("c", tc.writes, true, time.Now(), pool)
				if tc.wantErr {
					if err == nil {
						t.Fatal("no error for a value of an unsupported type")
					}
					if n := pool.out(); n != 0 {
						t.Fatalf("%d buffers kept after the error, want 0", n)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if pool.held[req.buf] {
					t.Fatal("the request's buffer is back in the pool")
				}
				if n := pool.out(); n > 1 {
					t.Fatalf("%d buffers kept, want the request's alone", n)
				}
				var got qc.UpsertPoints
				if err := proto.Unmarshal(*req.buf, &got); err != nil {
					t.Fatal(err)
				}
				mem.NewBuffer(req.buf, req.pool).Free()
				if n := pool.out(); n != 0 {
					t.Fatalf("%d buffers kept once gRPC freed the request, want 0", n)
				}
			}
		})
	}
}

// TestCloseLen writes a length in front of bodies whose varint is shorter,
// as long as, and longer than the room reserved for it.
func TestCloseLen(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 1 << 21} {
		for w := 1; w <= 4; w++ {
			body := make([]byte, n)
			for i := range body {
				body[i] = byte(i*7 + 1)
			}
			b, at := openLen([]byte("head"), w)
			b = closeLen(append(b, body...), at, w)
			want := protowire.AppendBytes([]byte("head"), body)
			if string(b) != string(want) {
				t.Fatalf("body of %d bytes, room for %d: got %d bytes, want %d (%x...)", n, w, len(b), len(want), b[:min(len(b), 8)])
			}
		}
	}
}

// TestAppendFloats holds the copy of a little-endian machine's floats to
// the element-wise encoding every machine can run, bit for bit.
func TestAppendFloats(t *testing.T) {
	vec := []float32{0, float32(math.Copysign(0, -1)), 1, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), 3.14159}
	for n := range len(vec) + 1 {
		got := appendFloats([]byte{9}, vec[:n])
		want := appendFloatsPortable([]byte{9}, vec[:n])
		if string(got) != string(want) {
			t.Fatalf("%d floats: got %x, want %x", n, got, want)
		}
		for i := range n {
			if bits := binary.LittleEndian.Uint32(want[1+4*i:]); bits != math.Float32bits(vec[i]) {
				t.Fatalf("float %d: bits %#x, want %#x", i, bits, math.Float32bits(vec[i]))
			}
		}
	}
}

func BenchmarkUpsertEncode(b *testing.B) {
	writes := wireCases(b)["sample"]
	now := time.Now()
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			req, _, err := encodeUpsert("c", writes, true, now, mem.DefaultBufferPool())
			if err != nil {
				b.Fatal(err)
			}
			mem.NewBuffer(req.buf, req.pool).Free() // as gRPC does once it has sent it
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes))/1e3, "us/point")
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := proto.Marshal(referenceUpsert("c", writes, true, now)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(writes))/1e3, "us/point")
	})
}
