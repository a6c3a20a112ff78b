package neo4j

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
)

// A uniqueness (or node key) constraint violation names the label or
// relationship type and the property values it found twice, e.g.
//
//	Node(46570) already exists with label `Refused` and property `serial` = 'taken'
//	Node(46570) already exists with label `L` and properties `a` = 1, `b` = 'x'
//	Relationship(152750) already exists with type `T` and property `serial` = 7
//
// (Neo4j 5). The records whose graph content writes those values are the
// suspects: withSuspects names them, so the pipeline tries them alone
// instead of bisecting the batch (pipeline.SuspectError).
var violationPattern = regexp.MustCompile("^(Node|Relationship)\\(\\d+\\) already exists with (?:label|type) `([^`]+)` and propert(?:y|ies) (.+)$")

// violation is what a constraint violation's message names.
type violation struct {
	relationship bool
	name         string            // label or relationship type
	props        map[string]string // property -> value as Neo4j prints it
}

// parseViolation reads msg; ok is false when it is not a message of the
// shape above.
func parseViolation(msg string) (v violation, ok bool) {
	m := violationPattern.FindStringSubmatch(msg)
	if m == nil {
		return v, false
	}
	v = violation{relationship: m[1] == "Relationship", name: m[2], props: map[string]string{}}
	rest := m[3]
	for rest != "" {
		// `key` = value, where a string value is 'quoted' and may hold
		// anything, and any other value runs to the next ", `".
		if !strings.HasPrefix(rest, "`") {
			return v, false
		}
		end := strings.Index(rest[1:], "` = ")
		if end < 0 {
			return v, false
		}
		key := rest[1 : 1+end]
		rest = rest[1+end+len("` = "):]
		var val string
		if strings.HasPrefix(rest, "'") {
			q := strings.Index(rest[1:], "', `")
			if q < 0 {
				if !strings.HasSuffix(rest, "'") || len(rest) < 2 {
					return v, false
				}
				q = len(rest) - 2
			}
			val, rest = rest[:q+2], rest[q+2:]
		} else {
			next := strings.Index(rest, ", `")
			if next < 0 {
				next = len(rest)
			}
			val, rest = rest[:next], rest[next:]
		}
		v.props[key] = val
		rest = strings.TrimPrefix(rest, ", ")
	}
	return v, len(v.props) > 0
}

// withSuspects returns err, the classified error of a failed Apply whose
// cause is cause, naming as suspects the records of valid whose content
// writes what a constraint violation found twice. Any other error comes
// back as it was.
func withSuspects(err, cause error, valid []*pipeline.Record) error {
	if pipeline.ClassOf(err) != pipeline.ClassPermanent {
		return err
	}
	var dbErr *neo4j.Neo4jError
	if !errors.As(cause, &dbErr) || dbErr.Code != "Neo.ClientError.Schema.ConstraintValidationFailed" {
		return err
	}
	v, ok := parseViolation(dbErr.Msg)
	if !ok {
		return err
	}
	var sus []*pipeline.Record
	for _, r := range valid {
		if v.writtenBy(r) {
			sus = append(sus, r)
		}
	}
	if len(sus) == 0 {
		return err
	}
	return pipeline.Permanent(&pipeline.SuspectError{Records: sus, Err: err})
}

// writtenBy reports whether r asserts an entity (or relationship) of v's
// label (type) with every property value v names. A value whose printed
// form cannot be compared counts as a match: a suspect too many is only
// tried alone once more, one too few leaves its batch to bisecting.
func (v violation) writtenBy(r *pipeline.Record) bool {
	ev := &r.Event
	if v.relationship {
		for _, rel := range ev.Relations {
			if rel.Type == v.name && v.matches(func(k string) (any, bool) {
				x, ok := rel.Props[k]
				return x, ok
			}) {
				return true
			}
		}
		return false
	}
	if v.name == labelChunk {
		return v.matches(func(k string) (any, bool) {
			switch k {
			case "tenant":
				return ev.Tenant, true
			case "id":
				return ev.ID, true
			case "doc_id":
				return ev.DocID, ev.DocID != ""
			case "correlation_id":
				return r.CorrelationID, true
			}
			return nil, true // a property not compared: suspect
		})
	}
	for _, e := range ev.Entities {
		if e.Type != v.name && v.name != labelEntity {
			continue
		}
		if v.matches(func(k string) (any, bool) {
			switch k {
			case "tenant":
				return ev.Tenant, true
			case "id":
				return e.ID, true
			case "name":
				return e.Name, true
			case "type":
				return e.Type, true
			}
			x, ok := e.Props[k]
			return x, ok
		}) {
			return true
		}
	}
	return false
}

// matches reports whether every property of v has its value in get; get
// returns nil, true for a value it does not know.
func (v violation) matches(get func(key string) (any, bool)) bool {
	for k, want := range v.props {
		x, ok := get(k)
		if !ok {
			return false
		}
		if got, comparable := printed(x); comparable && got != want {
			return false
		}
	}
	return true
}

// printed returns a value as Neo4j prints it in a constraint violation, for
// the kinds whose printing is certain.
func printed(x any) (string, bool) {
	switch x := x.(type) {
	case string:
		return "'" + x + "'", true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
