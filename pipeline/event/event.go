// Package event decodes and validates ragstream's event contract (DESIGN.md §2):
// the JSON value of a Kafka record whose key is "tenant/id".
//
// The structural rules live in event.schema.json beside this file; RULES.md
// lists the rules only the decoder can check (the key agrees with the body,
// relation endpoints, the configured vector length, tombstones, duplicate keys)
// and the size limits. The decoder is a single pass over the bytes: it checks
// JSON syntax and UTF-8, the schema's rules and the decoder-only rules, and
// builds the Event, so nothing a sink could reject for the record's content
// reaches a sink.
package event

import (
	"fmt"
	"time"
)

// Op is what an event asks for.
type Op uint8

const (
	// OpUpsert writes the chunk (the default when "op" is absent).
	OpUpsert Op = iota
	// OpDelete removes the chunk; also the op of a tombstone.
	OpDelete
)

// String returns the op's JSON spelling.
func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Event is one decoded, validated record.
//
// Values in Metadata and in the Props of entities and relations keep their
// JSON kind: an integer literal (no fraction, no exponent) is an int64, any
// other number a float64, then string, bool, nil, []any and map[string]any.
// Metadata may nest; props hold only scalars or arrays of one scalar kind
// (what a Neo4j property can store). A props array that mixes integers and
// other numbers holds float64 throughout.
type Event struct {
	Op        Op
	ID        string
	Tenant    string
	DocID     string
	Text      string
	HasText   bool // "text" was present (it may be empty)
	Vector    []float32
	Metadata  map[string]any
	Entities  []Entity
	Relations []Relation
	// Version is 0 when absent; HasVersion tells the two apart.
	Version    int64
	HasVersion bool
	// TS is the event time in UTC; zero when absent.
	TS time.Time
	// Tombstone is set for a record with a null value: Op is OpDelete and
	// only Tenant and ID (from the key) are set.
	Tombstone bool
}

// Key returns the record key the event belongs under: tenant + "/" + id.
func (e *Event) Key() string { return e.Tenant + "/" + e.ID }

// Entity is a node of the knowledge graph mentioned by the chunk.
type Entity struct {
	ID    string
	Type  string
	Name  string
	Props map[string]any
}

// Relation is a directed, typed edge between two entities of the same event.
type Relation struct {
	From  string
	To    string
	Type  string
	Props map[string]any
}

// Error classes, the DLQ's ragstream.error.class values for records the
// decoder refuses.
const (
	// ClassDecode: the value is not JSON, or not UTF-8.
	ClassDecode = "decode"
	// ClassSchema: the value is JSON but violates the contract.
	ClassSchema = "schema"
)

// Error is a permanent problem with one record. Field names the offending
// field as a path ("entities[2].type", "metadata.tags[0]"), empty when the
// problem is the record as a whole.
type Error struct {
	Class string
	Field string
	Msg   string
}

// Error returns "field: msg", or msg alone when there is no field.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Limits bounds every string and array of an event and carries the settings
// the contract depends on. Sizes are in bytes of UTF-8.
type Limits struct {
	// Dims is the configured vector dimension; a vector must have exactly
	// this many elements.
	Dims int
	// MaxIDBytes bounds id, doc_id, entity ids and relation endpoints.
	MaxIDBytes int
	// MaxTenantBytes bounds tenant (the pattern already caps it at 63).
	MaxTenantBytes int
	// MaxTextBytes bounds text.
	MaxTextBytes int
	// MaxStringBytes bounds entity names and string values in metadata and props.
	MaxStringBytes int
	// MaxKeyBytes bounds the keys of metadata and props objects.
	MaxKeyBytes int
	// MaxEntities and MaxRelations bound the two arrays.
	MaxEntities  int
	MaxRelations int
	// MaxMetadataKeys bounds the keys of every object inside metadata.
	MaxMetadataKeys int
	// MaxPropsKeys bounds the keys of one props object.
	MaxPropsKeys int
	// MaxArrayItems bounds every array inside metadata and props.
	MaxArrayItems int
	// MaxDepth bounds the nesting of metadata, counting the metadata object
	// itself as 1.
	MaxDepth int
	// EmbedderConfigured allows an upsert without a vector when it has text.
	EmbedderConfigured bool
}

// Default limits. event.schema.json repeats them (a test keeps the two equal).
const (
	DefaultMaxIDBytes      = 512
	DefaultMaxTenantBytes  = 63
	DefaultMaxTextBytes    = 64 << 10
	DefaultMaxStringBytes  = 4096
	DefaultMaxKeyBytes     = 256
	DefaultMaxEntities     = 256
	DefaultMaxRelations    = 512
	DefaultMaxMetadataKeys = 256
	DefaultMaxPropsKeys    = 64
	DefaultMaxArrayItems   = 1024
	DefaultMaxDepth        = 8
	// MaxDims is the largest vector dimension Qdrant accepts.
	MaxDims = 65536
)

// DefaultLimits returns the default limits for vectors of dims elements,
// without an embedder.
func DefaultLimits(dims int) Limits {
	return Limits{
		Dims:            dims,
		MaxIDBytes:      DefaultMaxIDBytes,
		MaxTenantBytes:  DefaultMaxTenantBytes,
		MaxTextBytes:    DefaultMaxTextBytes,
		MaxStringBytes:  DefaultMaxStringBytes,
		MaxKeyBytes:     DefaultMaxKeyBytes,
		MaxEntities:     DefaultMaxEntities,
		MaxRelations:    DefaultMaxRelations,
		MaxMetadataKeys: DefaultMaxMetadataKeys,
		MaxPropsKeys:    DefaultMaxPropsKeys,
		MaxArrayItems:   DefaultMaxArrayItems,
		MaxDepth:        DefaultMaxDepth,
	}
}

// Validate reports the first limit that cannot work.
func (l Limits) Validate() error {
	if l.Dims < 1 || l.Dims > MaxDims {
		return fmt.Errorf("event limits: dims %d out of range [1, %d]", l.Dims, MaxDims)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max id bytes", l.MaxIDBytes}, {"max tenant bytes", l.MaxTenantBytes},
		{"max text bytes", l.MaxTextBytes}, {"max string bytes", l.MaxStringBytes},
		{"max key bytes", l.MaxKeyBytes}, {"max entities", l.MaxEntities},
		{"max relations", l.MaxRelations}, {"max metadata keys", l.MaxMetadataKeys},
		{"max props keys", l.MaxPropsKeys}, {"max array items", l.MaxArrayItems},
		{"max depth", l.MaxDepth},
	} {
		if f.v < 1 {
			return fmt.Errorf("event limits: %s must be at least 1, got %d", f.name, f.v)
		}
	}
	return nil
}

// withDefaults fills zero limits from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits(l.Dims)
	fill := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	fill(&l.MaxIDBytes, d.MaxIDBytes)
	fill(&l.MaxTenantBytes, d.MaxTenantBytes)
	fill(&l.MaxTextBytes, d.MaxTextBytes)
	fill(&l.MaxStringBytes, d.MaxStringBytes)
	fill(&l.MaxKeyBytes, d.MaxKeyBytes)
	fill(&l.MaxEntities, d.MaxEntities)
	fill(&l.MaxRelations, d.MaxRelations)
	fill(&l.MaxMetadataKeys, d.MaxMetadataKeys)
	fill(&l.MaxPropsKeys, d.MaxPropsKeys)
	fill(&l.MaxArrayItems, d.MaxArrayItems)
	fill(&l.MaxDepth, d.MaxDepth)
	return l
}
