package event

import (
	"fmt"
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
// The strings of one event (and the boxed values of its metadata and props)
// share a few blocks of memory (see arena.go), never reused: whoever keeps
// one string of an event for long keeps that event's block (about 1 KB for
// a typical event) alive with it.
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
				ev.Tenant = s.keep(b)
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
			s.base, s.nseg = p, 0
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
		if esc {
			v, n := s.keepUnescaped(raw, limit)
			if n > limit {
				s.violate(p, "too long (%d bytes, max %d)", n, limit)
				return "", false, nil
			}
			return v, true, nil
		}
		if len(raw) > limit {
			s.violate(p, "too long (%d bytes, max %d)", len(raw), limit)
			return "", false, nil
		}
		return s.keep(raw), true, nil
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
