package qdrant_test

import (
	"fmt"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
)

// queryPoints are scored against the query [1, 0]; the expected scores were
// checked against Qdrant's engine (qdrant-edge).
var queryPoints = map[int][]float32{1: {1, 0}, 2: {2, 1}, 3: {3, 3}, 4: {-1, 2}, 5: {0, -2}}

func seedQuery(t *testing.T, c *qdrant.Client, d qdrant.Distance) string {
	t.Helper()
	name := confNewCollection(t, c, 2, d)
	var pts []*qdrant.PointStruct
	for i := 1; i <= 5; i++ {
		pts = append(pts, confPt(i, queryPoints[i], map[string]any{"i": i, "odd": i%2 == 1, "s": fmt.Sprint("p", i)}))
	}
	confUpsertWait(t, c, name, pts...)
	return name
}

func TestConformanceQuery(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)

	metrics := []struct {
		dist      qdrant.Distance
		ids       []string
		scores    []float32
		threshold float32
		kept      []string
	}{
		// Similarities rank high first and keep score > threshold.
		{qdrant.Distance_Cosine, []string{"1", "2", "3", "5", "4"}, []float32{1, 0.894427, 0.707107, 0, -0.447214}, 0.8, []string{"1", "2"}},
		{qdrant.Distance_Dot, []string{"3", "2", "1", "5", "4"}, []float32{3, 2, 1, 0, -1}, 2, []string{"3"}},
		// Distances rank low first and keep score < threshold.
		{qdrant.Distance_Euclid, []string{"1", "2", "5", "4", "3"}, []float32{0, 1.414214, 2.236068, 2.828427, 3.605551}, 2.5, []string{"1", "2", "5"}},
		{qdrant.Distance_Manhattan, []string{"1", "2", "5", "4", "3"}, []float32{0, 2, 3, 4, 5}, 3, []string{"1", "2"}},
	}
	for _, m := range metrics {
		t.Run("scores "+m.dist.String(), func(t *testing.T) {
			name := seedQuery(t, c, m.dist)
			got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			confWantScores(t, got, m.ids, m.scores)
			got, err = c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), ScoreThreshold: qdrant.PtrOf(m.threshold)})
			if err != nil {
				t.Fatal(err)
			}
			confWantEqual(t, "kept by the threshold", confScoredIDs(got), m.kept)
		})
	}

	t.Run("threshold equal to a score drops it", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Cosine)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), ScoreThreshold: qdrant.PtrOf(float32(1))})
		if err != nil {
			t.Fatal(err)
		}
		confWantEqual(t, "ids", confScoredIDs(got), []string{})
	})

	t.Run("cosine query vector is normalised", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Cosine)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(10, 0), Limit: qdrant.PtrOf(uint64(2))})
		if err != nil {
			t.Fatal(err)
		}
		confWantScores(t, got, []string{"1", "2"}, []float32{1, 0.894427})
	})

	t.Run("offset skips ranked results", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Dot)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Limit: qdrant.PtrOf(uint64(2)), Offset: qdrant.PtrOf(uint64(1))})
		if err != nil {
			t.Fatal(err)
		}
		confWantScores(t, got, []string{"2", "1"}, []float32{2, 1})
	})

	t.Run("defaults: limit 10, no payload, no vectors", func(t *testing.T) {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		var pts []*qdrant.PointStruct
		for i := 1; i <= 12; i++ {
			pts = append(pts, confPt(i, []float32{float32(i), 0}, map[string]any{"i": i}))
		}
		confUpsertWait(t, c, name, pts...)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 || confIDStr(got[0].GetId()) != "12" {
			t.Fatalf("got %v", confScoredIDs(got))
		}
		for _, p := range got {
			if len(p.GetPayload()) != 0 || p.GetVectors() != nil {
				t.Fatalf("query returned payload %v / vectors %v without being asked", p.GetPayload(), p.GetVectors())
			}
		}
	})

	t.Run("with payload and vectors", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Cosine)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Limit: qdrant.PtrOf(uint64(1)),
			WithPayload: qdrant.NewWithPayload(true), WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("query: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{"i": int64(1), "odd": true, "s": "p1"})
		confWantVector(t, got[0].GetVectors(), []float32{1, 0})
		got, err = c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Limit: qdrant.PtrOf(uint64(1)),
			WithPayload: qdrant.NewWithPayloadInclude("i", "s")})
		if err != nil || len(got) != 1 {
			t.Fatalf("query: %v, %v", got, err)
		}
		confWantEqual(t, "included payload", confPlain(got[0].GetPayload()), map[string]any{"i": int64(1), "s": "p1"})
		got, err = c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Limit: qdrant.PtrOf(uint64(1)),
			WithPayload: qdrant.NewWithPayloadExclude("i")})
		if err != nil || len(got) != 1 {
			t.Fatalf("query: %v, %v", got, err)
		}
		confWantEqual(t, "payload less i", confPlain(got[0].GetPayload()), map[string]any{"odd": true, "s": "p1"})
	})

	t.Run("filtered query", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Dot)
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0),
			Filter: &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchBool("odd", true)}}})
		if err != nil {
			t.Fatal(err)
		}
		confWantScores(t, got, []string{"3", "1", "5"}, []float32{3, 1, 0})
	})

	t.Run("no query lists by id with score 1", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Dot)
		confUpsertWait(t, c, name, confPt("00000000-0000-0000-0000-000000000001", []float32{9, 9}, nil))
		got, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name})
		if err != nil {
			t.Fatal(err)
		}
		confWantScores(t, got, []string{"1", "2", "3", "4", "5", "00000000-0000-0000-0000-000000000001"}, []float32{1, 1, 1, 1, 1, 1})
	})

	t.Run("errors", func(t *testing.T) {
		name := seedQuery(t, c, qdrant.Distance_Dot)
		_, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Limit: qdrant.PtrOf(uint64(0))})
		confWantStatus(t, err, codes.InvalidArgument, "Validation error in body: [limit: value 0 invalid, must be 1 or larger]")
		_, err = c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0, 0)})
		confWantStatus(t, err, codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: 2, got 3")
		_, err = c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0), Using: qdrant.PtrOf("nope")})
		confWantStatus(t, err, codes.InvalidArgument, "Wrong input: Not existing vector name error: nope")
	})
}

func TestConformanceScroll(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)
	const u1, u2 = "00000000-0000-0000-0000-000000000001", "ffffffff-0000-0000-0000-000000000000"
	seed := func(t *testing.T) string {
		name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
		pts := []*qdrant.PointStruct{confPt(u2, []float32{1, 0}, map[string]any{"even": false}), confPt(u1, []float32{1, 0}, map[string]any{"even": false})}
		for i := 12; i >= 1; i-- {
			pts = append(pts, confPt(i, []float32{1, 0}, map[string]any{"even": i%2 == 0}))
		}
		confUpsertWait(t, c, name, pts...)
		return name
	}
	scroll := func(t *testing.T, req *qdrant.ScrollPoints) ([]string, string) {
		t.Helper()
		got, next, err := c.ScrollAndOffset(confCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		n := "<nil>"
		if next != nil {
			n = confIDStr(next)
		}
		return confRetrievedIDs(got), n
	}

	t.Run("pages in id order, numbers before uuids", func(t *testing.T) {
		name := seed(t)
		ids, next := scroll(t, &qdrant.ScrollPoints{CollectionName: name})
		confWantEqual(t, "page 1", ids, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"})
		confWantEqual(t, "next", next, "11")
		ids, next = scroll(t, &qdrant.ScrollPoints{CollectionName: name, Offset: confID(11)})
		confWantEqual(t, "page 2", ids, []string{"11", "12", u1, u2})
		confWantEqual(t, "next", next, "<nil>")
	})

	t.Run("offset is inclusive and need not exist", func(t *testing.T) {
		name := seed(t)
		ids, next := scroll(t, &qdrant.ScrollPoints{CollectionName: name, Offset: confID(5), Limit: qdrant.PtrOf(uint32(2))})
		confWantEqual(t, "page", ids, []string{"5", "6"})
		confWantEqual(t, "next", next, "7")
		ids, _ = scroll(t, &qdrant.ScrollPoints{CollectionName: name, Offset: confID(0), Limit: qdrant.PtrOf(uint32(1))})
		confWantEqual(t, "from 0", ids, []string{"1"})
		ids, next = scroll(t, &qdrant.ScrollPoints{CollectionName: name, Offset: confID("00000000-0000-0000-0000-000000000000"), Limit: qdrant.PtrOf(uint32(1))})
		confWantEqual(t, "from the zero uuid", ids, []string{u1})
		confWantEqual(t, "next", next, u2)
	})

	t.Run("filtered pages", func(t *testing.T) {
		name := seed(t)
		f := &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchBool("even", true)}}
		ids, next := scroll(t, &qdrant.ScrollPoints{CollectionName: name, Filter: f, Limit: qdrant.PtrOf(uint32(4))})
		confWantEqual(t, "page 1", ids, []string{"2", "4", "6", "8"})
		confWantEqual(t, "next", next, "10")
		ids, next = scroll(t, &qdrant.ScrollPoints{CollectionName: name, Filter: f, Limit: qdrant.PtrOf(uint32(4)), Offset: confID(10)})
		confWantEqual(t, "page 2", ids, []string{"10", "12"})
		confWantEqual(t, "next", next, "<nil>")
	})

	t.Run("payload on by default, vectors off", func(t *testing.T) {
		name := seed(t)
		got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name, Limit: qdrant.PtrOf(uint32(1))})
		if err != nil || len(got) != 1 {
			t.Fatalf("scroll: %v, %v", got, err)
		}
		confWantEqual(t, "payload", confPlain(got[0].GetPayload()), map[string]any{"even": false})
		if got[0].GetVectors() != nil {
			t.Fatalf("vectors %v without being asked", got[0].GetVectors())
		}
		got, err = c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name, Limit: qdrant.PtrOf(uint32(1)), WithPayload: qdrant.NewWithPayload(false), WithVectors: qdrant.NewWithVectors(true)})
		if err != nil || len(got) != 1 {
			t.Fatalf("scroll: %v, %v", got, err)
		}
		if len(got[0].GetPayload()) != 0 {
			t.Fatalf("payload %v when turned off", got[0].GetPayload())
		}
		confWantVector(t, got[0].GetVectors(), []float32{1, 0})
	})

	t.Run("limit 0", func(t *testing.T) {
		name := seed(t)
		_, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name, Limit: qdrant.PtrOf(uint32(0))})
		confWantStatus(t, err, codes.InvalidArgument, "Validation error in body: [limit: value 0 invalid, must be 1 or larger]")
	})
}
