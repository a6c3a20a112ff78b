// Package qdrant writes chunks to Qdrant: the collection and its payload
// indexes at start-up, then upserts and deletes of what the version authority
// decided (pipeline.Sink).
package qdrant

import "github.com/google/uuid"

// Namespace is the UUIDv5 namespace of point ids:
// UUIDv5(NAMESPACE_URL, "https://github.com/ragstream/ragstream"), so any tool
// in any language can compute a chunk's point id (DESIGN.md §3).
var Namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/ragstream/ragstream"))

// PointID returns the point id of a chunk: UUIDv5(Namespace, tenant + "/" + id),
// lowercase and hyphenated as Qdrant returns it. Replays therefore overwrite.
func PointID(tenant, id string) string {
	return uuid.NewSHA1(Namespace, []byte(tenant+"/"+id)).String()
}
