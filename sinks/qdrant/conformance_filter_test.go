package qdrant_test

import (
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
)

const filterUUID = "00000000-0000-0000-0000-000000000001"

// filterPayloads covers the value kinds filters treat differently. The
// expected matches below were checked against Qdrant's engine (qdrant-edge).
var filterPayloads = map[any]map[string]any{
	1:          {"k": 5},
	2:          {"k": nil},
	3:          {"k": true},
	4:          {"k": []any{nil}},
	5:          {"k": "a"},
	6:          {"k": map[string]any{"x": 1}},
	7:          {"k": []any{[]any{"a"}}},
	8:          {"k": 5.5},
	9:          {"k": []any{1, "a", nil}},
	10:         {"k": []any{}},
	11:         {},
	12:         {"d": []any{map[string]any{"a": 1, "b": 2}, map[string]any{"a": 2, "b": 1}}},
	13:         {"d": []any{map[string]any{"a": 1, "b": 1}}},
	14:         {"d": map[string]any{"a": 1, "b": 1}},
	15:         {"k": "A", "f": 5.0},
	16:         {"k": 5.0},
	filterUUID: {"k": "a", "t": "x"},
}

func must(cs ...*qdrant.Condition) *qdrant.Filter { return &qdrant.Filter{Must: cs} }

func TestConformanceFilters(t *testing.T) {
	tg := newConfTarget(t)
	c := tg.client(t)
	name := confNewCollection(t, c, 2, qdrant.Distance_Dot)
	var pts []*qdrant.PointStruct
	for idv, p := range filterPayloads {
		pts = append(pts, confPt(idv, []float32{1, 0}, p))
	}
	confUpsertWait(t, c, name, pts...)

	kw := qdrant.NewMatchKeyword
	num := qdrant.NewMatchInt
	u := filterUUID
	tests := []struct {
		name   string
		filter *qdrant.Filter
		want   []string
	}{
		{"keyword is exact and case-sensitive; arrays match by any element", must(kw("k", "a")), []string{"5", "9", u}},
		{"integer match never matches a double, even 5.0", must(num("k", 5)), []string{"1"}},
		{"bool match", must(qdrant.NewMatchBool("k", true)), []string{"3"}},
		{"any keywords", must(qdrant.NewMatchKeywords("k", "a", "A")), []string{"5", "9", "15", u}},
		{"any integers", must(qdrant.NewMatchInts("k", 1, 5)), []string{"1", "9"}},
		{"except keywords: missing, null and [] are false", must(qdrant.NewMatchExcept("k", "a")), []string{"1", "3", "6", "7", "8", "9", "15", "16"}},
		{"except integers", must(qdrant.NewMatchExceptInts("k", 5)), []string{"3", "5", "6", "7", "8", "9", "15", "16", u}},
		{"range: numbers only", must(qdrant.NewRange("k", &qdrant.Range{Gte: qdrant.PtrOf(5.0)})), []string{"1", "8", "16"}},
		{"range bounds", must(qdrant.NewRange("k", &qdrant.Range{Gt: qdrant.PtrOf(1.0), Lt: qdrant.PtrOf(5.5)})), []string{"1", "16"}},
		{"is_empty: missing, null or []", must(qdrant.NewIsEmpty("k")), []string{"2", "10", "11", "12", "13", "14"}},
		{"is_null: null or holding null; missing is not null", must(qdrant.NewIsNull("k")), []string{"2", "4", "9"}},
		{"must_not keeps points missing the field", &qdrant.Filter{MustNot: []*qdrant.Condition{kw("k", "a")}},
			[]string{"1", "2", "3", "4", "6", "7", "8", "10", "11", "12", "13", "14", "15", "16"}},
		{"should: any", &qdrant.Filter{Should: []*qdrant.Condition{kw("k", "a"), num("k", 5)}}, []string{"1", "5", "9", u}},
		{"min_should", &qdrant.Filter{MinShould: &qdrant.MinShould{MinCount: 2, Conditions: []*qdrant.Condition{kw("k", "a"), kw("t", "x"), num("k", 1)}}}, []string{"9", u}},
		{"should and min_should both apply", &qdrant.Filter{Should: []*qdrant.Condition{num("k", 5)},
			MinShould: &qdrant.MinShould{MinCount: 2, Conditions: []*qdrant.Condition{kw("k", "a"), kw("t", "x")}}}, []string{}},
		{"a.b does not look into arrays", must(num("d.a", 1)), []string{"14"}},
		{"a[].b looks into arrays", must(num("d[].a", 1)), []string{"12", "13"}},
		{"flat conditions on a[] may match different elements", must(num("d[].a", 1), num("d[].b", 1)), []string{"12", "13"}},
		{"nested matches one element", must(qdrant.NewNestedFilter("d", must(num("a", 1), num("b", 1)))), []string{"13"}},
		{"k[] flattens one more level", must(kw("k[]", "a")), []string{"7", "9"}},
		{"has_id compares parsed ids", must(qdrant.NewHasID(confID(1), confID("00000000000000000000000000000001"), confID(99))), []string{"1", u}},
		{"values_count", must(qdrant.NewValuesCount("k", &qdrant.ValuesCount{Gte: qdrant.PtrOf(uint64(2))})), []string{"9"}},
		{"nested filter condition", must(qdrant.NewFilterAsCondition(&qdrant.Filter{Should: []*qdrant.Condition{qdrant.NewHasID(confID(1)), qdrant.NewHasID(confID(2))}})), []string{"1", "2"}},
		{"empty filter matches everything", &qdrant.Filter{}, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", u}},
		// A Condition with nothing set is dropped, so a tenant filter built
		// wrong matches every tenant.
		{"an empty condition in must is dropped", must(&qdrant.Condition{}), []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", u}},
		{"an empty condition in should is dropped", &qdrant.Filter{Should: []*qdrant.Condition{{}}}, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", u}},
		{"an empty condition beside a real one", must(&qdrant.Condition{}, kw("t", "x")), []string{u}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name, Filter: tt.filter, Limit: qdrant.PtrOf(uint32(100))})
			if err != nil {
				t.Fatal(err)
			}
			confWantEqual(t, "scroll", confRetrievedIDs(got), tt.want)
			if n := confCount(t, c, name, tt.filter); n != uint64(len(tt.want)) {
				t.Fatalf("count %d, scroll %d", n, len(tt.want))
			}
		})
	}

	t.Run("a field condition with nothing to check is refused", func(t *testing.T) {
		_, err := c.Scroll(confCtx(t), &qdrant.ScrollPoints{CollectionName: name,
			Filter: must(&qdrant.Condition{ConditionOneOf: &qdrant.Condition_Field{Field: &qdrant.FieldCondition{Key: "k"}}})})
		confWantStatus(t, err, codes.InvalidArgument, "Validation error in body")
	})
}
