package neo4j

import (
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// labelPattern is the contract's allow-list for entity types and relation
// types (DESIGN.md §2). The decoder enforces it; the sink checks again
// because these strings become labels and relationship types.
var labelPattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9_]{0,63}$`)

// validLabel is labelPattern.MatchString without the regexp engine, which
// cost more than the rest of checkRecord (TestValidLabelIsLabelPattern
// holds the two equal).
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Names the graph model itself uses. An event that used them would corrupt
// the model (an entity typed Chunk would count as a chunk, a prop named id
// would change an entity's key), so such a record is refused for its
// content. The decoder could refuse them too; the sink must not rely on it.
var (
	// reservedEntityTypes are labels of the model's own nodes.
	reservedEntityTypes = map[string]bool{labelEntity: true, labelChunk: true, labelTombstone: true}
	// reservedRelationTypes are the model's own relationship types.
	reservedRelationTypes = map[string]bool{relMentions: true}
	// reservedEntityProps are the Entity node's own properties.
	reservedEntityProps = map[string]bool{"tenant": true, "id": true, "name": true, "type": true, propRank: true, propKeys: true, propKeyRanks: true}
	// reservedRelationProps are a relationship's own properties.
	reservedRelationProps = map[string]bool{"sources": true, propRank: true, propKeys: true, propKeyRanks: true}
)

// Graph model names.
const (
	labelChunk     = "Chunk"
	labelEntity    = "Entity"
	labelTombstone = "ChunkTombstone"
	relMentions    = "MENTIONS"
	// propRank is the highest rank among an entity's or relationship's
	// assertions: the one an entity's name and type came from.
	propRank = "_rank"
	// propKeys and propKeyRanks are parallel lists: the property keys whose
	// winning assertion ranks below propRank, and its rank.
	propKeys     = "_pk"
	propKeyRanks = "_pr"
)

// checkRecord reports the first thing in an upsert record that the graph
// model cannot hold, naming the field.
func checkRecord(r *pipeline.Record) error {
	ev := &r.Event
	if ev.Tombstone || ev.Op == event.OpDelete {
		return nil // deletes carry no graph content
	}
	for i, e := range ev.Entities {
		switch {
		case !validLabel(e.Type):
			return fmt.Errorf("entities[%d].type: %q must match %s", i, e.Type, labelPattern)
		case reservedEntityTypes[e.Type]:
			return fmt.Errorf("entities[%d].type: %q is reserved by the graph model", i, e.Type)
		}
		for k, v := range e.Props {
			if reservedEntityProps[k] {
				return fmt.Errorf("entities[%d].props.%s: reserved by the graph model", i, k)
			}
			if err := checkValue(v); err != nil {
				return fmt.Errorf("entities[%d].props.%s: %w", i, k, err)
			}
		}
	}
	for i, rel := range ev.Relations {
		switch {
		case !validLabel(rel.Type):
			return fmt.Errorf("relations[%d].type: %q must match %s", i, rel.Type, labelPattern)
		case reservedRelationTypes[rel.Type]:
			return fmt.Errorf("relations[%d].type: %q is reserved by the graph model", i, rel.Type)
		}
		for k, v := range rel.Props {
			if reservedRelationProps[k] {
				return fmt.Errorf("relations[%d].props.%s: reserved by the graph model", i, k)
			}
			if err := checkValue(v); err != nil {
				return fmt.Errorf("relations[%d].props.%s: %w", i, k, err)
			}
		}
	}
	return nil
}

// checkValue accepts what a Neo4j property holds: a scalar or an array of
// scalars (null means "not stated").
func checkValue(v any) error {
	switch x := v.(type) {
	case nil, string, bool, int64, int, []string, []int64, []bool:
		return nil
	case float64:
		return checkFloat(x)
	case []float64:
		for _, f := range x {
			if err := checkFloat(f); err != nil {
				return err
			}
		}
		return nil
	case []any:
		for _, e := range x {
			switch f := e.(type) {
			case string, bool, int64, int:
			case float64:
				if err := checkFloat(f); err != nil {
					return err
				}
			default:
				return fmt.Errorf("array item of type %T (Neo4j stores arrays of scalars only)", e)
			}
		}
		return nil
	}
	return fmt.Errorf("value of type %T (Neo4j stores scalars and arrays of scalars only)", v)
}

func checkFloat(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("not a finite number")
	}
	return nil
}

// checkBatch returns the records of b that the graph model refuses, as
// *pipeline.RecordError values joined and marked permanent, or nil.
func checkBatch(b *pipeline.Batch) error {
	var errs []error
	for _, r := range b.Records {
		if r.Err != nil {
			continue
		}
		if err := checkRecord(r); err != nil {
			errs = append(errs, &pipeline.RecordError{Record: r, Err: fmt.Errorf("neo4j: %w", err)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return pipeline.Permanent(errors.Join(errs...))
}
