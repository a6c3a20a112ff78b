// Package sample generates realistic, deterministic events of the ragstream
// contract (pipeline/event) for the demo, `ragstream produce`, benchmarks and
// integration tests, and computes the state a correct pipeline must end in
// after ingesting them (Fold, Expect).
//
// The events mix tenants whose chunk ids collide (acme/doc-0001#0 and
// globex/doc-0001#0 are different chunks), mention entities from a shared
// catalog with unicode names, relate them with typed relations, and carry
// 384-dimensional unit vectors printed with 6 decimals, about 4.8 KB per
// event.
package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Header is a Kafka record header (the same shape as kgo.RecordHeader, so
// kgo.RecordHeader(h) converts it).
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record: Key nil for an unkeyed record, Value nil for a
// tombstone.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
}

// CorrelationHeader is the header ragstream propagates into logs, the DLQ and
// stored lineage.
const CorrelationHeader = "correlation-id"

// Options shape a generated stream. The zero value generates only new chunks
// (all keyed, all with a correlation id, version 1) with the defaults below;
// the fractions add the other kinds of record. The fractions are
// probabilities per record after the first few, and must sum to at most 1.
type Options struct {
	// Seed selects the stream; the same options give the same bytes.
	Seed uint64
	// Tenants defaults to DefaultTenants.
	Tenants []string
	// Dims is the vector length, default 384.
	Dims int
	// EntitiesPerEvent defaults to 3 and RelationsPerEvent to 2 (fewer when
	// the event's entities allow fewer); a negative value means none.
	EntitiesPerEvent  int
	RelationsPerEvent int
	// ChunksPerDoc is how many chunks a document is split into, default 4.
	ChunksPerDoc int
	// Updates re-send an earlier chunk with a higher version and new content.
	Updates float64
	// Stale re-send an earlier chunk with a lower version: the fold skips them.
	Stale float64
	// Deletes are op:"delete" events of an earlier chunk at a higher version.
	Deletes float64
	// Tombstones are records with a null value for an earlier chunk.
	Tombstones float64
	// Unkeyed records carry no key (they lose the per-key ordering; the
	// generator only leaves new chunks unkeyed, so the final state is the same).
	Unkeyed float64
	// EscapeNonASCII writes non-ASCII text as \u escapes (surrogate pairs
	// beyond the BMP), as Python's json.dumps does by default.
	EscapeNonASCII float64
	// NoCorrelationID leaves out the correlation-id header.
	NoCorrelationID float64
	// Start is the ts of the first event, default 2026-01-08T12:00:00Z;
	// each event is one second later (plus milliseconds of jitter).
	Start time.Time
}

// DefaultTenants are the tenants of a default stream; "umbrella-eu" has a
// dash the tenant pattern allows.
var DefaultTenants = []string{"acme", "globex", "initech", "umbrella-eu"}

// DefaultOptions returns a realistic mix: mostly new chunks, some updates,
// a few stale re-sends, deletes, tombstones, unkeyed records, Python-style
// escaped text and records without a correlation id.
func DefaultOptions() Options {
	return Options{
		Seed:            1,
		Updates:         0.08,
		Stale:           0.02,
		Deletes:         0.03,
		Tombstones:      0.02,
		Unkeyed:         0.02,
		EscapeNonASCII:  0.2,
		NoCorrelationID: 0.1,
	}
}

func (o Options) withDefaults() Options {
	if len(o.Tenants) == 0 {
		o.Tenants = DefaultTenants
	}
	if o.Dims <= 0 {
		o.Dims = 384
	}
	if o.EntitiesPerEvent == 0 {
		o.EntitiesPerEvent = 3
	}
	if o.RelationsPerEvent == 0 {
		o.RelationsPerEvent = 2
	}
	if o.ChunksPerDoc <= 0 {
		o.ChunksPerDoc = 4
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)
	}
	return o
}

// chunk is what the generator remembers of a chunk it has sent.
type chunk struct {
	tenant  string
	doc     int
	part    int
	version int64
}

func (c *chunk) id() string {
	return "doc-" + pad4(c.doc) + "#" + strconv.Itoa(c.part)
}

type generator struct {
	opt    Options
	r      *rand.Rand
	bases  [][]float64
	chunks []*chunk
	docs   map[string]*chunk // tenant -> the document being split
	seq    int
	vec    []float64
	buf    []byte
}

// Generate returns n records. It is deterministic in opt and costs about as
// much CPU as decoding the records does (BenchmarkGenerate), so benchmarks
// generate their input before they measure.
func Generate(n int, opt Options) []Record {
	opt = opt.withDefaults()
	g := &generator{
		opt:   opt,
		r:     rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x5851f42d4c957f2d)),
		bases: entityBases(opt.Dims),
		docs:  map[string]*chunk{},
		vec:   make([]float64, opt.Dims),
	}
	out := make([]Record, 0, n)
	for range n {
		out = append(out, g.next())
	}
	return out
}

// next generates one record.
func (g *generator) next() Record {
	g.seq++
	o := &g.opt
	var rec Record
	x := g.r.Float64()
	kind := "new"
	if len(g.chunks) >= 4 {
		switch {
		case x < o.Updates:
			kind = "update"
		case x < o.Updates+o.Stale:
			kind = "stale"
		case x < o.Updates+o.Stale+o.Deletes:
			kind = "delete"
		case x < o.Updates+o.Stale+o.Deletes+o.Tombstones:
			kind = "tombstone"
		}
	}
	var c *chunk
	version := int64(1)
	unkeyed := false
	switch kind {
	case "new":
		// An unkeyed record may land in any partition, so no later record
		// of the same chunk may depend on its order: unkeyed chunks are
		// never updated, deleted or tombstoned.
		unkeyed = g.r.Float64() < o.Unkeyed
		c = g.newChunk(!unkeyed)
	case "update", "delete":
		c = g.chunks[g.r.IntN(len(g.chunks))]
		c.version += 1 + int64(g.r.IntN(2))
		version = c.version
	case "stale":
		c = g.chunks[g.r.IntN(len(g.chunks))]
		version = c.version - 1
	case "tombstone":
		c = g.chunks[g.r.IntN(len(g.chunks))]
	}
	if !unkeyed {
		rec.Key = []byte(c.tenant + "/" + c.id())
	}
	if g.r.Float64() >= o.NoCorrelationID {
		rec.Headers = []Header{{Key: CorrelationHeader, Value: g.uuid()}}
	}
	switch kind {
	case "tombstone":
		return rec
	case "delete":
		rec.Value = g.deleteValue(c, version)
		return rec
	}
	rec.Value = g.upsertValue(c, version)
	return rec
}

func (g *generator) newChunk(track bool) *chunk {
	tenant := g.opt.Tenants[g.r.IntN(len(g.opt.Tenants))]
	cur := g.docs[tenant]
	c := &chunk{tenant: tenant, version: 1}
	if cur == nil || cur.part+1 >= g.opt.ChunksPerDoc {
		c.doc = 1
		if cur != nil {
			c.doc = cur.doc + 1
		}
	} else {
		c.doc, c.part = cur.doc, cur.part+1
	}
	g.docs[tenant] = c
	if track {
		g.chunks = append(g.chunks, c)
	}
	return c
}

// uuid returns a random (version 4 layout) UUID from the generator's stream.
func (g *generator) uuid() []byte {
	a, b := g.r.Uint64(), g.r.Uint64()
	a = a&^0xf000 | 0x4000
	b = b&^(0xc<<60) | 0x8<<60
	return fmt.Appendf(nil, "%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// ts returns the record's event time.
func (g *generator) ts() string {
	t := g.opt.Start.Add(time.Duration(g.seq-1)*time.Second + time.Duration(g.r.IntN(1000))*time.Millisecond)
	if g.r.IntN(10) == 0 {
		return t.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000Z07:00")
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}

func (g *generator) deleteValue(c *chunk, version int64) []byte {
	w := jsonWriter{buf: make([]byte, 0, 160)}
	w.raw(`{"op":"delete","id":`)
	w.str(c.id())
	w.raw(`,"tenant":`)
	w.str(c.tenant)
	w.raw(`,"version":`)
	w.int(version)
	w.raw(`,"ts":`)
	w.str(g.ts())
	w.raw("}")
	return w.buf
}

// upsertValue writes a full event for chunk c.
func (g *generator) upsertValue(c *chunk, version int64) []byte {
	o := &g.opt
	ents := g.pickEntities()
	rels := g.pickRelations(ents)
	text := g.text(ents, rels)

	w := jsonWriter{buf: g.buf[:0], ascii: g.r.Float64() < o.EscapeNonASCII}
	w.raw(`{"op":"upsert","id":`)
	w.str(c.id())
	w.raw(`,"tenant":`)
	w.str(c.tenant)
	w.raw(`,"doc_id":`)
	w.str("doc-" + pad4(c.doc))
	w.raw(`,"text":`)
	w.str(text)
	w.raw(`,"vector":[`)
	g.vector(&w, ents)
	w.raw(`],"metadata":{"source":`)
	w.str(sources[g.r.IntN(len(sources))])
	w.raw(`,"lang":`)
	w.str(langs[g.r.IntN(len(langs))])
	w.raw(`,"year":`)
	w.int(int64(2015 + g.r.IntN(12)))
	w.raw(`,"page":`)
	w.int(int64(c.part + 1))
	w.raw(`,"score":`)
	w.float(math.Round(g.r.Float64()*1000) / 1000)
	w.raw(`,"public":`)
	w.bool(g.r.IntN(2) == 0)
	w.raw(`,"tags":[`)
	w.str(sources[g.r.IntN(len(sources))])
	w.raw(",")
	w.str(langs[g.r.IntN(len(langs))])
	w.raw("]")
	if g.r.IntN(3) == 0 {
		w.raw(`,"author":{"dept":`)
		w.str(depts[g.r.IntN(len(depts))])
		w.raw(`,"reviewed":`)
		w.bool(g.r.IntN(2) == 0)
		w.raw("}")
	}
	w.raw(`},"entities":[`)
	for i, e := range ents {
		if i > 0 {
			w.raw(",")
		}
		d := &catalog[e]
		w.raw(`{"id":`)
		w.str(d.id)
		w.raw(`,"type":`)
		w.str(d.typ)
		w.raw(`,"name":`)
		w.str(d.name)
		if len(d.props) > 0 {
			w.raw(`,"props":`)
			w.props(d.props)
		}
		w.raw("}")
	}
	w.raw(`],"relations":[`)
	for i, r := range rels {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"from":`)
		w.str(catalog[r.from].id)
		w.raw(`,"to":`)
		w.str(catalog[r.to].id)
		w.raw(`,"type":`)
		w.str(r.def.typ)
		if len(r.props) > 0 {
			w.raw(`,"props":`)
			w.props(r.props)
		}
		w.raw("}")
	}
	w.raw(`],"version":`)
	w.int(version)
	w.raw(`,"ts":`)
	w.str(g.ts())
	w.raw("}")
	g.buf = w.buf
	return append([]byte(nil), w.buf...)
}

// pickEntities chooses the event's entities: types in typeCycle order, each
// a catalog entry not yet chosen.
func (g *generator) pickEntities() []int {
	n := g.opt.EntitiesPerEvent
	if n < 0 {
		return nil
	}
	n = min(n, len(catalog))
	out := make([]int, 0, n)
	for i := 0; len(out) < n; i++ {
		pool := byType[typeCycle[i%len(typeCycle)]]
		for range 4 {
			e := pool[g.r.IntN(len(pool))]
			if !contains(out, e) {
				out = append(out, e)
				break
			}
		}
		if i > 4*len(catalog) {
			break
		}
	}
	return out
}

type rel struct {
	def      *relDef
	from, to int
	props    []kv
}

// pickRelations chooses up to RelationsPerEvent distinct relations whose
// endpoint types fit among the event's entities.
func (g *generator) pickRelations(ents []int) []rel {
	if g.opt.RelationsPerEvent < 0 {
		return nil
	}
	var cands []rel
	for _, a := range ents {
		for _, b := range ents {
			if a == b {
				continue
			}
			for i := range relations {
				d := &relations[i]
				if catalog[a].typ == d.from && catalog[b].typ == d.to {
					cands = append(cands, rel{def: d, from: a, to: b})
				}
			}
		}
	}
	g.r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	cands = cands[:min(len(cands), g.opt.RelationsPerEvent)]
	for i := range cands {
		c := &cands[i]
		c.props = relProps(c.def.typ, catalog[c.from].id, catalog[c.to].id)
	}
	return cands
}

// text writes the chunk's text: a sentence per relation, a mention of the
// other entities, and filler.
func (g *generator) text(ents []int, rels []rel) string {
	b := make([]byte, 0, 768)
	mentioned := map[int]bool{}
	for _, r := range rels {
		props := r.props
		if r.def.typ == "WORKS_AT" {
			props = []kv{{"title", r.props[0].v}}
		}
		b = append(b, r.def.sentence(catalog[r.from].name, catalog[r.to].name, props)...)
		b = append(b, ' ')
		mentioned[r.from], mentioned[r.to] = true, true
	}
	for _, e := range ents {
		if !mentioned[e] {
			b = append(b, "The report also mentions "...)
			b = append(b, catalog[e].name...)
			b = append(b, ". "...)
		}
	}
	for range 3 + g.r.IntN(4) {
		b = append(b, fillers[g.r.IntN(len(fillers))]...)
		b = append(b, ' ')
	}
	return string(b[:len(b)-1])
}

// vector writes the chunk's unit vector: its entities' bases plus noise.
// The noise is uniform (four 16-bit draws per random word), which costs a
// fraction of normal draws and serves the same purpose.
func (g *generator) vector(w *jsonWriter, ents []int) {
	v := g.vec
	c := math.Sqrt(3) * 0.6 / math.Sqrt(float64(len(v))) // the std of 0.6/sqrt(dims)
	scale := 2 * c / 65535
	var word uint64
	for i := range v {
		if i%4 == 0 {
			word = g.r.Uint64()
		}
		v[i] = float64(word&0xffff)*scale - c
		word >>= 16
	}
	for _, e := range ents {
		for i, x := range g.bases[e] {
			v[i] += x
		}
	}
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	inv := 1 / math.Sqrt(norm)
	for i, x := range v {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendFixed6(w.buf, x*inv)
	}
}

// pairs holds "00" … "99" for printing two digits at a time.
const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendFixed6 prints x with 6 decimals, trailing zeros dropped: unit-vector
// components need no more, and strconv's fixed-precision formatting would be
// most of the generator's cost.
func appendFixed6(b []byte, x float64) []byte {
	if x >= 1 || x <= -1 {
		return strconv.AppendFloat(b, x, 'f', 6, 64)
	}
	neg := x < 0
	if neg {
		x = -x
	}
	m := uint32(x*1e6 + 0.5)
	switch {
	case m == 0:
		return append(b, '0')
	case neg:
		b = append(b, '-')
	}
	if m >= 1e6 {
		return append(b, '1')
	}
	d := [8]byte{'0', '.'}
	hi, mid, lo := m/10000, m/100%100, m%100
	d[2], d[3] = pairs[2*hi], pairs[2*hi+1]
	d[4], d[5] = pairs[2*mid], pairs[2*mid+1]
	d[6], d[7] = pairs[2*lo], pairs[2*lo+1]
	n := 8
	for d[n-1] == '0' {
		n--
	}
	return append(b, d[:n]...)
}

func contains(s []int, x int) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func pad4(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
