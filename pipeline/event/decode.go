package event

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// Patterns of the contract, as messages quote them.
const (
	TenantPattern = `^[a-z0-9][a-z0-9_-]{0,62}$`
	LabelPattern  = `^[A-Z][A-Za-z0-9_]{0,63}$`
)

// Decoder decodes and validates record values against the contract and its
// Limits. It holds nothing but its limits, so goroutines may share one.
type Decoder struct {
	lim Limits
}

// NewDecoder returns a decoder for l; zero fields of l take the defaults of
// DefaultLimits. It panics when the result fails Limits.Validate (a Dims
// below 1, say): the configuration layer is expected to have refused it.
func NewDecoder(l Limits) *Decoder {
	l = l.withDefaults()
	if err := l.Validate(); err != nil {
		panic(err)
	}
	return &Decoder{lim: l}
}

// Limits returns the decoder's limits, defaults filled in.
func (d *Decoder) Limits() Limits { return d.lim }

// Decode decodes one record. key is the Kafka key (nil or empty: none);
// value nil is a tombstone, which needs a key "tenant/id" (split at the first
// '/', since a tenant cannot hold one). Every error is an *Error whose Class
// is ClassDecode or ClassSchema; either way it is permanent for the record.
func (d *Decoder) Decode(key, value []byte) (Event, error) {
	var ev Event
	if err := d.DecodeInto(key, value, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodeInto is Decode into *ev, reusing the backing arrays of ev.Vector,
// ev.Entities and ev.Relations: call it only when nothing still refers to
// the previous contents of those slices. Strings and maps are always fresh.
// After an error *ev holds no meaningful event.
func (d *Decoder) DecodeInto(key, value []byte, ev *Event) error {
	*ev = Event{Vector: ev.Vector[:0], Entities: ev.Entities[:0], Relations: ev.Relations[:0]}
	if value == nil {
		if err := d.tombstone(key, ev); err != nil {
			return err
		}
		return nil
	}
	s := scanner{buf: value, lim: &d.lim}
	if err := s.document(ev); err != nil {
		return err
	}
	if s.serr != nil {
		return s.serr
	}
	if err := d.check(&s, ev); err != nil {
		return err
	}
	if len(key) > 0 && !keyMatches(key, ev.Tenant, ev.ID) {
		return &Error{Class: ClassSchema, Field: "key",
			Msg: fmt.Sprintf("%q does not match tenant/id %q", key, ev.Tenant+"/"+ev.ID)}
	}
	return nil
}

func keyMatches(key []byte, tenant, id string) bool {
	return len(key) == len(tenant)+1+len(id) &&
		string(key[:len(tenant)]) == tenant && key[len(tenant)] == '/' && string(key[len(tenant)+1:]) == id
}

// document scans the whole value; decode errors are returned, contract
// violations are left in s.serr.
func (s *scanner) document(ev *Event) *Error {
	s.ws()
	if s.pos >= len(s.buf) {
		return &Error{Class: ClassDecode, Msg: "empty value (only a null value is a tombstone)"}
	}
	if s.buf[s.pos] == '{' {
		if err := s.event(ev); err != nil {
			return err
		}
	} else {
		kind := s.kindAt()
		if kind == "" {
			return s.unexpected(nil, "a JSON object")
		}
		if err := s.skip(nil); err != nil {
			return err
		}
		s.violate(nil, "value must be a JSON object, got %s", kind)
	}
	s.ws()
	if s.pos < len(s.buf) {
		return s.syntax(nil, s.pos, "data after the top-level value")
	}
	return nil
}

// Top-level fields, as bits of the seen set.
const (
	fOp uint16 = 1 << iota
	fID
	fTenant
	fDocID
	fText
	fVector
	fMetadata
	fEntities
	fRelations
	fVersion
	fTS
)

// event scans the top-level object into ev.
func (s *scanner) event(ev *Event) *Error {
	var seen uint16
	if !s.open('}') {
		for {
			k, err := s.key(nil)
			if err != nil {
				return err
			}
			var f uint16
			var p *path
			switch string(k) {
			case "op":
				f, p = fOp, pathOp
			case "id":
				f, p = fID, pathID
			case "tenant":
				f, p = fTenant, pathTenant
			case "doc_id":
				f, p = fDocID, pathDocID
			case "text":
				f, p = fText, pathText
			case "vector":
				f, p = fVector, pathVector
			case "metadata":
				f, p = fMetadata, pathMetadata
			case "entities":
				f, p = fEntities, pathEntities
			case "relations":
				f, p = fRelations, pathRelations
			case "version":
				f, p = fVersion, pathVersion
			case "ts":
				f, p = fTS, pathTS
			}
			switch {
			case f == 0:
				s.violate(nil, "unknown field %q", k)
				up := field(nil, string(k))
				err = s.skip(&up)
			case seen&f != 0:
				s.violate(p, "duplicate key")
				err = s.skip(p)
			default:
				seen |= f
				err = s.topField(f, p, ev)
			}
			if err != nil {
				return err
			}
			more, err := s.next(nil, '}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if seen&fID == 0 {
		s.violate(pathID, "required")
	}
	if seen&fTenant == 0 {
		s.violate(pathTenant, "required")
	}
	return nil
}

func (s *scanner) topField(f uint16, p *path, ev *Event) *Error {
	var err *Error
	switch f {
	case fOp:
		var b []byte
		var ok bool
		if b, ok, err = s.strValBytes(p, true); ok {
			switch string(b) {
			case "upsert":
				ev.Op = OpUpsert
			case "delete":
				ev.Op = OpDelete
			default:
				s.violate(p, `must be "upsert" or "delete", got %q`, b)
			}
		}
	case fID:
		ev.ID, _, err = s.nonEmpty(p, s.lim.MaxIDBytes, false)
	case fTenant:
		var b []byte
		var ok bool
		if b, ok, err = s.strValBytes(p, false); ok {
			switch {
			case !tenantOK(b):
				s.violate(p, "must match %s", TenantPattern)
			case len(b) > s.lim.MaxTenantBytes:
				s.violate(p, "too long (%d bytes, max %d)", len(b), s.lim.MaxTenantBytes)
			default:
				ev.Tenant = string(b)
			}
		}
	case fDocID:
		ev.DocID, _, err = s.nonEmpty(p, s.lim.MaxIDBytes, true)
	case fText:
		ev.Text, ev.HasText, err = s.stringVal(p, s.lim.MaxTextBytes, true)
	case fVector:
		switch s.kindAt() {
		case "array":
			s.vecPresent = true
			err = s.vector(ev)
		case "null":
			_, err = s.literal(p)
		default:
			err = s.mismatch(p, "an array")
		}
	case fMetadata:
		switch s.kindAt() {
		case "object":
			s.base, s.segs = p, s.segs[:0]
			ev.Metadata, err = s.metaObject(1)
		case "null":
			_, err = s.literal(p)
		default:
			err = s.mismatch(p, "an object")
		}
	case fEntities:
		switch s.kindAt() {
		case "array":
			err = s.entities(ev)
		case "null":
			_, err = s.literal(p)
		default:
			err = s.mismatch(p, "an array")
		}
	case fRelations:
		switch s.kindAt() {
		case "array":
			err = s.relations(ev)
		case "null":
			_, err = s.literal(p)
		default:
			err = s.mismatch(p, "an array")
		}
	case fVersion:
		switch s.kindAt() {
		case "number":
			var lit numLit
			if lit, err = s.number(p); err == nil {
				if v, ok := integral(lit); ok {
					ev.Version, ev.HasVersion = v, true
				} else {
					s.violate(p, "must be an integer between 0 and 9223372036854775807")
				}
			}
		case "null":
			_, err = s.literal(p)
		default:
			err = s.mismatch(p, "an integer")
		}
	case fTS:
		var b []byte
		var ok bool
		if b, ok, err = s.strValBytes(p, true); ok {
			if t, ok := parseRFC3339(b); ok {
				ev.TS = t
			} else {
				s.violate(p, "must be an RFC 3339 date-time like 2026-01-08T12:00:00Z, got %q", b)
			}
		}
	}
	return err
}

// strValBytes reads a string value and returns its decoded bytes (valid until
// the next unescape). ok is false for null (allowed when nullable) and after
// a kind mismatch (recorded as a violation).
func (s *scanner) strValBytes(p *path, nullable bool) (b []byte, ok bool, err *Error) {
	if s.pos < len(s.buf) && s.buf[s.pos] == '"' {
		raw, esc, err := s.str(p)
		if err != nil {
			return nil, false, err
		}
		return s.strBytes(raw, esc), true, nil
	}
	if nullable && s.kindAt() == "null" {
		_, err := s.literal(p)
		return nil, false, err
	}
	return nil, false, s.mismatch(p, "a string")
}

// stringVal reads a string value of at most limit bytes.
func (s *scanner) stringVal(p *path, limit int, nullable bool) (string, bool, *Error) {
	if s.pos < len(s.buf) && s.buf[s.pos] == '"' {
		raw, esc, err := s.str(p)
		if err != nil {
			return "", false, err
		}
		n, v := len(raw), ""
		if esc {
			v = unescapedString(raw)
			n = len(v)
		}
		if n > limit {
			s.violate(p, "too long (%d bytes, max %d)", n, limit)
			return "", false, nil
		}
		if !esc {
			v = string(raw)
		}
		return v, true, nil
	}
	if nullable && s.kindAt() == "null" {
		_, err := s.literal(p)
		return "", false, err
	}
	return "", false, s.mismatch(p, "a string")
}

// nonEmpty is stringVal for strings that must not be empty.
func (s *scanner) nonEmpty(p *path, limit int, nullable bool) (string, bool, *Error) {
	v, ok, err := s.stringVal(p, limit, nullable)
	if ok && v == "" {
		s.violate(p, "must not be empty")
		return "", false, nil
	}
	return v, ok, err
}

func tenantOK(b []byte) bool {
	if len(b) < 1 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return false
		}
	}
	return true
}

func labelOK(b []byte) bool {
	if len(b) < 1 || len(b) > 64 || b[0] < 'A' || b[0] > 'Z' {
		return false
	}
	for _, c := range b[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// vector scans the vector array. Elements beyond Dims are checked but not
// kept; check reports the length. The loop's fast path takes the element
// every unit vector is made of, -?0.ddddddd followed at once by ',' or ']',
// in a handful of word operations; everything else (other spellings,
// whitespace, other kinds, errors) takes the general path.
func (s *scanner) vector(ev *Event) *Error {
	dims := s.lim.Dims
	vec := ev.Vector[:0]
	if cap(vec) < dims {
		vec = make([]float32, 0, dims)
	}
	vec = vec[:dims]
	n := 0
	if !s.open(']') {
		b := s.buf
		i := s.pos
		for {
			if i+16 <= len(b) {
				w := b[i : i+16]
				j := 0
				if w[0] == '-' {
					j = 1
				}
				if w[j] == '0' && w[j+1] == '.' {
					k, d := digits8(binary.LittleEndian.Uint64(w[j+2 : j+10]))
					if k > 0 && k < 8 {
						if c := w[j+2+k]; c == ',' || c == ']' {
							// d < 10^7 < 2^24 and 10^k are exact in float32,
							// so one division rounds correctly.
							f := float32(int64(d)) / pow10f32[k]
							f = math.Float32frombits(math.Float32bits(f) | uint32(j)<<31)
							if n < len(vec) {
								vec[n] = f
							}
							n++
							i += j + k + 3
							if c == ',' {
								continue
							}
							s.pos = i
							break
						}
					}
				}
			}
			s.pos = i
			s.ws()
			f, end, ok := fastFloat32(b, s.pos)
			if ok {
				s.pos = end
			} else if f, ok = s.element(n); !ok {
				return s.elemErr
			}
			if n < len(vec) {
				vec[n] = f
			}
			n++
			more, err := s.next(pathVector, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
			i = s.pos
		}
	}
	ev.Vector = vec[:min(n, dims)]
	s.vecLen = n
	return nil
}

// element is the general path for vector element n, for what fastFloat32
// leaves: other spellings, other kinds, syntax errors. ok is false when
// s.elemErr holds a decode error.
func (s *scanner) element(n int) (f float32, ok bool) {
	p := elem(pathVector, n)
	if s.pos < len(s.buf) && (s.buf[s.pos] == '-' || s.buf[s.pos]-'0' <= 9) {
		lit, err := s.number(&p)
		if err != nil {
			s.elemErr = err
			return 0, false
		}
		if f, ok = s.float32(lit); !ok {
			s.violate(&p, "out of float32 range (must be finite)")
		}
		return f, true
	}
	if err := s.mismatch(&p, "a number"); err != nil {
		s.elemErr = err
		return 0, false
	}
	return 0, true
}

// entities scans the entities array.
func (s *scanner) entities(ev *Event) *Error {
	ents := ev.Entities[:0]
	if ents == nil {
		ents = make([]Entity, 0, 4)
	}
	n := 0
	if !s.open(']') {
		for {
			p := elem(pathEntities, n)
			var err *Error
			switch {
			case s.kindAt() != "object":
				err = s.mismatch(&p, "an object")
			case n < s.lim.MaxEntities:
				ents = append(ents, Entity{})
				err = s.entity(&p, &ents[len(ents)-1])
			default:
				err = s.skip(&p)
			}
			if err != nil {
				return err
			}
			n++
			more, err := s.next(pathEntities, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if n > s.lim.MaxEntities {
		s.violate(pathEntities, "too many items (%d, max %d)", n, s.lim.MaxEntities)
	}
	ev.Entities = ents
	return nil
}

func (s *scanner) entity(p *path, e *Entity) *Error {
	const fEID, fEType, fEName, fEProps = 1, 2, 4, 8
	var seen uint8
	if !s.open('}') {
		for {
			k, err := s.key(p)
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(k) {
			case "id":
				f, name = fEID, "id"
			case "type":
				f, name = fEType, "type"
			case "name":
				f, name = fEName, "name"
			case "props":
				f, name = fEProps, "props"
			}
			fp := field(p, name)
			switch {
			case f == 0:
				s.violate(p, "unknown field %q", k)
				err = s.skip(p)
			case seen&f != 0:
				s.violate(&fp, "duplicate key")
				err = s.skip(&fp)
			default:
				seen |= f
				switch f {
				case fEID:
					e.ID, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fEType:
					e.Type, err = s.label(&fp)
				case fEName:
					e.Name, _, err = s.nonEmpty(&fp, s.lim.MaxStringBytes, false)
				case fEProps:
					e.Props, err = s.propsOrNull(&fp)
				}
			}
			if err != nil {
				return err
			}
			more, err := s.next(p, '}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	for _, r := range [...]struct {
		f    uint8
		name string
	}{{fEID, "id"}, {fEType, "type"}, {fEName, "name"}} {
		if seen&r.f == 0 {
			fp := field(p, r.name)
			s.violate(&fp, "required")
		}
	}
	return nil
}

// label reads an entity or relation type.
func (s *scanner) label(p *path) (string, *Error) {
	b, ok, err := s.strValBytes(p, false)
	if !ok {
		return "", err
	}
	if !labelOK(b) {
		s.violate(p, "must match %s", LabelPattern)
		return "", nil
	}
	return string(b), nil
}

func (s *scanner) propsOrNull(p *path) (map[string]any, *Error) {
	switch s.kindAt() {
	case "object":
		return s.props(p)
	case "null":
		_, err := s.literal(p)
		return nil, err
	}
	return nil, s.mismatch(p, "an object")
}

// relations scans the relations array.
func (s *scanner) relations(ev *Event) *Error {
	rels := ev.Relations[:0]
	if rels == nil {
		rels = make([]Relation, 0, 4)
	}
	n := 0
	if !s.open(']') {
		for {
			p := elem(pathRelations, n)
			var err *Error
			switch {
			case s.kindAt() != "object":
				err = s.mismatch(&p, "an object")
			case n < s.lim.MaxRelations:
				rels = append(rels, Relation{})
				err = s.relation(&p, &rels[len(rels)-1])
			default:
				err = s.skip(&p)
			}
			if err != nil {
				return err
			}
			n++
			more, err := s.next(pathRelations, ']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if n > s.lim.MaxRelations {
		s.violate(pathRelations, "too many items (%d, max %d)", n, s.lim.MaxRelations)
	}
	ev.Relations = rels
	return nil
}

func (s *scanner) relation(p *path, r *Relation) *Error {
	const fRFrom, fRTo, fRType, fRProps = 1, 2, 4, 8
	var seen uint8
	if !s.open('}') {
		for {
			k, err := s.key(p)
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(k) {
			case "from":
				f, name = fRFrom, "from"
			case "to":
				f, name = fRTo, "to"
			case "type":
				f, name = fRType, "type"
			case "props":
				f, name = fRProps, "props"
			}
			fp := field(p, name)
			switch {
			case f == 0:
				s.violate(p, "unknown field %q", k)
				err = s.skip(p)
			case seen&f != 0:
				s.violate(&fp, "duplicate key")
				err = s.skip(&fp)
			default:
				seen |= f
				switch f {
				case fRFrom:
					r.From, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fRTo:
					r.To, _, err = s.nonEmpty(&fp, s.lim.MaxIDBytes, false)
				case fRType:
					r.Type, err = s.label(&fp)
				case fRProps:
					r.Props, err = s.propsOrNull(&fp)
				}
			}
			if err != nil {
				return err
			}
			more, err := s.next(p, '}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	for _, x := range [...]struct {
		f    uint8
		name string
	}{{fRFrom, "from"}, {fRTo, "to"}, {fRType, "type"}} {
		if seen&x.f == 0 {
			fp := field(p, x.name)
			s.violate(&fp, "required")
		}
	}
	return nil
}

// check applies the rules JSON Schema cannot express (RULES.md), on an
// event that passed the scan.
func (d *Decoder) check(s *scanner, ev *Event) *Error {
	schemaErr := func(field, format string, args ...any) *Error {
		return &Error{Class: ClassSchema, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if ev.Op == OpUpsert && !s.vecPresent {
		if !d.lim.EmbedderConfigured {
			return schemaErr("vector", "required for upsert (no embedder configured)")
		}
		if !ev.HasText {
			return schemaErr("text", "required for an upsert without vector")
		}
	}
	if s.vecPresent && s.vecLen != d.lim.Dims {
		return schemaErr("vector", "length %d, want %d", s.vecLen, d.lim.Dims)
	}
	if len(ev.Entities) == 0 && len(ev.Relations) == 0 {
		return nil
	}
	// Entities are few per event: compare pairwise below 16, index above.
	var index map[string]int
	if len(ev.Entities) > 16 {
		index = make(map[string]int, len(ev.Entities))
	}
	find := func(id string, upto int) int {
		if index != nil {
			if i, ok := index[id]; ok && i < upto {
				return i
			}
			return -1
		}
		for i := 0; i < upto; i++ {
			if ev.Entities[i].ID == id {
				return i
			}
		}
		return -1
	}
	for i := range ev.Entities {
		id := ev.Entities[i].ID
		if j := find(id, i); j >= 0 {
			return schemaErr(fmt.Sprintf("entities[%d].id", i), "duplicate entity %q (also entities[%d])", id, j)
		}
		if index != nil {
			index[id] = i
		}
	}
	n := len(ev.Entities)
	for i := range ev.Relations {
		r := &ev.Relations[i]
		if find(r.From, n) < 0 {
			return schemaErr(fmt.Sprintf("relations[%d].from", i), "unknown entity %q", r.From)
		}
		if find(r.To, n) < 0 {
			return schemaErr(fmt.Sprintf("relations[%d].to", i), "unknown entity %q", r.To)
		}
	}
	if len(ev.Relations) > 1 {
		type triple struct{ from, typ, to string }
		seen := make(map[triple]int, len(ev.Relations))
		for i := range ev.Relations {
			r := &ev.Relations[i]
			t := triple{r.From, r.Type, r.To}
			if j, dup := seen[t]; dup {
				return schemaErr(fmt.Sprintf("relations[%d]", i), "duplicate relation (%s)-[%s]->(%s) (also relations[%d])", r.From, r.Type, r.To, j)
			}
			seen[t] = i
		}
	}
	return nil
}

// tombstone decodes a record with a null value from its key.
func (d *Decoder) tombstone(key []byte, ev *Event) *Error {
	keyErr := func(class, format string, args ...any) *Error {
		return &Error{Class: class, Field: "key", Msg: fmt.Sprintf(format, args...)}
	}
	if len(key) == 0 {
		return keyErr(ClassSchema, "required when the value is null (a tombstone)")
	}
	if !utf8.Valid(key) {
		return keyErr(ClassDecode, "invalid UTF-8 in tombstone key %q", key)
	}
	i := bytes.IndexByte(key, '/')
	if i < 0 {
		return keyErr(ClassSchema, "tombstone key %q is not tenant/id", key)
	}
	tenant, id := key[:i], key[i+1:]
	switch {
	case !tenantOK(tenant):
		return keyErr(ClassSchema, "tenant %q of tombstone key must match %s", tenant, TenantPattern)
	case len(tenant) > d.lim.MaxTenantBytes:
		return keyErr(ClassSchema, "tenant of tombstone key too long (%d bytes, max %d)", len(tenant), d.lim.MaxTenantBytes)
	case len(id) == 0:
		return keyErr(ClassSchema, "tombstone key %q has an empty id", key)
	case len(id) > d.lim.MaxIDBytes:
		return keyErr(ClassSchema, "id of tombstone key too long (%d bytes, max %d)", len(id), d.lim.MaxIDBytes)
	}
	ev.Op = OpDelete
	ev.Tombstone = true
	ev.Tenant = string(tenant)
	ev.ID = string(id)
	return nil
}
