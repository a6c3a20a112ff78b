package qdrant

import (
	"fmt"
	"time"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/ragstream/ragstream/pipeline"
)

// Payload keys (DESIGN.md §3). The Neo4j Chunk node carries the same lineage
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

// payload builds a point's payload from the record whose content is written.
// Values keep their JSON kind (an integer stays an integer), because the
// decoder typed them so. ingestedAt is the only field a replay changes.
func payload(r *pipeline.Record, storeText bool, ingestedAt time.Time) map[string]*qc.Value {
	ev := &r.Event
	p := make(map[string]*qc.Value, 12)
	p[FieldTenant] = qc.NewValueString(ev.Tenant)
	p[FieldID] = qc.NewValueString(ev.ID)
	if ev.DocID != "" {
		p[FieldDocID] = qc.NewValueString(ev.DocID)
	}
	if storeText && ev.HasText {
		p[FieldText] = qc.NewValueString(ev.Text)
	}
	p[FieldVersion] = qc.NewValueInt(ev.Version)
	if len(ev.Metadata) > 0 {
		p[FieldMetadata] = qc.NewValueStruct(&qc.Struct{Fields: valueMap(ev.Metadata)})
	}
	ents := make([]*qc.Value, len(ev.Entities))
	for i := range ev.Entities {
		ents[i] = qc.NewValueString(ev.Entities[i].ID)
	}
	p[FieldEntities] = qc.NewValueList(&qc.ListValue{Values: ents})
	p[FieldCorrelationID] = qc.NewValueString(r.CorrelationID)
	p[FieldIngestedAt] = qc.NewValueString(ingestedAt.UTC().Format(time.RFC3339Nano))
	if r.Src != nil {
		p[FieldSourceTopic] = qc.NewValueString(r.Src.Topic)
		p[FieldSourcePartition] = qc.NewValueInt(int64(r.Src.Partition))
		p[FieldSourceOffset] = qc.NewValueInt(r.Src.Offset)
	}
	return p
}

func valueMap(m map[string]any) map[string]*qc.Value {
	out := make(map[string]*qc.Value, len(m))
	for k, v := range m {
		out[k] = value(v)
	}
	return out
}

// value converts one decoded JSON value. The decoder produces only these
// kinds, so nothing is lost; anything else would be a decoder bug and is
// stored as its string form rather than dropped.
func value(v any) *qc.Value {
	switch v := v.(type) {
	case nil:
		return qc.NewValueNull()
	case bool:
		return qc.NewValueBool(v)
	case int64:
		return qc.NewValueInt(v)
	case float64:
		return qc.NewValueDouble(v)
	case string:
		return qc.NewValueString(v)
	case []any:
		vals := make([]*qc.Value, len(v))
		for i, e := range v {
			vals[i] = value(e)
		}
		return qc.NewValueList(&qc.ListValue{Values: vals})
	case map[string]any:
		return qc.NewValueStruct(&qc.Struct{Fields: valueMap(v)})
	case int:
		return qc.NewValueInt(int64(v))
	default:
		return qc.NewValueString(fmt.Sprint(v))
	}
}
