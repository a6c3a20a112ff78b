package qdrant_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
)

func TestConformanceCollections(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)

	t.Run("lifecycle", func(t *testing.T) {
		ctx := confCtx(t)
		name := confUniqueName(t)
		exists, err := c.CollectionExists(ctx, name)
		if err != nil || exists {
			t.Fatalf("exists before create = %v, %v", exists, err)
		}
		err = c.CreateCollection(ctx, &qdrant.CreateCollection{
			CollectionName: name,
			VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 384, Distance: qdrant.Distance_Cosine}),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.DeleteCollection(confCtx(t), name) })
		if exists, err = c.CollectionExists(ctx, name); err != nil || !exists {
			t.Fatalf("exists after create = %v, %v", exists, err)
		}
		info, err := c.GetCollectionInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		p := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
		if p.GetSize() != 384 || p.GetDistance() != qdrant.Distance_Cosine {
			t.Fatalf("vectors config %v", info.GetConfig().GetParams().GetVectorsConfig())
		}
		if info.GetPointsCount() != 0 || info.GetStatus() != qdrant.CollectionStatus_Green {
			t.Fatalf("fresh collection: points %d status %v", info.GetPointsCount(), info.GetStatus())
		}
		names, err := c.ListCollections(ctx)
		if err != nil || !slices.Contains(names, name) {
			t.Fatalf("list = %v, %v; want it to hold %s", names, err, name)
		}
		if err := c.DeleteCollection(ctx, name); err != nil {
			t.Fatal(err)
		}
		if exists, err = c.CollectionExists(ctx, name); err != nil || exists {
			t.Fatalf("exists after delete = %v, %v", exists, err)
		}
		// Deleting a missing collection answers result=false, which the
		// client reports as an error.
		if err := c.DeleteCollection(ctx, name); err == nil {
			t.Fatal("deleting a missing collection: no error")
		}
		resp, err := c.GetCollectionsClient().Delete(ctx, &qdrant.DeleteCollection{CollectionName: name})
		if err != nil || resp.GetResult() {
			t.Fatalf("raw delete of a missing collection = %v, %v; want result false", resp, err)
		}
	})

	t.Run("create existing", func(t *testing.T) {
		name := confNewCollection(t, c, 4, qdrant.Distance_Dot)
		err := c.CreateCollection(confCtx(t), &qdrant.CreateCollection{
			CollectionName: name,
			VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 4, Distance: qdrant.Distance_Dot}),
		})
		confWantStatus(t, err, codes.AlreadyExists, fmt.Sprintf("Wrong input: Collection `%s` already exists!", name))
	})

	for _, d := range []qdrant.Distance{qdrant.Distance_Cosine, qdrant.Distance_Dot, qdrant.Distance_Euclid, qdrant.Distance_Manhattan} {
		t.Run("distance "+d.String(), func(t *testing.T) {
			name := confNewCollection(t, c, 7, d)
			info, err := c.GetCollectionInfo(confCtx(t), name)
			if err != nil {
				t.Fatal(err)
			}
			p := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
			if p.GetSize() != 7 || p.GetDistance() != d {
				t.Fatalf("size %d distance %v", p.GetSize(), p.GetDistance())
			}
		})
	}

	t.Run("named vectors", func(t *testing.T) {
		name := confCreateCollection(t, c, &qdrant.CreateCollection{
			VectorsConfig: qdrant.NewVectorsConfigMap(map[string]*qdrant.VectorParams{
				"text":  {Size: 3, Distance: qdrant.Distance_Cosine},
				"title": {Size: 2, Distance: qdrant.Distance_Dot},
			}),
		})
		info, err := c.GetCollectionInfo(confCtx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		m := info.GetConfig().GetParams().GetVectorsConfig().GetParamsMap().GetMap()
		if m["text"].GetSize() != 3 || m["text"].GetDistance() != qdrant.Distance_Cosine ||
			m["title"].GetSize() != 2 || m["title"].GetDistance() != qdrant.Distance_Dot {
			t.Fatalf("params map %v", m)
		}
	})

	// The sink's start-up: a tenant-aware keyword index on tenant, keyword
	// on doc_id, integer on version.
	t.Run("payload indexes", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Cosine)
		ctx := confCtx(t)
		indexes := []*qdrant.CreateFieldIndexCollection{
			{FieldName: "tenant", FieldType: qdrant.FieldType_FieldTypeKeyword.Enum(),
				FieldIndexParams: qdrant.NewPayloadIndexParamsKeyword(&qdrant.KeywordIndexParams{IsTenant: qdrant.PtrOf(true)})},
			{FieldName: "doc_id", FieldType: qdrant.FieldType_FieldTypeKeyword.Enum()},
			{FieldName: "version", FieldType: qdrant.FieldType_FieldTypeInteger.Enum()},
		}
		for _, ix := range indexes {
			ix.CollectionName = name
			ix.Wait = qdrant.PtrOf(true)
			res, err := c.CreateFieldIndex(ctx, ix)
			if err != nil {
				t.Fatalf("index %s: %v", ix.FieldName, err)
			}
			if res.GetStatus() != qdrant.UpdateStatus_Completed {
				t.Fatalf("index %s: status %v", ix.FieldName, res.GetStatus())
			}
		}
		info, err := c.GetCollectionInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		s := info.GetPayloadSchema()
		if s["tenant"].GetDataType() != qdrant.PayloadSchemaType_Keyword ||
			!s["tenant"].GetParams().GetKeywordIndexParams().GetIsTenant() {
			t.Fatalf("tenant index %v", s["tenant"])
		}
		if s["doc_id"].GetDataType() != qdrant.PayloadSchemaType_Keyword || s["version"].GetDataType() != qdrant.PayloadSchemaType_Integer {
			t.Fatalf("payload schema %v", s)
		}
		// Indexes do not change what filters match.
		confUpsertWait(t, c, name, confPt(1, []float32{1, 0}, map[string]any{"tenant": "a", "version": 3}),
			confPt(2, []float32{1, 0}, map[string]any{"tenant": "b", "version": 3.0}))
		if n := confCount(t, c, name, &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeyword("tenant", "a")}}); n != 1 {
			t.Fatalf("tenant=a counts %d", n)
		}
		if n := confCount(t, c, name, &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchInt("version", 3)}}); n != 1 {
			t.Fatalf("version=3 counts %d (a double 3.0 must not match)", n)
		}
	})

	t.Run("missing collection", func(t *testing.T) {
		ctx := confCtx(t)
		name := confUniqueName(t)
		want := fmt.Sprintf("Not found: Collection `%s` doesn't exist!", name)
		_, err := c.GetCollectionInfo(ctx, name)
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Upsert(ctx, &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: []*qdrant.PointStruct{confPt(1, []float32{1}, nil)}})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Upsert(ctx, &qdrant.UpsertPoints{CollectionName: name, Points: []*qdrant.PointStruct{confPt(1, []float32{1}, nil)}})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Delete(ctx, &qdrant.DeletePoints{CollectionName: name, Points: qdrant.NewPointsSelector(confID(1))})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Get(ctx, &qdrant.GetPoints{CollectionName: name, Ids: []*qdrant.PointId{confID(1)}})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Query(ctx, &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1)})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Scroll(ctx, &qdrant.ScrollPoints{CollectionName: name})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.Count(ctx, &qdrant.CountPoints{CollectionName: name})
		confWantStatus(t, err, codes.NotFound, want)
		_, err = c.CreateFieldIndex(ctx, &qdrant.CreateFieldIndexCollection{CollectionName: name, FieldName: "tenant", FieldType: qdrant.FieldType_FieldTypeKeyword.Enum()})
		confWantStatus(t, err, codes.NotFound, want)
	})
}
