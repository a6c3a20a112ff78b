package qdrant

// Payload keys (DESIGN.md §3); wire.go writes them (appendPoint says
// which a point has). The Neo4j Chunk node carries the same lineage
// properties under the same names.
const (
	FieldTenant          = "tenant"
	FieldID              = "id"
	FieldDocID           = "doc_id"
	FieldText            = "text"
	FieldVersion         = "version"
	FieldMetadata        = "metadata"
	FieldEntities        = "entities"
	FieldCorrelationID   = "correlation_id"
	FieldIngestedAt      = "ingested_at"
	FieldSourceTopic     = "source_topic"
	FieldSourcePartition = "source_partition"
	FieldSourceOffset    = "source_offset"
)
