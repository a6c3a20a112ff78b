package neo4j

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ragstream/ragstream/pipeline/event"
)

// A chunk asserts entities and relations. The graph holds the merge of every
// current assertion (DESIGN.md §3), decided by one rule:
//
//   - Each assertion has a rank: the event's ts, then the chunk id. rankOf
//     spells it as one string whose byte order is that order.
//   - A property key takes the value of the highest-ranked assertion that
//     states it; an entity's name and type (its label) come from its
//     highest-ranked assertion.
//
// The rule does not depend on the order in which assertions arrive, so two
// partitions writing the same entity in either order end in the same state.
// To apply it incrementally, entities and relationships remember, per
// property key, the rank of the assertion that set it (_pk, _pr), and entities
// the rank of the one that set name and type (_rank). See docs/neo4j-model.md.

// rankOf returns the rank of an assertion by chunk id made at ts: 16 hex
// digits of the ts in nanoseconds (offset so that times before 1970 sort
// first; the zero time, an event without ts, is all zeros), then the id.
// Fixed width makes byte order equal (ts, id) order.
func rankOf(ts time.Time, chunkID string) string {
	var n uint64
	if !ts.IsZero() {
		n = uint64(ts.UnixNano()) ^ (1 << 63)
	}
	b := make([]byte, 0, 16+len(chunkID))
	const hexdigits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexdigits[(n>>uint(shift))&0xf])
	}
	return string(append(b, chunkID...))
}

// entityAssertion is what one chunk says about one entity.
type entityAssertion struct {
	ID    string         `json:"id"`
	Type  string         `json:"type"`
	Name  string         `json:"name"`
	Props map[string]any `json:"props,omitempty"`
}

// relationAssertion is what one chunk says about one relationship.
type relationAssertion struct {
	From  string         `json:"from"`
	Type  string         `json:"type"`
	To    string         `json:"to"`
	Props map[string]any `json:"props,omitempty"`
}

// relKey identifies a relationship of one tenant's graph.
type relKey struct {
	Tenant, From, Type, To string
}

// entKey identifies an entity of one tenant's graph.
type entKey struct {
	Tenant, ID string
}

// chunkGraph is everything a chunk asserts, kept on the Chunk node as the JSON
// property "assertions" so that re-writing or deleting the chunk can withdraw
// exactly what it said, and a withdrawal can recompute an entity or a
// relationship from the assertions that remain.
type chunkGraph struct {
	Rank      string              `json:"rank"`
	Entities  []entityAssertion   `json:"entities"`
	Relations []relationAssertion `json:"relations"`
}

// graphOf returns the assertions of an upsert event. Null-valued props are
// dropped: a property Neo4j cannot store is not asserted.
func graphOf(ev *event.Event) *chunkGraph {
	g := &chunkGraph{
		Rank:      rankOf(ev.TS, ev.ID),
		Entities:  make([]entityAssertion, len(ev.Entities)),
		Relations: make([]relationAssertion, len(ev.Relations)),
	}
	for i, e := range ev.Entities {
		g.Entities[i] = entityAssertion{ID: e.ID, Type: e.Type, Name: e.Name, Props: dropNulls(e.Props)}
	}
	for i, r := range ev.Relations {
		g.Relations[i] = relationAssertion{From: r.From, Type: r.Type, To: r.To, Props: dropNulls(r.Props)}
	}
	return g
}

// dropNulls returns p without its null values; p itself when it has none.
func dropNulls(p map[string]any) map[string]any {
	if len(p) == 0 {
		return nil
	}
	nulls := 0
	for _, v := range p {
		if v == nil {
			nulls++
		}
	}
	if nulls == 0 {
		return p
	}
	if nulls == len(p) {
		return nil
	}
	out := make(map[string]any, len(p)-nulls)
	for k, v := range p {
		if v != nil {
			out[k] = v
		}
	}
	return out
}

func (g *chunkGraph) entity(id string) *entityAssertion {
	for i := range g.Entities {
		if g.Entities[i].ID == id {
			return &g.Entities[i]
		}
	}
	return nil
}

func (g *chunkGraph) relation(from, typ, to string) *relationAssertion {
	for i := range g.Relations {
		r := &g.Relations[i]
		if r.From == from && r.Type == typ && r.To == to {
			return r
		}
	}
	return nil
}

// ranked is one assertion's contribution to an entity or relationship.
type ranked struct {
	rank  string
	name  string // entities only
	typ   string // entities only
	props map[string]any
}

// merged is the merge of a set of assertions under the rule: per key the value
// and rank of the highest-ranked assertion stating it (keys sorted), and the
// highest-ranked assertion's rank, name and type.
type merged struct {
	rank, name, typ string
	keys            []string
	vals            []any
	ranks           []string
}

// mergeAll merges assertions in any order; ranks are distinct (one assertion
// per chunk), and equal ranks would keep the later one.
func mergeAll(as []ranked) merged {
	var m merged
	switch len(as) {
	case 0:
		return m
	case 1:
		a := as[0]
		m.rank, m.name, m.typ = a.rank, a.name, a.typ
		m.keys = make([]string, 0, len(a.props))
		for k := range a.props {
			m.keys = append(m.keys, k)
		}
		slices.Sort(m.keys)
		m.vals = make([]any, len(m.keys))
		m.ranks = make([]string, len(m.keys))
		for i, k := range m.keys {
			m.vals[i], m.ranks[i] = a.props[k], a.rank
		}
		return m
	}
	sorted := slices.Clone(as)
	slices.SortStableFunc(sorted, func(a, b ranked) int { return strings.Compare(a.rank, b.rank) })
	type cell struct {
		v    any
		rank string
	}
	cells := map[string]cell{}
	for _, a := range sorted {
		for k, v := range a.props {
			cells[k] = cell{v, a.rank}
		}
	}
	top := sorted[len(sorted)-1]
	m.rank, m.name, m.typ = top.rank, top.name, top.typ
	m.keys = make([]string, 0, len(cells))
	for k := range cells {
		m.keys = append(m.keys, k)
	}
	slices.Sort(m.keys)
	m.vals = make([]any, len(m.keys))
	m.ranks = make([]string, len(m.keys))
	for i, k := range m.keys {
		m.vals[i], m.ranks[i] = cells[k].v, cells[k].rank
	}
	return m
}

// covers reports whether an assertion by a chunk replaces that chunk's
// previous assertion old without a withdrawal: every key old could have won
// is stated again at a rank no lower, so merging the new one is exact.
func covers(newRank string, newProps map[string]any, oldRank string, oldProps map[string]any) bool {
	if newRank < oldRank {
		return false
	}
	for k := range oldProps {
		if _, ok := newProps[k]; !ok {
			return false
		}
	}
	return true
}

func sameEntity(a, b *entityAssertion) bool {
	return a.Type == b.Type && a.Name == b.Name && propsEqual(a.Props, b.Props)
}

func propsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	var x, y bytes.Buffer
	if appendProps(&x, a) != nil || appendProps(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// The assertions JSON keeps each prop's kind: Neo4j stores int64 and float64
// differently, and encoding/json would read back 2.0 as 2. Floats are written
// with a fraction or an exponent, integers without, and read back by the same
// rule.

func encodeGraph(g *chunkGraph) (string, error) {
	var b bytes.Buffer
	b.Grow(64 + 96*len(g.Entities) + 80*len(g.Relations))
	b.WriteString(`{"rank":`)
	writeString(&b, g.Rank)
	b.WriteString(`,"entities":[`)
	for i, e := range g.Entities {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":`)
		writeString(&b, e.ID)
		b.WriteString(`,"type":`)
		writeString(&b, e.Type)
		b.WriteString(`,"name":`)
		writeString(&b, e.Name)
		if len(e.Props) > 0 {
			b.WriteString(`,"props":`)
			if err := appendProps(&b, e.Props); err != nil {
				return "", fmt.Errorf("entities[%d].props.%w", i, err)
			}
		}
		b.WriteByte('}')
	}
	b.WriteString(`],"relations":[`)
	for i, r := range g.Relations {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"from":`)
		writeString(&b, r.From)
		b.WriteString(`,"type":`)
		writeString(&b, r.Type)
		b.WriteString(`,"to":`)
		writeString(&b, r.To)
		if len(r.Props) > 0 {
			b.WriteString(`,"props":`)
			if err := appendProps(&b, r.Props); err != nil {
				return "", fmt.Errorf("relations[%d].props.%w", i, err)
			}
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.String(), nil
}

// writeString writes s as a JSON string. The decoder only lets valid UTF-8
// through; invalid bytes would be written as U+FFFD, as encoding/json does.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// appendProps writes props (or any JSON object of the event: metadata nests)
// as a JSON object with sorted keys. An error names the key ("role: ...") so
// the caller can prefix the path.
func appendProps(b *bytes.Buffer, p map[string]any) error {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, k)
		b.WriteByte(':')
		if err := appendValue(b, p[k]); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	b.WriteByte('}')
	return nil
}

func appendValue(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		writeString(b, x)
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("not a finite number")
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		b.WriteString(s)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := appendValue(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		return appendProps(b, x)
	case nil:
		b.WriteString("null")
	case []string:
		return appendValue(b, anySlice(x))
	case []int64:
		return appendValue(b, anySlice(x))
	case []float64:
		return appendValue(b, anySlice(x))
	case []bool:
		return appendValue(b, anySlice(x))
	default:
		return fmt.Errorf("unsupported value of type %T", v)
	}
	return nil
}

func anySlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func decodeGraph(s string) (*chunkGraph, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var g chunkGraph
	if err := d.Decode(&g); err != nil {
		return nil, &internalError{fmt.Errorf("decode chunk assertions: %w", err)}
	}
	for i := range g.Entities {
		if err := kinds(g.Entities[i].Props); err != nil {
			return nil, &internalError{fmt.Errorf("decode chunk assertions: entities[%d].props.%w", i, err)}
		}
	}
	for i := range g.Relations {
		if err := kinds(g.Relations[i].Props); err != nil {
			return nil, &internalError{fmt.Errorf("decode chunk assertions: relations[%d].props.%w", i, err)}
		}
	}
	return &g, nil
}

// kinds turns the json.Numbers of decoded props back into int64 or float64.
func kinds(p map[string]any) error {
	for k, v := range p {
		nv, err := kind(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		p[k] = nv
	}
	return nil
}

func kind(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return strconv.ParseFloat(s, 64)
		}
		return strconv.ParseInt(s, 10, 64)
	case []any:
		for i, e := range x {
			ne, err := kind(e)
			if err != nil {
				return nil, err
			}
			x[i] = ne
		}
		return x, nil
	}
	return v, nil
}
