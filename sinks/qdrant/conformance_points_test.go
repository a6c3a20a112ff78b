package qdrant_test

import (
	"math"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
)

func TestConformanceUpsert(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)

	// Every update consumes an operation id, per collection, from 0.
	t.Run("wait true completes with operation ids", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		for want := uint64(0); want < 3; want++ {
			res := confUpsertWait(t, c, name, confPt(int(want), []float32{1, 0}, nil))
			if res.GetStatus() != qdrant.UpdateStatus_Completed || res.OperationId == nil || res.GetOperationId() != want {
				t.Fatalf("update %d: status %v operation id %v", want, res.GetStatus(), res.OperationId)
			}
		}
		res, err := c.Delete(confCtx(t), &qdrant.DeletePoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: qdrant.NewPointsSelector(confID(0))})
		if err != nil || res.GetOperationId() != 3 {
			t.Fatalf("delete: %v, %v; want operation id 3", res, err)
		}
	})

	// The go-client leaves wait unset (false): the reply is Acknowledged
	// and the points show up later.
	t.Run("wait false is acknowledged then applied", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		var pts []*qdrant.PointStruct
		for i := 0; i < 100; i++ {
			pts = append(pts, confPt(i, []float32{1, 0}, nil))
		}
		res, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Points: pts})
		if err != nil {
			t.Fatal(err)
		}
		if res.GetStatus() != qdrant.UpdateStatus_Acknowledged {
			t.Fatalf("status %v, want Acknowledged", res.GetStatus())
		}
		confEventually(t, "100 points counted", func() bool { return confCount(t, c, name, nil) == 100 })
	})

	t.Run("request validation is synchronous with wait false", func(t *testing.T) {
		name := confNewCollection(t, c, 3, qdrant.Distance_Dot)
		_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Points: []*qdrant.PointStruct{confPt(1, []float32{1, 2}, nil)}})
		confWantStatus(t, err, codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: 3, got 2")
		_, err = c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name})
		confWantStatus(t, err, codes.InvalidArgument, "Bad request: Empty update request")
	})

	t.Run("errors", func(t *testing.T) {
		name := confNewCollection(t, c, 3, qdrant.Distance_Cosine)
		ok := []float32{1, 2, 3}
		tests := []struct {
			name   string
			points []*qdrant.PointStruct
			prefix string
		}{
			{"bad uuid", []*qdrant.PointStruct{confPt("not-a-uuid", ok, nil)}, "Unable to parse UUID: not-a-uuid"},
			{"empty id", []*qdrant.PointStruct{{Vectors: qdrant.NewVectorsDense(ok)}}, "Empty ID is not allowed"},
			{"no vectors", []*qdrant.PointStruct{{Id: confID(1)}}, "Expected some vectors"},
			{"wrong dimension", []*qdrant.PointStruct{confPt(1, []float32{1, 2}, nil)}, "Wrong input: Vector dimension error: expected dim: 3, got 2"},
			{"named vector into unnamed collection", []*qdrant.PointStruct{{Id: confID(1), Vectors: qdrant.NewVectorsMap(map[string]*qdrant.Vector{"x": qdrant.NewVectorDense(ok)})}}, "Wrong input: Not existing vector name error: x"},
			{"empty upsert", nil, "Bad request: Empty update request"},
			{"NaN payload", []*qdrant.PointStruct{{Id: confID(1), Vectors: qdrant.NewVectorsDense(ok), Payload: map[string]*qdrant.Value{"x": qdrant.NewValueDouble(math.NaN())}}}, "cannot convert to json number"},
			{"Inf payload", []*qdrant.PointStruct{{Id: confID(1), Vectors: qdrant.NewVectorsDense(ok), Payload: map[string]*qdrant.Value{"x": qdrant.NewValueDouble(math.Inf(1))}}}, "cannot convert to json number"},
			{"one bad point fails the batch", []*qdrant.PointStruct{confPt(1, ok, nil), confPt(2, []float32{1}, nil)}, "Wrong input: Vector dimension error: expected dim: 3, got 1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: tt.points})
				confWantStatus(t, err, codes.InvalidArgument, tt.prefix)
			})
		}
		if n := confCount(t, c, name, nil); n != 0 {
			t.Fatalf("rejected upserts stored %d points", n)
		}
	})

	t.Run("unnamed vector into named collection", func(t *testing.T) {
		name := confCreateCollection(t, c, &qdrant.CreateCollection{
			VectorsConfig: qdrant.NewVectorsConfigMap(map[string]*qdrant.VectorParams{"text": {Size: 2, Distance: qdrant.Distance_Dot}}),
		})
		_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: []*qdrant.PointStruct{confPt(1, []float32{1, 0}, nil)}})
		confWantStatus(t, err, codes.InvalidArgument, "Wrong input: Not existing vector name error: ")
		res := confUpsertWait(t, c, name, &qdrant.PointStruct{Id: confID(1), Vectors: qdrant.NewVectorsMap(map[string]*qdrant.Vector{"text": qdrant.NewVectorDense([]float32{3, 4})})})
		if res.GetStatus() != qdrant.UpdateStatus_Completed {
			t.Fatal(res)
		}
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID(1)}, WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("get: %v, %v", got, err)
		}
		v := got[0].GetVectors().GetVectors().GetVectors()["text"].GetDenseVector().GetData()
		confWantEqual(t, "named vector", v, []float32{3, 4})
	})

	// Ids: any accepted UUID form comes back lowercase and hyphenated; the
	// number 1 and the UUID ...0001 are different points.
	t.Run("id kinds", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		v := []float32{1, 0}
		confUpsertWait(t, c, name,
			confPt(1, v, map[string]any{"n": 1}),
			confPt("00000000-0000-0000-0000-000000000001", v, map[string]any{"n": 2}),
			confPt("0000000000000000000000000000000A", v, nil),
			confPt("{00000000-0000-0000-0000-00000000000B}", v, nil),
			confPt("urn:uuid:00000000-0000-0000-0000-00000000000c", v, nil),
			confPt("5C56C793-69F3-4FBF-87E6-C4BF54C28C26", v, nil),
			confPt(uint64(math.MaxUint64), v, nil),
		)
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name, Limit: qdrant.PtrOf(uint32(100))})
		if err != nil {
			t.Fatal(err)
		}
		confWantEqual(t, "ids", confRetrievedIDs(got), []string{
			"1", "18446744073709551615",
			"00000000-0000-0000-0000-000000000001",
			"00000000-0000-0000-0000-00000000000a",
			"00000000-0000-0000-0000-00000000000b",
			"00000000-0000-0000-0000-00000000000c",
			"5c56c793-69f3-4fbf-87e6-c4bf54c28c26",
		})
		if _, isNum := got[0].GetId().GetPointIdOptions().(*qdrant.PointId_Num); !isNum {
			t.Fatalf("numeric id came back as %v", got[0].GetId())
		}
		confWantEqual(t, "payloads of 1 and ...0001", []any{confPlain(got[0].GetPayload())["n"], confPlain(got[2].GetPayload())["n"]}, []any{int64(1), int64(2)})
		// Any form addresses the same point.
		byForm, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID("0000000000000000000000000000000a")}})
		if err != nil || len(byForm) != 1 || confIDStr(byForm[0].GetId()) != "00000000-0000-0000-0000-00000000000a" {
			t.Fatalf("get by another form: %v, %v", byForm, err)
		}
	})

	t.Run("upsert replaces the whole point", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		confUpsertWait(t, c, name, confPt(1, []float32{1, 0}, map[string]any{"a": 1, "b": 2}))
		confUpsertWait(t, c, name, confPt(1, []float32{0, 1}, map[string]any{"c": 3}))
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID(1)},
			WithPayload: qdrant.NewWithPayload(true), WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("get: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{"c": int64(3)})
		confWantVector(t, got[0].GetVectors(), []float32{0, 1})
	})

	t.Run("duplicate ids in a batch: last wins", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		confUpsertWait(t, c, name, confPt(1, []float32{1, 0}, map[string]any{"v": 1}), confPt(1, []float32{0, 1}, map[string]any{"v": 2}))
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name})
		if err != nil || len(got) != 1 {
			t.Fatalf("scroll: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{"v": int64(2)})
	})

	t.Run("payload kinds round trip", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		p := &qdrant.PointStruct{Id: confID(1), Vectors: qdrant.NewVectorsDense([]float32{1, 0}), Payload: qdrant.NewValueMap(map[string]any{
			"int": 7, "double": 1.0, "neg": -2.5, "str": "x", "bool": true, "null": nil,
			"list": []any{1, "a", 2.0, nil}, "obj": map[string]any{"in": map[string]any{"deep": 1}},
		})}
		p.Payload["empty"] = &qdrant.Value{}
		confUpsertWait(t, c, name, p)
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID(1)}, WithPayload: qdrant.NewWithPayload(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("get: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{
			"int": int64(7), "double": 1.0, "neg": -2.5, "str": "x", "bool": true, "null": nil,
			"list": []any{int64(1), "a", 2.0, nil}, "obj": map[string]any{"in": map[string]any{"deep": int64(1)}},
			"empty": nil,
		})
	})

	t.Run("cosine vectors are stored normalised", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Cosine)
		confUpsertWait(t, c, name, confPt(1, []float32{3, 4}, nil))
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID(1)}, WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("get: %v, %v", got, err)
		}
		confWantVector(t, got[0].GetVectors(), []float32{0.6, 0.8})
	})

	// update_filter: existing points are replaced only when they match;
	// new points are inserted regardless. update_mode picks insert-only or
	// update-only.
	t.Run("conditional upserts", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		v := []float32{1, 0}
		confUpsertWait(t, c, name, confPt(1, v, map[string]any{"v": 1}), confPt(2, v, map[string]any{"v": 5}))
		upsert := func(req *qdrant.UpsertPoints) {
			t.Helper()
			req.CollectionName = name
			req.Wait = qdrant.PtrOf(true)
			if _, err := c.Upsert(confCtx(t), req); err != nil {
				t.Fatal(err)
			}
		}
		// A version guard: replace only if the stored version is lower.
		upsert(&qdrant.UpsertPoints{
			Points:       []*qdrant.PointStruct{confPt(1, v, map[string]any{"v": 3}), confPt(2, v, map[string]any{"v": 3}), confPt(3, v, map[string]any{"v": 3})},
			UpdateFilter: &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewRange("v", &qdrant.Range{Lt: qdrant.PtrOf(3.0)})}},
		})
		upsert(&qdrant.UpsertPoints{
			Points:     []*qdrant.PointStruct{confPt(1, v, map[string]any{"v": 100}), confPt(4, v, map[string]any{"v": 4})},
			UpdateMode: qdrant.UpdateMode_InsertOnly.Enum(),
		})
		upsert(&qdrant.UpsertPoints{
			Points:     []*qdrant.PointStruct{confPt(2, v, map[string]any{"v": 200}), confPt(5, v, map[string]any{"v": 5})},
			UpdateMode: qdrant.UpdateMode_UpdateOnly.Enum(),
		})
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name})
		if err != nil {
			t.Fatal(err)
		}
		state := map[string]any{}
		for _, p := range got {
			state[confIDStr(p.GetId())] = confPlain(p.GetPayload())["v"]
		}
		confWantEqual(t, "state", state, map[string]any{"1": int64(3), "2": int64(200), "3": int64(3), "4": int64(4)})
	})
}

func TestConformanceDeleteGetCount(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)
	seed := func(t *testing.T) string {
		name := confNewCollection(t, c, 2, qdrant.Distance_Cosine)
		confUpsertWait(t, c, name,
			confPt(1, []float32{1, 0}, map[string]any{"t": "a"}),
			confPt(2, []float32{0, 1}, map[string]any{"t": "b"}),
			confPt(3, []float32{1, 1}, map[string]any{"t": "a"}),
			confPt("00000000-0000-0000-0000-000000000001", []float32{3, 4}, map[string]any{"t": "b"}),
		)
		return name
	}

	t.Run("delete by ids, unknown ids succeed", func(t *testing.T) {
		name := seed(t)
		res, err := c.Delete(confCtx(t), &qdrant.DeletePoints{CollectionName: name, Wait: qdrant.PtrOf(true),
			Points: qdrant.NewPointsSelector(confID(1), confID(99), confID("00000000-0000-0000-0000-000000000001"))})
		if err != nil || res.GetStatus() != qdrant.UpdateStatus_Completed {
			t.Fatalf("delete: %v, %v", res, err)
		}
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name})
		if err != nil {
			t.Fatal(err)
		}
		confWantEqual(t, "left", confRetrievedIDs(got), []string{"2", "3"})
	})

	t.Run("delete with an empty id list", func(t *testing.T) {
		name := seed(t)
		_, err := c.Delete(confCtx(t), &qdrant.DeletePoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: qdrant.NewPointsSelector()})
		confWantStatus(t, err, codes.InvalidArgument, "Bad request: Empty update request")
	})

	t.Run("delete by filter", func(t *testing.T) {
		name := seed(t)
		_, err := c.Delete(confCtx(t), &qdrant.DeletePoints{CollectionName: name, Wait: qdrant.PtrOf(true),
			Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeyword("t", "a")}})})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name})
		if err != nil {
			t.Fatal(err)
		}
		confWantEqual(t, "left", confRetrievedIDs(got), []string{"2", "00000000-0000-0000-0000-000000000001"})
	})

	t.Run("delete by an empty filter deletes everything", func(t *testing.T) {
		name := seed(t)
		_, err := c.Delete(confCtx(t), &qdrant.DeletePoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{})})
		if err != nil {
			t.Fatal(err)
		}
		if n := confCount(t, c, name, nil); n != 0 {
			t.Fatalf("%d points left", n)
		}
	})

	t.Run("get keeps request order and skips unknown ids", func(t *testing.T) {
		name := seed(t)
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name,
			Ids: []*qdrant.PointId{confID(3), confID(42), confID("00000000-0000-0000-0000-000000000001"), confID(1)}})
		if err != nil {
			t.Fatal(err)
		}
		confWantEqual(t, "ids", confRetrievedIDs(got), []string{"3", "00000000-0000-0000-0000-000000000001", "1"})
		for _, p := range got {
			if len(p.GetPayload()) != 0 || p.GetVectors() != nil {
				t.Fatalf("get returned payload %v / vectors %v without being asked", p.GetPayload(), p.GetVectors())
			}
		}
	})

	t.Run("get with payload and vectors", func(t *testing.T) {
		name := seed(t)
		got, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID("00000000-0000-0000-0000-000000000001")},
			WithPayload: qdrant.NewWithPayload(true), WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("get: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{"t": "b"})
		confWantVector(t, got[0].GetVectors(), []float32{0.6, 0.8})
	})

	t.Run("get with a bad uuid", func(t *testing.T) {
		name := seed(t)
		_, err := c.Get(confCtx(t), &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID("zzz")}})
		confWantStatus(t, err, codes.InvalidArgument, "Unable to parse UUID: zzz")
	})

	t.Run("exact count", func(t *testing.T) {
		name := seed(t)
		if n := confCount(t, c, name, nil); n != 4 {
			t.Fatalf("count %d", n)
		}
		if n := confCount(t, c, name, &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeyword("t", "b")}}); n != 2 {
			t.Fatalf("count t=b %d", n)
		}
		// Count is exact when the request does not say.
		n, err := c.Count(confCtx(t), &qdrant.CountPoints{CollectionName: name})
		if err != nil || n != 4 {
			t.Fatalf("default count %d, %v", n, err)
		}
		info, err := c.GetCollectionInfo(confCtx(t), name)
		if err != nil || info.GetPointsCount() != 4 {
			t.Fatalf("info points_count %d, %v", info.GetPointsCount(), err)
		}
	})
}
