package qdranttest

import (
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// codec is the server's gRPC codec: protobuf, with a hand-written decoder
// for the common shape of UpsertPoints (ids, dense vectors, payloads). The
// generic decoder fills payload maps through reflection, which made it
// most of an upsert's cost; anything outside that shape (filters, named or
// sparse vectors, unknown fields, repeated singular fields, bad UTF-8)
// falls back to proto.Unmarshal, so the result is always what
// proto.Unmarshal would give.
type codec struct{}

var _ encoding.Codec = codec{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }

func (codec) Unmarshal(data []byte, v any) error {
	if up, ok := v.(*qdrant.UpsertPoints); ok {
		if fastUpsert(data, up) {
			return nil
		}
		proto.Reset(up)
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

// fastUpsert decodes data into m and reports whether it could.
func fastUpsert(b []byte, m *qdrant.UpsertPoints) bool {
	var seenName, seenWait, seenTimeout, seenMode bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType && !seenName:
			s, n := consumeString(b)
			if n < 0 {
				return false
			}
			m.CollectionName, seenName, b = s, true, b[n:]
		case num == 2 && typ == protowire.VarintType && !seenWait:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			m.Wait, seenWait, b = proto.Bool(v != 0), true, b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			p := &qdrant.PointStruct{}
			if !fastPoint(v, p) {
				return false
			}
			m.Points, b = append(m.Points, p), b[n:]
		case num == 7 && typ == protowire.VarintType && !seenTimeout:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			m.Timeout, seenTimeout, b = proto.Uint64(v), true, b[n:]
		case num == 8 && typ == protowire.VarintType && !seenMode:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			m.UpdateMode, seenMode, b = qdrant.UpdateMode(int32(v)).Enum(), true, b[n:]
		default:
			return false
		}
	}
	return true
}

func consumeString(b []byte) (string, int) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 || !utf8.Valid(v) {
		return "", -1
	}
	return string(v), n
}

func fastPoint(b []byte, p *qdrant.PointStruct) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && p.Id == nil:
			id, ok := fastPointID(v)
			if !ok {
				return false
			}
			p.Id = id
		case num == 3:
			key, val, ok := fastMapEntry(v)
			if !ok {
				return false
			}
			if p.Payload == nil {
				p.Payload = map[string]*qdrant.Value{}
			}
			p.Payload[key] = val
		case num == 4 && p.Vectors == nil:
			vecs, ok := fastVectors(v)
			if !ok {
				return false
			}
			p.Vectors = vecs
		default:
			return false
		}
	}
	return true
}

func fastPointID(b []byte) (*qdrant.PointId, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return nil, false
	}
	b = b[n:]
	var id *qdrant.PointId
	switch {
	case num == 1 && typ == protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, false
		}
		id, b = qdrant.NewIDNum(v), b[n:]
	case num == 2 && typ == protowire.BytesType:
		s, n := consumeString(b)
		if n < 0 {
			return nil, false
		}
		id, b = qdrant.NewIDUUID(s), b[n:]
	default:
		return nil, false
	}
	return id, len(b) == 0
}

// fastVectors accepts one unnamed dense vector, in either wire form.
func fastVectors(b []byte) (*qdrant.Vectors, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return nil, false
	}
	vb, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, false
	}
	num, typ, n = protowire.ConsumeTag(vb)
	if n < 0 || typ != protowire.BytesType {
		return nil, false
	}
	inner, m := protowire.ConsumeBytes(vb[n:])
	if m < 0 || n+m != len(vb) {
		return nil, false
	}
	vec := &qdrant.Vector{}
	switch num {
	case 1: // deprecated packed data
		f, ok := packedFloats(inner)
		if !ok {
			return nil, false
		}
		vec.Data = f //nolint:staticcheck // the deprecated form is still on the wire
	case 101: // dense
		dn, dt, dl := protowire.ConsumeTag(inner)
		dense := &qdrant.DenseVector{}
		if len(inner) > 0 {
			if dl < 0 || dn != 1 || dt != protowire.BytesType {
				return nil, false
			}
			data, k := protowire.ConsumeBytes(inner[dl:])
			if k < 0 || dl+k != len(inner) {
				return nil, false
			}
			f, ok := packedFloats(data)
			if !ok {
				return nil, false
			}
			dense.Data = f
		}
		vec.Vector = &qdrant.Vector_Dense{Dense: dense}
	default:
		return nil, false
	}
	return &qdrant.Vectors{VectorsOptions: &qdrant.Vectors_Vector{Vector: vec}}, true
}

func packedFloats(b []byte) ([]float32, bool) {
	if len(b)%4 != 0 {
		return nil, false
	}
	out := make([]float32, len(b)/4)
	if littleEndian && len(out) > 0 {
		// The wire format is little-endian IEEE 754, as is this machine.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b)), b)
		return out, true
	}
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out, true
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func fastMapEntry(b []byte) (string, *qdrant.Value, bool) {
	var key string
	var val *qdrant.Value
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return "", nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			s, n := consumeString(b)
			if n < 0 {
				return "", nil, false
			}
			key, b = s, b[n:]
		case 2:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, false
			}
			val = &qdrant.Value{}
			if !fastValue(v, val) {
				return "", nil, false
			}
			b = b[n:]
		default:
			return "", nil, false
		}
	}
	if val == nil {
		val = &qdrant.Value{}
	}
	return key, val, true
}

func fastValue(b []byte, v *qdrant.Value) bool {
	if len(b) == 0 {
		return true
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return false
	}
	b = b[n:]
	var used int
	switch {
	case num == 1 && typ == protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		v.Kind, used = &qdrant.Value_NullValue{NullValue: qdrant.NullValue(int32(x))}, n
	case num == 2 && typ == protowire.Fixed64Type:
		x, n := protowire.ConsumeFixed64(b)
		v.Kind, used = &qdrant.Value_DoubleValue{DoubleValue: math.Float64frombits(x)}, n
	case num == 3 && typ == protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		v.Kind, used = &qdrant.Value_IntegerValue{IntegerValue: int64(x)}, n
	case num == 4 && typ == protowire.BytesType:
		s, n := consumeString(b)
		v.Kind, used = &qdrant.Value_StringValue{StringValue: s}, n
	case num == 5 && typ == protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		v.Kind, used = &qdrant.Value_BoolValue{BoolValue: x != 0}, n
	case num == 6 && typ == protowire.BytesType:
		sb, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		st := &qdrant.Struct{}
		for len(sb) > 0 {
			fn, ft, k := protowire.ConsumeTag(sb)
			if k < 0 || fn != 1 || ft != protowire.BytesType {
				return false
			}
			eb, l := protowire.ConsumeBytes(sb[k:])
			if l < 0 {
				return false
			}
			key, val, ok := fastMapEntry(eb)
			if !ok {
				return false
			}
			if st.Fields == nil {
				st.Fields = map[string]*qdrant.Value{}
			}
			st.Fields[key] = val
			sb = sb[k+l:]
		}
		v.Kind, used = &qdrant.Value_StructValue{StructValue: st}, n
	case num == 7 && typ == protowire.BytesType:
		lb, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		lv := &qdrant.ListValue{}
		for len(lb) > 0 {
			fn, ft, k := protowire.ConsumeTag(lb)
			if k < 0 || fn != 1 || ft != protowire.BytesType {
				return false
			}
			eb, l := protowire.ConsumeBytes(lb[k:])
			if l < 0 {
				return false
			}
			e := &qdrant.Value{}
			if !fastValue(eb, e) {
				return false
			}
			lv.Values = append(lv.Values, e)
			lb = lb[k+l:]
		}
		v.Kind, used = &qdrant.Value_ListValue{ListValue: lv}, n
	default:
		return false
	}
	// A second field (a oneof set twice) takes the slow path.
	return used >= 0 && used == len(b)
}
