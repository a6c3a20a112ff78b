package qdrant

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// The upsert request is encoded here, straight from the records, into the
// protobuf wire format of qdrant.UpsertPoints (points.proto), instead of
// building qc.PointStruct values with a map of qc.Value per point and letting
// the reflection-based marshaller walk them. For a 384-dimension point with
// its payload that took ~30 µs of CPU per point, half the worker's CPU with
// a null Neo4j; this encoder takes about 2 µs (BenchmarkUpsertEncodeBatch).
// The bytes are proto-equal to what the go-client would send
// (TestUpsertWireEqualsProto decodes them with the generated types and
// compares), and they go out on the go-client's own connection, through its
// interceptors (API key, rate limit), with the content type gRPC uses by
// default.

// Field numbers of the messages written here (qdrant/go-client v1.17
// points.pb.go, qdrant_common.pb.go, json_with_int.pb.go).
const (
	fUpsertCollection = 1 // UpsertPoints.collection_name
	fUpsertWait       = 2 // UpsertPoints.wait
	fUpsertPoints     = 3 // UpsertPoints.points

	fPointID      = 1 // PointStruct.id
	fPointPayload = 3 // PointStruct.payload (map<string, Value>)
	fPointVectors = 4 // PointStruct.vectors

	fIDUUID = 2 // PointId.uuid

	fVectorsVector = 1   // Vectors.vector
	fVectorDense   = 101 // Vector.dense
	fDenseData     = 1   // DenseVector.data (packed float)

	fMapKey   = 1 // map entry key
	fMapValue = 2 // map entry value

	fValueNull   = 1 // Value.null_value
	fValueDouble = 2 // Value.double_value
	fValueInt    = 3 // Value.integer_value
	fValueString = 4 // Value.string_value
	fValueBool   = 5 // Value.bool_value
	fValueStruct = 6 // Value.struct_value
	fValueList   = 7 // Value.list_value

	fStructFields = 1 // Struct.fields (map<string, Value>)
	fListValues   = 1 // ListValue.values
)

// upsertMethod is the gRPC method the go-client's Upsert calls.
const upsertMethod = "/qdrant.Points/Upsert"

// wireRequest is a request message already in wire format, in a buffer
// from pool (nil: none), which gRPC gives back once it has sent it.
type wireRequest struct {
	buf  *[]byte
	pool mem.BufferPool
}

// wireCodec sends a wireRequest as it is and hands everything else (the
// response) to gRPC's proto codec. Its empty name keeps the request's
// content type "application/grpc", as with the default codec.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2(proto.Name)} }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(wireRequest); ok {
		return mem.BufferSlice{mem.NewBuffer(w.buf, w.pool)}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (wireCodec) Name() string { return "" }

// invokeUpsert sends an encoded UpsertPoints on the client's connection.
func (s *Sink) invokeUpsert(ctx context.Context, req wireRequest) error {
	var resp qc.PointsOperationResponse
	return s.client.GetConnection().Invoke(ctx, upsertMethod, req, &resp, grpc.ForceCodecV2(s.codec))
}

// Tags of the fields written here (field number << 3 | wire type), one byte
// each; Vector.dense's takes two (tagVectorDense).
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtBytes   = 2

	tagUpsertCollection = fUpsertCollection<<3 | wtBytes
	tagUpsertWait       = fUpsertWait<<3 | wtVarint
	tagUpsertPoints     = fUpsertPoints<<3 | wtBytes
	tagPointID          = fPointID<<3 | wtBytes
	tagPointPayload     = fPointPayload<<3 | wtBytes
	tagPointVectors     = fPointVectors<<3 | wtBytes
	tagIDUUID           = fIDUUID<<3 | wtBytes
	tagVectorsVector    = fVectorsVector<<3 | wtBytes
	tagDenseData        = fDenseData<<3 | wtBytes
	tagMapKey           = fMapKey<<3 | wtBytes
	tagMapValue         = fMapValue<<3 | wtBytes
	tagValueNull        = fValueNull<<3 | wtVarint
	tagValueDouble      = fValueDouble<<3 | wtFixed64
	tagValueInt         = fValueInt<<3 | wtVarint
	tagValueString      = fValueString<<3 | wtBytes
	tagValueBool        = fValueBool<<3 | wtVarint
	tagValueStruct      = fValueStruct<<3 | wtBytes
	tagValueList        = fValueList<<3 | wtBytes
	tagStructFields     = fStructFields<<3 | wtBytes
	tagListValues       = fListValues<<3 | wtBytes
)

var tagVectorDense = string(protowire.AppendTag(nil, fVectorDense, protowire.BytesType))

// The key fields of the payload's map entries, written as they are.
var (
	keyTenant          = keyField(FieldTenant)
	keyID              = keyField(FieldID)
	keyDocID           = keyField(FieldDocID)
	keyText            = keyField(FieldText)
	keyVersion         = keyField(FieldVersion)
	keyMetadata        = keyField(FieldMetadata)
	keyEntities        = keyField(FieldEntities)
	keyCorrelationID   = keyField(FieldCorrelationID)
	keyIngestedAt      = keyField(FieldIngestedAt)
	keySourceTopic     = keyField(FieldSourceTopic)
	keySourcePartition = keyField(FieldSourcePartition)
	keySourceOffset    = keyField(FieldSourceOffset)
)

func keyField(key string) string { return string(appendString(nil, tagMapKey, key)) }

// encodeUpsert encodes an UpsertPoints with wait=true for the upserts among
// writes, in a buffer from pool (nil: a new one); n is how many points it
// holds.
//
// It is one pass over the records, and over each metadata map once. A
// message whose length is not known before its content (a point, a Struct
// or List of its metadata) gets room for the varint of a guessed length, and
// its length goes there once it is written; a wrong guess moves the content
// by the difference (closeLen), so every length is the minimal varint, as
// proto.Marshal writes it. The map entries go out in map order, as with
// proto.Marshal: nothing reads them in order.
//
// The buffer is sized from pointSizeGuess, exact but for the metadata; a
// request that outgrows it continues in a larger array (append), which is
// then handed on in place of the buffer, and the buffer goes back to pool.
func encodeUpsert(collection string, writes []pipeline.Write, storeText bool, now time.Time, pool mem.BufferPool) (req wireRequest, n int, err error) {
	ingestedAt := now.UTC().Format(time.RFC3339Nano)
	size := 1 + protowire.SizeBytes(len(collection)) + 2
	for i := range writes {
		if w := &writes[i]; w.Action == pipeline.ActionUpsert {
			size += pointSizeGuess(w.Record, storeText, len(ingestedAt))
		}
	}
	var buf *[]byte
	if pool != nil {
		buf = pool.Get(size)
	} else {
		s := make([]byte, size)
		buf = &s
	}
	b := appendString((*buf)[:0], tagUpsertCollection, collection)
	b = append(b, tagUpsertWait, 1)
	for i := range writes {
		w := &writes[i]
		if w.Action != pipeline.ActionUpsert {
			continue
		}
		var ok bool
		if b, ok = appendPoint(b, w, storeText, ingestedAt); !ok {
			if pool != nil {
				pool.Put(buf)
			}
			return wireRequest{}, 0, fmt.Errorf("point %s: payload %q: value of an unsupported type", w.Key, FieldMetadata)
		}
		n++
	}
	if cap(b) != cap(*buf) { // append moved on to a larger array
		if pool != nil {
			pool.Put(buf)
		}
		buf = new([]byte)
	}
	*buf = b
	return wireRequest{buf: buf, pool: pool}, n, nil
}

// The bytes the length of a Struct is guessed at per key, and of a List per
// value, when room is reserved for it: about what a short key with a short
// scalar takes (the sample's metadata: 7 or 8 keys in 100 to 190 bytes).
const (
	keyBytes  = 16
	itemBytes = 8
)

// metadataGuess is the bytes a point's buffer room counts per key of its
// metadata: above what a key with a short scalar takes.
const metadataGuess = 48

// pointSizeGuess is the room for a point's field in UpsertPoints: enough for
// all but the metadata, and metadataGuess bytes per key of that.
func pointSizeGuess(r *pipeline.Record, storeText bool, ingestedAt int) int {
	ev := &r.Event
	// 512: the tags, keys and lengths of the id, payload and vectors, and
	// the id's 36 characters.
	n := 512 + len(ev.Tenant) + len(ev.ID) + len(ev.DocID) + len(r.CorrelationID) + ingestedAt +
		16*len(ev.Entities) + metadataGuess*len(ev.Metadata) + 4*len(ev.Vector)
	if storeText && ev.HasText {
		n += len(ev.Text)
	}
	for i := range ev.Entities {
		n += len(ev.Entities[i].ID)
	}
	if r.Src != nil {
		n += len(r.Src.Topic)
	}
	return n
}

// appendPoint appends the PointStruct of an upsert as a field of
// UpsertPoints, its payload keys (DESIGN.md §3) in the order of the Field
// constants; false when the metadata holds a value of a type that has no
// Value.
func appendPoint(b []byte, w *pipeline.Write, storeText bool, ingestedAt string) ([]byte, bool) {
	r := w.Record
	ev := &r.Event
	b = append(b, tagUpsertPoints)
	lw := protowire.SizeVarint(uint64(pointSizeGuess(r, storeText, len(ingestedAt))))
	b, at := openLen(b, lw)

	// PointId{uuid: 36 characters}: 38 bytes.
	b = append(b, tagPointID, 1+1+36, tagIDUUID, 36)
	b = appendPointID(b, w.Key.Tenant, w.Key.ID)

	b = appendStringEntry(b, keyTenant, ev.Tenant)
	b = appendStringEntry(b, keyID, ev.ID)
	if ev.DocID != "" {
		b = appendStringEntry(b, keyDocID, ev.DocID)
	}
	if storeText && ev.HasText {
		b = appendStringEntry(b, keyText, ev.Text)
	}
	b = appendIntEntry(b, keyVersion, ev.Version)
	if len(ev.Metadata) > 0 {
		var ok bool
		if b, ok = appendMetadataEntry(b, ev.Metadata); !ok {
			return b, false
		}
	}
	b = appendEntitiesEntry(b, ev.Entities)
	b = appendStringEntry(b, keyCorrelationID, r.CorrelationID)
	b = appendStringEntry(b, keyIngestedAt, ingestedAt)
	if r.Src != nil {
		b = appendStringEntry(b, keySourceTopic, r.Src.Topic)
		b = appendIntEntry(b, keySourcePartition, int64(r.Src.Partition))
		b = appendIntEntry(b, keySourceOffset, r.Src.Offset)
	}
	b = appendVectors(b, ev.Vector)
	return closeLen(b, at, lw), true
}

// appendStringEntry appends a payload entry {key, Value{string_value: s}};
// key is the entry's key field (keyField).
func appendStringEntry(b []byte, key, s string) []byte {
	vs := 1 + protowire.SizeBytes(len(s))
	b = append(b, tagPointPayload)
	b = appendVarint(b, uint64(len(key)+1+protowire.SizeBytes(vs)))
	b = append(b, key...)
	b = append(b, tagMapValue)
	b = appendVarint(b, uint64(vs))
	return appendString(b, tagValueString, s)
}

// appendIntEntry appends a payload entry {key, Value{integer_value: i}}.
func appendIntEntry(b []byte, key string, i int64) []byte {
	vs := 1 + protowire.SizeVarint(uint64(i))
	b = append(b, tagPointPayload)
	b = appendVarint(b, uint64(len(key)+2+vs))
	b = append(b, key...)
	b = append(b, tagMapValue, byte(vs), tagValueInt)
	return appendVarint(b, uint64(i))
}

// appendEntitiesEntry appends the payload entry {entities, Value{list_value:
// the entities' ids as string values}}.
func appendEntitiesEntry(b []byte, ents []event.Entity) []byte {
	ls := 0
	for i := range ents {
		ls += 1 + protowire.SizeBytes(1+protowire.SizeBytes(len(ents[i].ID)))
	}
	vs := 1 + protowire.SizeBytes(ls)
	b = append(b, tagPointPayload)
	b = appendVarint(b, uint64(len(keyEntities)+1+protowire.SizeBytes(vs)))
	b = append(b, keyEntities...)
	b = append(b, tagMapValue)
	b = appendVarint(b, uint64(vs))
	b = append(b, tagValueList)
	b = appendVarint(b, uint64(ls))
	for i := range ents {
		id := ents[i].ID
		b = append(b, tagListValues)
		b = appendVarint(b, uint64(1+protowire.SizeBytes(len(id))))
		b = appendString(b, tagValueString, id)
	}
	return b
}

// appendMetadataEntry appends the payload entry {metadata, Value{struct_value:
// m}}; false when m holds a value of a type that has no Value.
func appendMetadataEntry(b []byte, m map[string]any) ([]byte, bool) {
	b = append(b, tagPointPayload)
	lw := protowire.SizeVarint(uint64(keyBytes * len(m)))
	b, at := openLen(b, lw)
	b = append(b, keyMetadata...)
	b, ok := appendValue(b, tagMapValue, m)
	return closeLen(b, at, lw), ok
}

// appendValue appends a Value message holding v, a decoded JSON value (the
// kinds the event decoder produces, event.Event.Metadata), as field tag.
// False when v, or a value in it, is of any other type.
func appendValue(b []byte, tag byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case string:
		b = append(b, tag)
		b = appendVarint(b, uint64(1+protowire.SizeBytes(len(v))))
		return appendString(b, tagValueString, v), true
	case int64:
		return appendIntValue(b, tag, v), true
	case int:
		return appendIntValue(b, tag, int64(v)), true
	case float64:
		b = append(b, tag, 9, tagValueDouble)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v)), true
	case bool:
		return append(b, tag, 2, tagValueBool, byte(protowire.EncodeBool(v))), true
	case nil:
		return append(b, tag, 2, tagValueNull, 0), true
	case []any:
		lw := protowire.SizeVarint(uint64(itemBytes * len(v)))
		b = append(b, tag)
		b, at := openLen(b, lw)
		b = append(b, tagValueList)
		b, lat := openLen(b, lw)
		for _, e := range v {
			var ok bool
			if b, ok = appendValue(b, tagListValues, e); !ok {
				return b, false
			}
		}
		return closeLen(closeLen(b, lat, lw), at, lw), true
	case map[string]any:
		lw := protowire.SizeVarint(uint64(keyBytes * len(v)))
		b = append(b, tag)
		b, at := openLen(b, lw)
		b = append(b, tagValueStruct)
		b, sat := openLen(b, lw)
		for k, e := range v {
			var eat int
			var ok bool
			b, eat = openLen(append(b, tagStructFields), 1)
			b = appendString(b, tagMapKey, k)
			if b, ok = appendValue(b, tagMapValue, e); !ok {
				return b, false
			}
			b = closeLen(b, eat, 1)
		}
		return closeLen(closeLen(b, sat, lw), at, lw), true
	default:
		return b, false
	}
}

func appendIntValue(b []byte, tag byte, i int64) []byte {
	b = append(b, tag, byte(1+protowire.SizeVarint(uint64(i))), tagValueInt)
	return appendVarint(b, uint64(i))
}

// appendVectors appends Vectors{vector: Vector{dense: DenseVector{data: vec}}}
// as PointStruct.vectors.
func appendVectors(b []byte, vec []float32) []byte {
	dense := 0
	if len(vec) > 0 {
		dense = 1 + protowire.SizeBytes(4*len(vec))
	}
	vector := len(tagVectorDense) + protowire.SizeBytes(dense)
	b = append(b, tagPointVectors)
	b = appendVarint(b, uint64(1+protowire.SizeBytes(vector)))
	b = append(b, tagVectorsVector)
	b = appendVarint(b, uint64(vector))
	b = append(b, tagVectorDense...)
	b = appendVarint(b, uint64(dense))
	if len(vec) == 0 {
		return b
	}
	b = append(b, tagDenseData)
	b = appendVarint(b, uint64(4*len(vec)))
	return appendFloats(b, vec)
}

// appendFloats appends the packed little-endian IEEE 754 encoding of vec.
func appendFloats(b []byte, vec []float32) []byte {
	if littleEndian && len(vec) > 0 {
		// This machine's floats are the wire's: their bytes go as they are
		// (an element-wise loop took a fifth of the encoding's time).
		return append(b, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vec))), 4*len(vec))...)
	}
	return appendFloatsPortable(b, vec)
}

func appendFloatsPortable(b []byte, vec []float32) []byte {
	for _, f := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// appendString appends s as a length-delimited field tag.
func appendString(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// openLen reserves w bytes for the length of the message that follows and
// returns where the message starts.
func openLen(b []byte, w int) ([]byte, int) {
	for range w {
		b = append(b, 0)
	}
	return b, len(b)
}

// closeLen writes the length of the message from at to the end of b in the
// w bytes openLen reserved before it; a length whose varint is not w bytes
// long moves the message so that the varint takes exactly its width.
func closeLen(b []byte, at, w int) []byte {
	n := len(b) - at
	if s := protowire.SizeVarint(uint64(n)); s != w {
		to := at - w + s
		if s > w {
			b = append(b, make([]byte, s-w)...)
		}
		copy(b[to:], b[at:at+n])
		b = b[:to+n]
	}
	v := uint64(n)
	i := at - w
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return b
}
