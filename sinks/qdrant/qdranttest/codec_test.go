package qdranttest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/protobuf/proto"
)

func randValue(r *rand.Rand, depth int) *qdrant.Value {
	switch r.IntN(9) {
	case 0:
		return qdrant.NewValueNull()
	case 1:
		return qdrant.NewValueDouble(r.NormFloat64())
	case 2:
		return qdrant.NewValueInt(r.Int64() - math.MaxInt64/2)
	case 3:
		return qdrant.NewValueString(fmt.Sprint("s", r.IntN(100), "é"))
	case 4:
		return qdrant.NewValueBool(r.IntN(2) == 0)
	case 5:
		if depth < 3 {
			m := map[string]*qdrant.Value{}
			for i := r.IntN(3); i > 0; i-- {
				m[fmt.Sprint("k", i)] = randValue(r, depth+1)
			}
			return qdrant.NewValueStruct(&qdrant.Struct{Fields: m})
		}
	case 6:
		if depth < 3 {
			var l []*qdrant.Value
			for i := r.IntN(3); i > 0; i-- {
				l = append(l, randValue(r, depth+1))
			}
			return qdrant.NewValueFromList(l...)
		}
	case 7:
		return &qdrant.Value{}
	}
	return qdrant.NewValueString("")
}

func randUpsert(r *rand.Rand) *qdrant.UpsertPoints {
	m := &qdrant.UpsertPoints{CollectionName: fmt.Sprint("c", r.IntN(9))}
	if r.IntN(2) == 0 {
		m.Wait = proto.Bool(r.IntN(2) == 0)
	}
	if r.IntN(3) == 0 {
		m.UpdateMode = qdrant.UpdateMode(r.IntN(3)).Enum()
	}
	if r.IntN(5) == 0 {
		m.UpdateFilter = &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeyword("a", "b")}}
	}
	for i := r.IntN(5); i > 0; i-- {
		p := &qdrant.PointStruct{}
		switch r.IntN(4) {
		case 0:
			p.Id = qdrant.NewIDNum(r.Uint64())
		case 1:
			p.Id = qdrant.NewIDUUID("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")
		case 2:
			p.Id = &qdrant.PointId{}
		}
		v := make([]float32, r.IntN(5))
		for j := range v {
			v[j] = r.Float32()
		}
		switch r.IntN(5) {
		case 0:
			p.Vectors = qdrant.NewVectorsDense(v)
		case 1:
			p.Vectors = &qdrant.Vectors{VectorsOptions: &qdrant.Vectors_Vector{Vector: &qdrant.Vector{Data: v}}}
		case 2:
			p.Vectors = qdrant.NewVectorsMap(map[string]*qdrant.Vector{"x": qdrant.NewVectorDense(v)})
		case 3:
			p.Vectors = &qdrant.Vectors{}
		}
		if r.IntN(3) > 0 {
			p.Payload = map[string]*qdrant.Value{}
			for j := r.IntN(4); j > 0; j-- {
				p.Payload[fmt.Sprint("f", j)] = randValue(r, 0)
			}
		}
		m.Points = append(m.Points, p)
	}
	return m
}

// The fast decoder must give exactly what proto.Unmarshal gives.
func TestCodecMatchesProtoUnmarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for i := 0; i < 5000; i++ {
		want := randUpsert(r)
		raw, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var probe qdrant.UpsertPoints
		if fastUpsert(raw, &probe) {
			fast++
		}
		var got qdrant.UpsertPoints
		if err := (codec{}).Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("case %d:\n got  %v\n want %v", i, &got, want)
		}
	}
	if fast < 1000 {
		t.Fatalf("only %d of 5000 messages took the fast path", fast)
	}
	// Bad UTF-8 is refused as proto.Unmarshal refuses it.
	raw, _ := proto.Marshal(&qdrant.UpsertPoints{CollectionName: "ok"})
	raw = append(raw, 0x0a, 0x01, 0xff) // field 1 again, invalid UTF-8
	if err := (codec{}).Unmarshal(raw, &qdrant.UpsertPoints{}); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
}
