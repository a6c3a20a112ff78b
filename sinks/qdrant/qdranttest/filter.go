package qdranttest

import (
	"strconv"
	"strings"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pointView is what a filter sees of a point.
type pointView struct {
	id      pointKey
	payload payload
	c       *collection
	slot    int32
}

func (p *pointView) hasVec(name string) bool {
	if p.c == nil {
		return false
	}
	vs, ok := p.c.spaces[name]
	return ok && vs.has(p.slot)
}

// predicate is a compiled filter or condition.
type predicate func(p *pointView) bool

func matchAll(*pointView) bool { return true }

// compileFilter turns a Filter into a predicate with Qdrant's semantics
// (lib/segment/src/payload_storage/query_checker.rs): a point matches when
// should is empty or any should condition matches, min_should is met, every
// must matches and no must_not matches. A Condition with nothing set is
// dropped before any of that, exactly as Qdrant's conversion drops it, so a
// should or must list made only of empty conditions counts as absent.
func compileFilter(f *qdrant.Filter) (predicate, error) {
	if f == nil {
		return matchAll, nil
	}
	must, err := compileConditions(f.GetMust())
	if err != nil {
		return nil, err
	}
	should, err := compileConditions(f.GetShould())
	if err != nil {
		return nil, err
	}
	mustNot, err := compileConditions(f.GetMustNot())
	if err != nil {
		return nil, err
	}
	var minShould []predicate
	minCount := 0
	hasMin := f.MinShould != nil
	if hasMin {
		minShould, err = compileConditions(f.GetMinShould().GetConditions())
		if err != nil {
			return nil, err
		}
		minCount = int(f.GetMinShould().GetMinCount())
	}
	return func(p *pointView) bool {
		if len(should) > 0 {
			ok := false
			for _, c := range should {
				if c(p) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		if hasMin {
			n := 0
			for _, c := range minShould {
				if n >= minCount {
					break
				}
				if c(p) {
					n++
				}
			}
			if n < minCount {
				return false
			}
		}
		for _, c := range must {
			if !c(p) {
				return false
			}
		}
		for _, c := range mustNot {
			if c(p) {
				return false
			}
		}
		return true
	}, nil
}

func compileConditions(cs []*qdrant.Condition) ([]predicate, error) {
	out := make([]predicate, 0, len(cs))
	for _, c := range cs {
		if c == nil || c.GetConditionOneOf() == nil {
			continue // dropped, as Qdrant's gRPC conversion does
		}
		p, err := compileCondition(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func compileCondition(c *qdrant.Condition) (predicate, error) {
	switch v := c.GetConditionOneOf().(type) {
	case *qdrant.Condition_Field:
		return compileField(v.Field)
	case *qdrant.Condition_IsEmpty:
		path, err := parsePath(v.IsEmpty.GetKey())
		if err != nil {
			return nil, err
		}
		return func(p *pointView) bool { return isEmpty(path.raw(p.payload)) }, nil
	case *qdrant.Condition_IsNull:
		path, err := parsePath(v.IsNull.GetKey())
		if err != nil {
			return nil, err
		}
		return func(p *pointView) bool { return isNull(path.raw(p.payload)) }, nil
	case *qdrant.Condition_HasId:
		set := make(map[pointKey]struct{}, len(v.HasId.GetHasId()))
		for _, id := range v.HasId.GetHasId() {
			k, err := parsePointID(id)
			if err != nil {
				return nil, err
			}
			set[k] = struct{}{}
		}
		return func(p *pointView) bool { _, ok := set[p.id]; return ok }, nil
	case *qdrant.Condition_HasVector:
		name := v.HasVector.GetHasVector()
		return func(p *pointView) bool { return p.hasVec(name) }, nil
	case *qdrant.Condition_Filter:
		return compileFilter(v.Filter)
	case *qdrant.Condition_Nested:
		return compileNested(v.Nested)
	}
	return nil, status.Error(codes.InvalidArgument, "qdranttest: condition kind unsupported by the stand-in")
}

// compileNested matches when some element of the array at key satisfies the
// whole inner filter; a key holding an object rather than an array never
// matches (checked against qdrant-edge).
func compileNested(n *qdrant.NestedCondition) (predicate, error) {
	path, err := parsePath(n.GetKey())
	if err != nil {
		return nil, err
	}
	inner, err := compileFilter(n.GetFilter())
	if err != nil {
		return nil, err
	}
	return func(p *pointView) bool {
		for _, v := range path.raw(p.payload) {
			for _, el := range v.GetListValue().GetValues() {
				sv := el.GetStructValue()
				if sv == nil {
					continue
				}
				sub := pointView{id: p.id, payload: payload(sv.GetFields()), c: p.c, slot: p.slot}
				if inner(&sub) {
					return true
				}
			}
		}
		return false
	}, nil
}

func compileField(fc *qdrant.FieldCondition) (predicate, error) {
	path, err := parsePath(fc.GetKey())
	if err != nil {
		return nil, err
	}
	var parts []func(raw []*qdrant.Value) bool
	if m := fc.GetMatch(); m != nil {
		f, err := compileMatch(m)
		if err != nil {
			return nil, err
		}
		parts = append(parts, func(raw []*qdrant.Value) bool { return anyLeaf(raw, f) })
	}
	if r := fc.GetRange(); r != nil {
		parts = append(parts, func(raw []*qdrant.Value) bool {
			return anyLeaf(raw, func(v *qdrant.Value) bool { return inRange(v, r) })
		})
	}
	if vc := fc.GetValuesCount(); vc != nil {
		parts = append(parts, func(raw []*qdrant.Value) bool { return countOK(valuesCount(raw), vc) })
	}
	if fc.IsEmpty != nil {
		want := fc.GetIsEmpty()
		parts = append(parts, func(raw []*qdrant.Value) bool { return isEmpty(raw) == want })
	}
	if fc.IsNull != nil {
		want := fc.GetIsNull()
		parts = append(parts, func(raw []*qdrant.Value) bool { return isNull(raw) == want })
	}
	if fc.GetGeoBoundingBox() != nil || fc.GetGeoRadius() != nil || fc.GetGeoPolygon() != nil || fc.GetDatetimeRange() != nil {
		return nil, status.Errorf(codes.InvalidArgument, "qdranttest: geo and datetime conditions (key %q) are unsupported by the stand-in", fc.GetKey())
	}
	if len(parts) == 0 {
		// Qdrant's request validation refuses a field condition with nothing to check.
		return nil, status.Error(codes.InvalidArgument,
			"Validation error in body: [match: At least one field condition must be specified]")
	}
	return func(p *pointView) bool {
		raw := path.raw(p.payload)
		for _, part := range parts {
			if !part(raw) {
				return false
			}
		}
		return true
	}, nil
}

// compileMatch returns a check of one leaf value. Nulls never match, and an
// integer match never matches a double, even 5.0 (Qdrant compares JSON
// numbers by kind).
func compileMatch(m *qdrant.Match) (func(*qdrant.Value) bool, error) {
	switch v := m.GetMatchValue().(type) {
	case *qdrant.Match_Keyword:
		want := v.Keyword
		return func(x *qdrant.Value) bool {
			s, ok := x.GetKind().(*qdrant.Value_StringValue)
			return ok && s.StringValue == want
		}, nil
	case *qdrant.Match_Integer:
		want := v.Integer
		return func(x *qdrant.Value) bool {
			i, ok := x.GetKind().(*qdrant.Value_IntegerValue)
			return ok && i.IntegerValue == want
		}, nil
	case *qdrant.Match_Boolean:
		want := v.Boolean
		return func(x *qdrant.Value) bool {
			b, ok := x.GetKind().(*qdrant.Value_BoolValue)
			return ok && b.BoolValue == want
		}, nil
	case *qdrant.Match_Keywords:
		set := stringSet(v.Keywords.GetStrings())
		return func(x *qdrant.Value) bool {
			s, ok := x.GetKind().(*qdrant.Value_StringValue)
			if !ok {
				return false
			}
			_, in := set[s.StringValue]
			return in
		}, nil
	case *qdrant.Match_Integers:
		set := intSet(v.Integers.GetIntegers())
		return func(x *qdrant.Value) bool {
			i, ok := x.GetKind().(*qdrant.Value_IntegerValue)
			if !ok {
				return false
			}
			_, in := set[i.IntegerValue]
			return in
		}, nil
	case *qdrant.Match_ExceptKeywords:
		set := stringSet(v.ExceptKeywords.GetStrings())
		return func(x *qdrant.Value) bool {
			switch k := x.GetKind().(type) {
			case *qdrant.Value_NullValue:
				return false
			case *qdrant.Value_StringValue:
				_, in := set[k.StringValue]
				return !in
			}
			return true
		}, nil
	case *qdrant.Match_ExceptIntegers:
		set := intSet(v.ExceptIntegers.GetIntegers())
		return func(x *qdrant.Value) bool {
			switch k := x.GetKind().(type) {
			case *qdrant.Value_NullValue:
				return false
			case *qdrant.Value_IntegerValue:
				_, in := set[k.IntegerValue]
				return !in
			}
			return true
		}, nil
	case *qdrant.Match_Text:
		// Without a full-text index Qdrant checks a substring.
		want := v.Text
		return func(x *qdrant.Value) bool {
			s, ok := x.GetKind().(*qdrant.Value_StringValue)
			return ok && strings.Contains(s.StringValue, want)
		}, nil
	}
	return nil, status.Error(codes.InvalidArgument, "qdranttest: match kind unsupported by the stand-in")
}

func stringSet(ss []string) map[string]struct{} {
	m := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		m[s] = struct{}{}
	}
	return m
}

func intSet(is []int64) map[int64]struct{} {
	m := make(map[int64]struct{}, len(is))
	for _, i := range is {
		m[i] = struct{}{}
	}
	return m
}

// anyLeaf reports whether some leaf value satisfies f; an array at the end
// of the path contributes its elements (one level, as Qdrant flattens).
func anyLeaf(raw []*qdrant.Value, f func(*qdrant.Value) bool) bool {
	for _, v := range raw {
		if l, ok := v.GetKind().(*qdrant.Value_ListValue); ok {
			for _, el := range l.ListValue.GetValues() {
				if f(el) {
					return true
				}
			}
			continue
		}
		if f(v) {
			return true
		}
	}
	return false
}

// inRange accepts numbers only: booleans and numeric strings never match.
func inRange(v *qdrant.Value, r *qdrant.Range) bool {
	var x float64
	switch k := v.GetKind().(type) {
	case *qdrant.Value_IntegerValue:
		x = float64(k.IntegerValue)
	case *qdrant.Value_DoubleValue:
		x = k.DoubleValue
	default:
		return false
	}
	if r.Lt != nil && !(x < r.GetLt()) {
		return false
	}
	if r.Gt != nil && !(x > r.GetGt()) {
		return false
	}
	if r.Lte != nil && !(x <= r.GetLte()) {
		return false
	}
	if r.Gte != nil && !(x >= r.GetGte()) {
		return false
	}
	return true
}

// isEmpty: the field is missing, null, or an empty array ([null] is not empty).
func isEmpty(raw []*qdrant.Value) bool {
	for _, v := range raw {
		switch k := v.GetKind().(type) {
		case *qdrant.Value_NullValue:
		case *qdrant.Value_ListValue:
			if len(k.ListValue.GetValues()) > 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isNull: the value is null or an array holding a null; missing is not null.
func isNull(raw []*qdrant.Value) bool {
	for _, v := range raw {
		switch k := v.GetKind().(type) {
		case *qdrant.Value_NullValue:
			return true
		case *qdrant.Value_ListValue:
			for _, el := range k.ListValue.GetValues() {
				if _, ok := el.GetKind().(*qdrant.Value_NullValue); ok {
					return true
				}
			}
		}
	}
	return false
}

func valuesCount(raw []*qdrant.Value) uint64 {
	var n uint64
	for _, v := range raw {
		switch k := v.GetKind().(type) {
		case *qdrant.Value_NullValue:
		case *qdrant.Value_ListValue:
			n += uint64(len(k.ListValue.GetValues()))
		default:
			n++
		}
	}
	return n
}

func countOK(n uint64, vc *qdrant.ValuesCount) bool {
	if vc.Lt != nil && !(n < vc.GetLt()) {
		return false
	}
	if vc.Gt != nil && !(n > vc.GetGt()) {
		return false
	}
	if vc.Lte != nil && !(n <= vc.GetLte()) {
		return false
	}
	if vc.Gte != nil && !(n >= vc.GetGte()) {
		return false
	}
	return true
}

// jsonPath is a parsed payload key: `a.b`, `a[].b`, `a[0].b`.
type jsonPath []pathSeg

type pathSeg struct {
	key   string
	all   bool // a[]
	index int  // a[3]; -1 when absent
}

func parsePath(key string) (jsonPath, error) {
	if key == "" {
		return nil, status.Error(codes.InvalidArgument, "Validation error in body: [key: must not be empty]")
	}
	var out jsonPath
	for _, part := range strings.Split(key, ".") {
		seg := pathSeg{index: -1}
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			inner := part[i+1 : len(part)-1]
			seg.key = part[:i]
			if inner == "" {
				seg.all = true
			} else {
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return nil, status.Errorf(codes.InvalidArgument, "Bad request: invalid JSON path %q", key)
				}
				seg.index = n
			}
		} else {
			seg.key = part
		}
		out = append(out, seg)
	}
	return out, nil
}

// raw returns the values the path reaches. An array in the middle of a
// path is only entered with [] or [n]: `a.b` does not look inside an array
// of objects at a (checked against qdrant-edge).
func (jp jsonPath) raw(p payload) []*qdrant.Value {
	if len(jp) == 0 {
		return nil
	}
	first, ok := p[jp[0].key]
	if !ok {
		return nil
	}
	cur := jp[0].step(first, nil)
	for _, seg := range jp[1:] {
		var next []*qdrant.Value
		for _, v := range cur {
			sv := v.GetStructValue()
			if sv == nil {
				continue
			}
			fv, ok := sv.GetFields()[seg.key]
			if !ok {
				continue
			}
			next = seg.step(fv, next)
		}
		cur = next
		if len(cur) == 0 {
			return nil
		}
	}
	return cur
}

func (s pathSeg) step(v *qdrant.Value, out []*qdrant.Value) []*qdrant.Value {
	switch {
	case s.all:
		return append(out, v.GetListValue().GetValues()...)
	case s.index >= 0:
		l := v.GetListValue().GetValues()
		if s.index < len(l) {
			return append(out, l[s.index])
		}
		return out
	}
	return append(out, v)
}
