package pipelinetest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// Dims is the vector length of the events Event renders by default.
const Dims = 4

// Event describes a contract event for tests; Value renders its JSON.
type Event struct {
	Tenant, ID string
	// DocID defaults to ID.
	DocID string
	Text  string
	// Version is written unless NoVersion.
	Version   int64
	NoVersion bool
	// Delete makes it an op:"delete" event.
	Delete bool
	// Dims is the vector length, default Dims.
	Dims int
	// TS is written when set.
	TS time.Time
	// Entities are ids of entities of type Thing.
	Entities []string
	// Pad adds that many bytes of text, to make records bigger.
	Pad int
}

// Key returns "tenant/id".
func (e Event) Key() []byte { return []byte(e.Tenant + "/" + e.ID) }

// Value returns the event's JSON.
func (e Event) Value() []byte {
	b := make([]byte, 0, 256+e.Pad)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, e.ID)
	b = append(b, `,"tenant":`...)
	b = strconv.AppendQuote(b, e.Tenant)
	if e.Delete {
		b = append(b, `,"op":"delete"`...)
	} else {
		doc := e.DocID
		if doc == "" {
			doc = e.ID
		}
		b = append(b, `,"doc_id":`...)
		b = strconv.AppendQuote(b, doc)
		text := e.Text
		if text == "" {
			text = "text of " + e.ID
		}
		for i := 0; i < e.Pad; i++ {
			text += string(rune('a' + i%26))
		}
		b = append(b, `,"text":`...)
		b = strconv.AppendQuote(b, text)
		dims := e.Dims
		if dims == 0 {
			dims = Dims
		}
		b = append(b, `,"vector":[`...)
		for i := range dims {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(i+1)/float64(dims+1), 'f', 6, 32)
		}
		b = append(b, ']')
		if len(e.Entities) > 0 {
			b = append(b, `,"entities":[`...)
			for i, id := range e.Entities {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = strconv.AppendQuote(b, id)
				b = append(b, `,"type":"Thing","name":`...)
				b = strconv.AppendQuote(b, id)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
	}
	if !e.NoVersion {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, e.Version, 10)
	}
	if !e.TS.IsZero() {
		b = append(b, `,"ts":"`...)
		b = e.TS.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

// Record returns the event as a record for topic and partition (produce it
// with kgo.ManualPartitioner), with a correlation-id header when corr is set.
func (e Event) Record(topic string, partition int32, corr string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: partition, Key: e.Key(), Value: e.Value()}
	if corr != "" {
		r.Headers = []kgo.RecordHeader{{Key: pipeline.CorrelationHeader, Value: []byte(corr)}}
	}
	return r
}

// Tombstone returns a record with key tenant/id and a null value.
func Tombstone(topic string, partition int32, tenant, id string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(tenant + "/" + id)}
}

// Raw returns a record with the given key and value bytes (malformed input).
func Raw(topic string, partition int32, key, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(key), Value: []byte(value)}
}

// Expect returns the state a correct pipeline ends in after consuming recs
// (records that were produced: their Partition and Offset set), with
// vectors of dims elements: every key's events folded in offset order under
// the version rule, decode failures skipped. It folds each partition's
// records in one pass, which DESIGN.md §4 makes equal to any batching.
func Expect(dims int, recs []*kgo.Record) (map[pipeline.Key]Entry, error) {
	dec := event.NewDecoder(event.DefaultLimits(dims))
	byPart := map[partKey][]*pipeline.Record{}
	var order []partKey
	for _, src := range recs {
		ev, err := dec.Decode(src.Key, src.Value)
		r := &pipeline.Record{Src: src, Event: ev, CorrelationID: pipeline.CorrelationID(src)}
		if err != nil {
			r.Err = err
		}
		k := partKey{src.Topic, src.Partition}
		if _, ok := byPart[k]; !ok {
			order = append(order, k)
		}
		byPart[k] = append(byPart[k], r)
	}
	s := NewStore("expect")
	for _, k := range order {
		rs := byPart[k]
		for i := 1; i < len(rs); i++ {
			if rs[i].Src.Offset <= rs[i-1].Src.Offset {
				return nil, fmt.Errorf("expect: records of %s/%d not in offset order (%d after %d)",
					k.topic, k.partition, rs[i].Src.Offset, rs[i-1].Src.Offset)
			}
		}
		s.commitLocked(pipeline.Fold(rs, s.storedLocked))
	}
	return s.state, nil
}
