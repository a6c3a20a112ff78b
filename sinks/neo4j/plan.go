package neo4j

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ragstream/ragstream/pipeline"
)

// withdrawal collects the assertions a batch takes back from one entity or
// relationship.
type withdrawal struct {
	ranks  []string // ranks of the withdrawn assertions
	chunks []string // ids of the withdrawing chunks
}

func (w *withdrawal) add(rank, chunk string) {
	w.ranks = append(w.ranks, rank)
	w.chunks = append(w.chunks, chunk)
}

// incomingRel collects the batch's assertions of one relationship.
type incomingRel struct {
	srcs []string
	as   []ranked
}

// plan is what a batch's writes do to the graph, worked out in Go from the
// writes and the previous assertions of the chunks they replace, before any
// statement runs.
type plan struct {
	deletes    []any // {tenant, id, version}: chunks to delete, markers to set
	upserts    []any // {tenant, id, props, mentions}
	unmarks    []any // {tenant, id}: markers of re-created chunks
	unmentions []any // {tenant, chunk, entity}
	entIn      map[entKey][]ranked
	entOut     map[entKey]*withdrawal
	relIn      map[relKey]*incomingRel
	relOut     map[relKey]*withdrawal

	// Scratch space: the graph of the upsert being added, and the first
	// assertion of each incoming entity and relationship.
	g       chunkGraph
	entAs   arena[ranked]
	relAs   arena[ranked]
	relSrcs arena[string]
	rels    arena[incomingRel]
}

// arena hands out short slices cut from larger allocations.
type arena[T any] struct{ buf []T }

// one returns a slice holding v, with no room to append in place.
func (a *arena[T]) one(v T) []T {
	if len(a.buf) == cap(a.buf) {
		a.buf = make([]T, 0, max(64, cap(a.buf)))
	}
	a.buf = append(a.buf, v)
	n := len(a.buf)
	return a.buf[n-1 : n : n]
}

// chunkMeta is what the chunk's lineage properties need besides the event.
type chunkMeta struct {
	storeText bool
	now       time.Time
	nowValue  any // now as a property value, boxed once per batch (boxNow)
}

// boxNow sets nowValue, unless set.
func (m *chunkMeta) boxNow() {
	if m.nowValue == nil {
		m.nowValue = m.now
	}
}

// newPlan works out the graph changes of writes. priors holds the stored
// assertions of every key whose chunk exists (Prior.State == Present).
func newPlan(writes []pipeline.Write, priors map[pipeline.Key]*chunkGraph, meta chunkMeta) (*plan, error) {
	// Sized for batches of new chunks of a few entities and relations each,
	// so that the maps do not grow step by step.
	p := &plan{
		upserts: make([]any, 0, len(writes)),
		entIn:   make(map[entKey][]ranked, 2*len(writes)),
		entOut:  map[entKey]*withdrawal{},
		relIn:   make(map[relKey]*incomingRel, 2*len(writes)),
		relOut:  map[relKey]*withdrawal{},
	}
	meta.boxNow()
	for i := range writes {
		w := &writes[i]
		old := priors[w.Key]
		switch w.Action {
		case pipeline.ActionDelete:
			p.addDelete(w, old)
		case pipeline.ActionUpsert:
			if err := p.addUpsert(w, old, meta); err != nil {
				return nil, &pipeline.RecordError{Record: w.Record, Err: fmt.Errorf("neo4j: %w", err)}
			}
		}
	}
	return p, nil
}

func (p *plan) addDelete(w *pipeline.Write, old *chunkGraph) {
	// A marker that already remembers this version (a replayed delete) needs
	// nothing; any other delete removes the chunk, if any, and sets the marker.
	if w.Prior.State != pipeline.Deleted || w.Prior.Version != w.Version {
		row := map[string]any{"tenant": w.Key.Tenant, "id": w.Key.ID, "version": w.Version}
		// The marker's time is the delete record's Kafka timestamp, a
		// function of the record like every other stored field, so a replay
		// that re-creates and deletes the chunk again stores the same marker.
		if w.Record != nil && w.Record.Src != nil && !w.Record.Src.Timestamp.IsZero() {
			row["deleted_at"] = w.Record.Src.Timestamp.UTC()
		}
		p.deletes = append(p.deletes, row)
	}
	if old == nil {
		return
	}
	for _, e := range old.Entities {
		p.withdrawEntity(entKey{w.Key.Tenant, e.ID}, old.Rank, w.Key.ID)
	}
	for _, r := range old.Relations {
		p.withdrawRelation(relKey{w.Key.Tenant, r.From, r.Type, r.To}, old.Rank, w.Key.ID)
	}
}

func (p *plan) addUpsert(w *pipeline.Write, old *chunkGraph, meta chunkMeta) error {
	ev := &w.Record.Event
	g := &p.g
	g.fill(ev)
	tenant, cid := w.Key.Tenant, w.Key.ID
	assertions, err := encodeGraph(g)
	if err != nil {
		return err
	}
	ids := make([]string, len(g.Entities))
	for i := range g.Entities {
		ids[i] = g.Entities[i].ID
	}
	props, err := chunkPropsOf(w, assertions, ids, meta)
	if err != nil {
		return err
	}
	if w.Prior.State == pipeline.Deleted {
		p.unmarks = append(p.unmarks, map[string]any{"tenant": tenant, "id": cid})
	}

	// Entities: an assertion equal to the chunk's previous one changes
	// nothing; one that covers it is merged; otherwise the previous one is
	// withdrawn first.
	// A new chunk mentions every entity it names.
	mentions := ids
	if old != nil {
		mentions = make([]string, 0, len(g.Entities))
	}
	var rankV any = g.Rank
	for i := range g.Entities {
		e := &g.Entities[i]
		k := entKey{tenant, e.ID}
		in := ranked{rank: g.Rank, rankV: rankV, name: e.Name, typ: e.Type, props: e.Props}
		var o *entityAssertion
		if old != nil {
			o = old.entity(e.ID)
		}
		switch {
		case o == nil:
			if old != nil {
				mentions = append(mentions, e.ID)
			}
			p.addEntity(k, in)
		case old.Rank == g.Rank && sameEntity(o, e):
		case covers(g.Rank, e.Props, old.Rank, o.Props):
			p.addEntity(k, in)
		default:
			p.withdrawEntity(k, old.Rank, cid)
			p.addEntity(k, in)
		}
	}
	// Relations, by the same rule; the chunk joins the sources of new ones.
	for i := range g.Relations {
		r := &g.Relations[i]
		k := relKey{tenant, r.From, r.Type, r.To}
		var o *relationAssertion
		if old != nil {
			o = old.relation(r.From, r.Type, r.To)
		}
		switch {
		case o != nil && old.Rank == g.Rank && propsEqual(o.Props, r.Props):
			continue
		case o != nil && !covers(g.Rank, r.Props, old.Rank, o.Props):
			p.withdrawRelation(k, old.Rank, cid)
		}
		a := ranked{rank: g.Rank, rankV: rankV, props: r.Props}
		if in := p.relIn[k]; in != nil {
			in.srcs = append(in.srcs, cid)
			in.as = append(in.as, a)
			continue
		}
		in := &p.rels.one(incomingRel{srcs: p.relSrcs.one(cid), as: p.relAs.one(a)})[0]
		p.relIn[k] = in
	}
	if old != nil {
		for _, o := range old.Entities {
			if g.entity(o.ID) == nil {
				p.withdrawEntity(entKey{tenant, o.ID}, old.Rank, cid)
				p.unmentions = append(p.unmentions, map[string]any{"tenant": tenant, "chunk": cid, "entity": o.ID})
			}
		}
		for _, o := range old.Relations {
			if g.relation(o.From, o.Type, o.To) == nil {
				p.withdrawRelation(relKey{tenant, o.From, o.Type, o.To}, old.Rank, cid)
			}
		}
	}
	p.upserts = append(p.upserts, map[string]any{"tenant": tenant, "id": cid, "props": props, "mentions": mentions})
	return nil
}

// addEntity adds an incoming assertion of the entity k.
func (p *plan) addEntity(k entKey, in ranked) {
	if as := p.entIn[k]; as != nil {
		p.entIn[k] = append(as, in)
		return
	}
	p.entIn[k] = p.entAs.one(in)
}

func (p *plan) withdrawEntity(k entKey, rank, chunk string) {
	w := p.entOut[k]
	if w == nil {
		w = &withdrawal{}
		p.entOut[k] = w
	}
	w.add(rank, chunk)
}

func (p *plan) withdrawRelation(k relKey, rank, chunk string) {
	w := p.relOut[k]
	if w == nil {
		w = &withdrawal{}
		p.relOut[k] = w
	}
	w.add(rank, chunk)
}

// chunkProps returns every stored property of an upserted chunk but its key;
// a nil value removes a property an earlier version had.
func chunkProps(w *pipeline.Write, assertions string, meta chunkMeta) (map[string]any, error) {
	entities := make([]string, len(w.Record.Event.Entities))
	for i, e := range w.Record.Event.Entities {
		entities[i] = e.ID
	}
	return chunkPropsOf(w, assertions, entities, meta)
}

// chunkPropsOf is chunkProps given the ids of the event's entities.
func chunkPropsOf(w *pipeline.Write, assertions string, entities []string, meta chunkMeta) (map[string]any, error) {
	r := w.Record
	ev := &r.Event
	meta.boxNow()
	// Each key is set once, to its value or to nil.
	var docID, text, ts, metadata, correlationID, topic, partition, offset any
	if ev.DocID != "" {
		docID = ev.DocID
	}
	if meta.storeText && ev.HasText {
		text = ev.Text
	}
	if !ev.TS.IsZero() {
		ts = ev.TS.UTC()
	}
	if ev.Metadata != nil {
		b, err := appendProps(make([]byte, 0, 32+32*len(ev.Metadata)), ev.Metadata)
		if err != nil {
			return nil, fmt.Errorf("metadata.%w", err)
		}
		metadata = ownedString(b)
	}
	if r.CorrelationID != "" {
		correlationID = r.CorrelationID
	}
	if r.Src != nil {
		topic, partition, offset = r.Src.Topic, int64(r.Src.Partition), r.Src.Offset
	}
	return map[string]any{
		"doc_id":           docID,
		"text":             text,
		"version":          w.Version,
		"ts":               ts,
		"metadata":         metadata,
		"entities":         entities,
		"assertions":       assertions,
		"correlation_id":   correlationID,
		"ingested_at":      meta.nowValue,
		"source_topic":     topic,
		"source_partition": partition,
		"source_offset":    offset,
	}, nil
}

// entityMergeRows merges each entity's incoming assertions into one row,
// sorted by key so that batches lock shared entities in one order.
func entityMergeRows(in map[entKey][]ranked) []any {
	keys := sortedEntKeys(in)
	rows := make([]any, len(keys))
	var tenant boxed
	for i, k := range keys {
		m := mergeAll(in[k])
		row := m.mergeRow(5)
		row["i"], row["tenant"], row["id"], row["name"], row["type"] = int64(i), tenant.of(k.Tenant), k.ID, m.name, m.typ
		rows[i] = row
	}
	return rows
}

// relationMergeRows does the same for relationships.
func relationMergeRows(in map[relKey]*incomingRel) []any {
	keys := sortedRelKeys(in)
	rows := make([]any, len(keys))
	var tenant boxed
	for i, k := range keys {
		m := mergeAll(in[k].as)
		row := m.mergeRow(6)
		row["i"], row["tenant"], row["from"], row["type"], row["to"], row["srcs"] = int64(i), tenant.of(k.Tenant), k.From, k.Type, k.To, in[k].srcs
		rows[i] = row
	}
	return rows
}

// boxed converts strings to values, once for a run of equal strings (rows
// sorted by tenant share its value).
type boxed struct {
	s string
	v any
}

func (b *boxed) of(s string) any {
	if b.v == nil || s != b.s {
		b.s, b.v = s, s
	}
	return b.v
}

func sortedEntKeys[V any](m map[entKey]V) []entKey {
	keys := make([]entKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b entKey) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys
}

func sortedRelKeys[V any](m map[relKey]V) []relKey {
	keys := make([]relKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b relKey) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		if c := strings.Compare(a.To, b.To); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	return keys
}

// mergeRow returns the merge statements' row fields for m: rank, keys,
// vals, ranks, props (keys to vals) and uniform (every key at rank), in a
// map with room for extra more.
func (m merged) mergeRow(extra int) map[string]any {
	uniform := true
	for _, r := range m.ranks {
		if r != m.rank {
			uniform = false
			break
		}
	}
	row := make(map[string]any, 6+extra)
	row["rank"], row["props"], row["uniform"] = m.rankValue(), m.propMap(), uniform
	if len(m.keys) == 0 {
		// The rows of elements without properties share these.
		row["keys"], row["vals"], row["ranks"] = noStrings, noValues, noStrings
	} else {
		row["keys"], row["vals"], row["ranks"] = m.keys, m.vals, m.ranks
	}
	return row
}

// Empty lists and map as row values, shared: never written to.
var (
	noStrings any = []string{}
	noValues  any = []any{}
	noProps       = map[string]any{}
)

// rankValue returns m.rank as a row value.
func (m merged) rankValue() any {
	if m.rankV != nil {
		return m.rankV
	}
	return m.rank
}

// propMap returns m's keys mapped to their values: the one assertion's own
// props when m merges one (never written to, like every map a row holds).
func (m merged) propMap() map[string]any {
	switch {
	case m.single != nil && len(m.single) == len(m.keys):
		return m.single
	case len(m.keys) == 0:
		return noProps
	}
	props := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		props[k] = m.vals[i]
	}
	return props
}

// replaceRow returns the recompute statements' row fields for m, replacing
// an element that has the property keys had: rank, props, the exceptions
// pk/pr (keys whose rank is below m.rank; nil when none) and drop (keys of
// had no assertion states any more).
func (m merged) replaceRow(had []string) map[string]any {
	props := m.propMap()
	var pk, pr []string
	for i, k := range m.keys {
		if m.ranks[i] != m.rank {
			pk = append(pk, k)
			pr = append(pr, m.ranks[i])
		}
	}
	row := map[string]any{"rank": m.rank, "props": props, "pk": nil, "pr": nil, "drop": drop(had, m.keys)}
	if len(pk) > 0 {
		row["pk"], row["pr"] = pk, pr
	}
	return row
}

// drop returns the keys of had that keep does not hold.
func drop(had []string, keep []string) []string {
	out := []string{}
	for _, k := range had {
		if !slices.Contains(keep, k) {
			out = append(out, k)
		}
	}
	return out
}
