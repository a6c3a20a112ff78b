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
	"unsafe"

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
	g := &chunkGraph{}
	g.fill(ev)
	return g
}

// fill sets g to the assertions of ev, reusing g's slices.
func (g *chunkGraph) fill(ev *event.Event) {
	g.Rank = rankOf(ev.TS, ev.ID)
	g.Entities = slices.Grow(g.Entities[:0], len(ev.Entities))
	for _, e := range ev.Entities {
		g.Entities = append(g.Entities, entityAssertion{ID: e.ID, Type: e.Type, Name: e.Name, Props: dropNulls(e.Props)})
	}
	g.Relations = slices.Grow(g.Relations[:0], len(ev.Relations))
	for _, r := range ev.Relations {
		g.Relations = append(g.Relations, relationAssertion{From: r.From, Type: r.Type, To: r.To, Props: dropNulls(r.Props)})
	}
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
	rankV any    // rank as a row value, when one is at hand (the rows of one chunk share it)
	name  string // entities only
	typ   string // entities only
	props map[string]any
}

// merged is the merge of a set of assertions under the rule: per key the value
// and rank of the highest-ranked assertion stating it (keys sorted), and the
// highest-ranked assertion's rank, name and type.
type merged struct {
	rank, name, typ string
	rankV           any // rank as a row value, if the assertion had it
	keys            []string
	vals            []any
	ranks           []string
	single          map[string]any // the props of the one assertion merged, if one
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
		m.rank, m.rankV, m.name, m.typ, m.single = a.rank, a.rankV, a.name, a.typ, a.props
		m.alloc(len(a.props))
		for k := range a.props {
			m.keys = append(m.keys, k)
		}
		slices.Sort(m.keys)
		for i, k := range m.keys {
			m.vals[i], m.ranks[i] = a.props[k], a.rank
		}
		return m
	}
	top := 0
	n := 0
	for i := range as {
		if as[i].rank >= as[top].rank {
			top = i
		}
		n += len(as[i].props)
	}
	m.rank, m.rankV, m.name, m.typ = as[top].rank, as[top].rankV, as[top].name, as[top].typ
	// Per key, the value of the highest rank; of equal ranks the later one.
	type win struct {
		k, rank string
		v       any
	}
	var buf [16]win
	wins := buf[:0]
	var index map[string]int // of wins, once there are many keys
	find := func(k string) int {
		if index != nil {
			if j, ok := index[k]; ok {
				return j
			}
			return -1
		}
		for j := range wins {
			if wins[j].k == k {
				return j
			}
		}
		return -1
	}
	for i := range as {
		a := &as[i]
		for k, v := range a.props {
			j := find(k)
			switch {
			case j < 0:
				wins = append(wins, win{k, a.rank, v})
				if index != nil {
					index[k] = len(wins) - 1
				} else if len(wins) > len(buf) {
					index = make(map[string]int, 2*len(wins))
					for j := range wins {
						index[wins[j].k] = j
					}
				}
			case a.rank >= wins[j].rank:
				wins[j].rank, wins[j].v = a.rank, v
			}
		}
	}
	if len(wins) > len(buf) {
		slices.SortFunc(wins, func(a, b win) int { return strings.Compare(a.k, b.k) })
	} else {
		for i := 1; i < len(wins); i++ {
			for j := i; j > 0 && wins[j].k < wins[j-1].k; j-- {
				wins[j], wins[j-1] = wins[j-1], wins[j]
			}
		}
	}
	m.alloc(len(wins))
	m.keys = m.keys[:len(wins)]
	for i := range wins {
		m.keys[i], m.vals[i], m.ranks[i] = wins[i].k, wins[i].v, wins[i].rank
	}
	return m
}

// alloc makes m's keys (empty, with room for n), vals and ranks (n long).
func (m *merged) alloc(n int) {
	strs := make([]string, 2*n)
	m.keys, m.ranks = strs[:0:n], strs[n:]
	m.vals = make([]any, n)
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
	var xb, yb [256]byte
	x, errA := appendProps(xb[:0], a)
	y, errB := appendProps(yb[:0], b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// The assertions JSON keeps each prop's kind: Neo4j stores int64 and float64
// differently, and encoding/json would read back 2.0 as 2. Floats are written
// with a fraction or an exponent, integers without, and read back by the same
// rule. The encoder appends to a byte slice and sorts keys without a map
// lookup per key: it runs for every upserted chunk.

func encodeGraph(g *chunkGraph) (string, error) {
	n := 48 + len(g.Rank)
	for i := range g.Entities {
		e := &g.Entities[i]
		n += 40 + len(e.ID) + len(e.Type) + len(e.Name) + 24*len(e.Props)
	}
	for i := range g.Relations {
		r := &g.Relations[i]
		n += 40 + len(r.From) + len(r.Type) + len(r.To) + 24*len(r.Props)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"rank":`...)
	b = appendString(b, g.Rank)
	b = append(b, `,"entities":[`...)
	var err error
	for i := range g.Entities {
		e := &g.Entities[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendString(b, e.ID)
		b = append(b, `,"type":`...)
		b = appendString(b, e.Type)
		b = append(b, `,"name":`...)
		b = appendString(b, e.Name)
		if len(e.Props) > 0 {
			b = append(b, `,"props":`...)
			if b, err = appendProps(b, e.Props); err != nil {
				return "", fmt.Errorf("entities[%d].props.%w", i, err)
			}
		}
		b = append(b, '}')
	}
	b = append(b, `],"relations":[`...)
	for i := range g.Relations {
		r := &g.Relations[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"from":`...)
		b = appendString(b, r.From)
		b = append(b, `,"type":`...)
		b = appendString(b, r.Type)
		b = append(b, `,"to":`...)
		b = appendString(b, r.To)
		if len(r.Props) > 0 {
			b = append(b, `,"props":`...)
			if b, err = appendProps(b, r.Props); err != nil {
				return "", fmt.Errorf("relations[%d].props.%w", i, err)
			}
		}
		b = append(b, '}')
	}
	b = append(b, `]}`...)
	return ownedString(b), nil
}

// ownedString returns b's bytes as a string without copying them; b must not
// be used afterwards.
func ownedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// writeString writes s to b as a JSON string, as appendString does.
func writeString(b *bytes.Buffer, s string) {
	b.Write(appendString(nil, s))
}

// jsonSafe marks the ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string. The decoder only lets valid UTF-8
// through; invalid bytes would be written as U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// prop is one key and value of a map being encoded.
type prop struct {
	k string
	v any
}

// appendProps appends props (or any JSON object of the event: metadata
// nests) as a JSON object with sorted keys. An error names the key ("role:
// ...") so the caller can prefix the path.
func appendProps(b []byte, p map[string]any) ([]byte, error) {
	var buf [16]prop
	kvs := buf[:0]
	for k, v := range p {
		kvs = append(kvs, prop{k, v})
	}
	sortProps(kvs)
	b = append(b, '{')
	var err error
	for i := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, kvs[i].k)
		b = append(b, ':')
		if b, err = appendValue(b, kvs[i].v); err != nil {
			return b, fmt.Errorf("%s: %w", kvs[i].k, err)
		}
	}
	return append(b, '}'), nil
}

// sortProps sorts kvs by key: by insertion for the few keys props have.
func sortProps(kvs []prop) {
	if len(kvs) > 12 {
		slices.SortFunc(kvs, func(a, b prop) int { return strings.Compare(a.k, b.k) })
		return
	}
	for i := 1; i < len(kvs); i++ {
		for j := i; j > 0 && kvs[j].k < kvs[j-1].k; j-- {
			kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
		}
	}
}

func appendValue(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case string:
		b = appendString(b, x)
	case bool:
		b = strconv.AppendBool(b, x)
	case int64:
		b = strconv.AppendInt(b, x, 10)
	case int:
		b = strconv.AppendInt(b, int64(x), 10)
	case float64:
		if b, err = appendFloat(b, x); err != nil {
			return b, err
		}
	case []any:
		return appendList(b, x, appendValue)
	case map[string]any:
		return appendProps(b, x)
	case nil:
		b = append(b, "null"...)
	case []string:
		return appendList(b, x, func(b []byte, e string) ([]byte, error) { return appendString(b, e), nil })
	case []int64:
		return appendList(b, x, func(b []byte, e int64) ([]byte, error) { return strconv.AppendInt(b, e, 10), nil })
	case []float64:
		return appendList(b, x, appendFloat)
	case []bool:
		return appendList(b, x, func(b []byte, e bool) ([]byte, error) { return strconv.AppendBool(b, e), nil })
	default:
		return b, fmt.Errorf("unsupported value of type %T", v)
	}
	return b, nil
}

// appendList appends xs as a JSON array, each element by appendElem.
func appendList[T any](b []byte, xs []T, appendElem func([]byte, T) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	for i, e := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendElem(b, e); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendFloat appends a finite x with a fraction or an exponent.
func appendFloat(b []byte, x float64) ([]byte, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return b, fmt.Errorf("not a finite number")
	}
	n := len(b)
	b = strconv.AppendFloat(b, x, 'g', -1, 64)
	if !bytes.ContainsAny(b[n:], ".eE") {
		b = append(b, ".0"...)
	}
	return b, nil
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
