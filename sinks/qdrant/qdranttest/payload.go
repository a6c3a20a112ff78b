package qdranttest

import (
	"math"
	"strings"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// payload is a stored point payload. It is never mutated after it is stored
// (an upsert replaces the whole map), so responses may share its values.
type payload map[string]*qdrant.Value

var nullValue = &qdrant.Value{Kind: &qdrant.Value_NullValue{}}

// normalizePayload checks and canonicalises a payload the way Qdrant's
// proto-to-JSON conversion does: an empty Value becomes null, and a NaN or
// infinite double is refused because JSON has no such number.
func normalizePayload(p map[string]*qdrant.Value) (payload, error) {
	for k, v := range p {
		nv, err := normalizeValue(v)
		if err != nil {
			return nil, err
		}
		p[k] = nv
	}
	return payload(p), nil
}

func normalizeValue(v *qdrant.Value) (*qdrant.Value, error) {
	if v == nil || v.GetKind() == nil {
		return nullValue, nil
	}
	switch k := v.GetKind().(type) {
	case *qdrant.Value_DoubleValue:
		if math.IsNaN(k.DoubleValue) || math.IsInf(k.DoubleValue, 0) {
			return nil, status.Error(codes.InvalidArgument, "cannot convert to json number")
		}
	case *qdrant.Value_StructValue:
		if k.StructValue == nil {
			return &qdrant.Value{Kind: &qdrant.Value_StructValue{StructValue: &qdrant.Struct{}}}, nil
		}
		for fk, fv := range k.StructValue.GetFields() {
			nv, err := normalizeValue(fv)
			if err != nil {
				return nil, err
			}
			k.StructValue.Fields[fk] = nv
		}
	case *qdrant.Value_ListValue:
		if k.ListValue == nil {
			return &qdrant.Value{Kind: &qdrant.Value_ListValue{ListValue: &qdrant.ListValue{}}}, nil
		}
		for i, ev := range k.ListValue.GetValues() {
			nv, err := normalizeValue(ev)
			if err != nil {
				return nil, err
			}
			k.ListValue.Values[i] = nv
		}
	}
	return v, nil
}

// payloadSelector is a compiled WithPayloadSelector.
type payloadSelector struct {
	enabled bool
	include [][]string
	exclude [][]string
}

// compilePayloadSelector applies the RPC's default when the selector is
// absent: Scroll returns payloads by default, Query and Get do not.
func compilePayloadSelector(sel *qdrant.WithPayloadSelector, def bool) payloadSelector {
	if sel == nil || sel.GetSelectorOptions() == nil {
		return payloadSelector{enabled: def}
	}
	switch o := sel.GetSelectorOptions().(type) {
	case *qdrant.WithPayloadSelector_Enable:
		return payloadSelector{enabled: o.Enable}
	case *qdrant.WithPayloadSelector_Include:
		ps := payloadSelector{enabled: true}
		for _, f := range o.Include.GetFields() {
			ps.include = append(ps.include, strings.Split(f, "."))
		}
		return ps
	case *qdrant.WithPayloadSelector_Exclude:
		ps := payloadSelector{enabled: true}
		for _, f := range o.Exclude.GetFields() {
			ps.exclude = append(ps.exclude, strings.Split(f, "."))
		}
		return ps
	}
	return payloadSelector{enabled: def}
}

// apply returns the payload to put into a response, or nil for none.
func (ps payloadSelector) apply(p payload) map[string]*qdrant.Value {
	if !ps.enabled {
		return nil
	}
	switch {
	case ps.include != nil:
		out := map[string]*qdrant.Value{}
		for _, path := range ps.include {
			includePath(out, p, path)
		}
		return out
	case ps.exclude != nil:
		out := make(map[string]*qdrant.Value, len(p))
		for k, v := range p {
			out[k] = v
		}
		for _, path := range ps.exclude {
			excludePath(out, path)
		}
		return out
	}
	if p == nil {
		return map[string]*qdrant.Value{}
	}
	return p
}

func includePath(dst map[string]*qdrant.Value, src map[string]*qdrant.Value, path []string) {
	v, ok := src[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		dst[path[0]] = v
		return
	}
	sv := v.GetStructValue()
	if sv == nil {
		return
	}
	sub := map[string]*qdrant.Value{}
	if existing := dst[path[0]].GetStructValue(); existing != nil {
		sub = existing.Fields
	}
	includePath(sub, sv.GetFields(), path[1:])
	if len(sub) > 0 {
		dst[path[0]] = &qdrant.Value{Kind: &qdrant.Value_StructValue{StructValue: &qdrant.Struct{Fields: sub}}}
	}
}

func excludePath(m map[string]*qdrant.Value, path []string) {
	if len(path) == 1 {
		delete(m, path[0])
		return
	}
	v, ok := m[path[0]]
	if !ok || v.GetStructValue() == nil {
		return
	}
	fields := make(map[string]*qdrant.Value, len(v.GetStructValue().GetFields()))
	for k, fv := range v.GetStructValue().GetFields() {
		fields[k] = fv
	}
	excludePath(fields, path[1:])
	m[path[0]] = &qdrant.Value{Kind: &qdrant.Value_StructValue{StructValue: &qdrant.Struct{Fields: fields}}}
}
