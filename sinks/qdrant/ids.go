// Package qdrant writes chunks to Qdrant: the collection and its payload
// indexes at start-up, then upserts and deletes of what the version authority
// decided (pipeline.Sink).
package qdrant

import (
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined on SHA-1; not a security use
	"encoding/hex"

	"github.com/google/uuid"
)

// Namespace is the UUIDv5 namespace of point ids:
// UUIDv5(NAMESPACE_URL, "https://github.com/ragstream/ragstream"), so any tool
// in any language can compute a chunk's point id (DESIGN.md §3).
var Namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/ragstream/ragstream"))

// PointID returns the point id of a chunk: UUIDv5(Namespace, tenant + "/" + id),
// lowercase and hyphenated as Qdrant returns it. Replays therefore overwrite.
// It is uuid.NewSHA1(Namespace, tenant+"/"+id).String() (TestPointIDIsUUIDv5
// holds them equal).
func PointID(tenant, id string) string {
	var out [36]byte
	return string(appendPointID(out[:0], tenant, id))
}

// appendPointID appends PointID(tenant, id) to dst, with the hash input on
// the stack: the upsert encoder writes one per point straight into the
// request.
func appendPointID(dst []byte, tenant, id string) []byte {
	var small [256]byte
	in := small[:0]
	if n := len(Namespace) + len(tenant) + 1 + len(id); n > len(small) {
		in = make([]byte, 0, n)
	}
	in = append(in, Namespace[:]...)
	in = append(in, tenant...)
	in = append(in, '/')
	in = append(in, id...)
	sum := sha1.Sum(in)         //nolint:gosec // see the import
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], sum[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], sum[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], sum[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], sum[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], sum[10:16])
	return append(dst, out[:]...)
}
