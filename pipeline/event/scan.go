package event

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// scanner is the single-pass reader over one record value. Syntax errors
// (class decode) stop the scan at once. Contract violations (class schema)
// are recorded — the first one wins — and the scan goes on, checking only
// syntax from then on, so that a value that is not JSON at all is always
// reported as decode, whatever contract violation comes before the broken part.
type scanner struct {
	buf     []byte
	pos     int
	lim     *Limits
	serr    *Error
	scratch []byte // unescaped strings, valid until the next unescape

	base *path // path of the metadata object; see here
	segs []seg // path below base while scanning metadata

	vecPresent bool // "vector" held an array
	vecLen     int  // its length, elements beyond Dims included
	elemErr    *Error
}

// path names a field for error messages. Paths are built on the stack as the
// scan descends and are only rendered when an error needs them.
type path struct {
	parent *path
	name   string
	index  int // >= 0 for an array element, -1 for a named field
}

// seg is one step of a path below scanner.base.
type seg struct {
	name  string
	index int
}

// here stands for "the metadata path being scanned" (s.base plus s.segs);
// errors resolve it, so the scan passes it around without building a chain.
var here = &path{index: -2}

// resolve turns here into a real path; it allocates, so only errors call it.
func (s *scanner) resolve(p *path) *path {
	if p != here {
		return p
	}
	cur := s.base
	for _, sg := range s.segs {
		n := &path{parent: cur, name: sg.name, index: sg.index}
		cur = n
	}
	return cur
}

func field(parent *path, name string) path { return path{parent: parent, name: name, index: -1} }
func elem(parent *path, i int) path        { return path{parent: parent, index: i} }

var (
	pathOp        = &path{name: "op", index: -1}
	pathID        = &path{name: "id", index: -1}
	pathTenant    = &path{name: "tenant", index: -1}
	pathDocID     = &path{name: "doc_id", index: -1}
	pathText      = &path{name: "text", index: -1}
	pathVector    = &path{name: "vector", index: -1}
	pathMetadata  = &path{name: "metadata", index: -1}
	pathEntities  = &path{name: "entities", index: -1}
	pathRelations = &path{name: "relations", index: -1}
	pathVersion   = &path{name: "version", index: -1}
	pathTS        = &path{name: "ts", index: -1}
	pathKey       = &path{name: "key", index: -1}
)

// String renders the path as entities[2].props.year, quoting names that are
// not plain identifiers: metadata["a b"].
func (p *path) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *path) write(b *strings.Builder) {
	if p.parent != nil {
		p.parent.write(b)
	}
	switch {
	case p.index >= 0:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(p.index))
		b.WriteByte(']')
	case plainName(p.name):
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.name)
	default:
		b.WriteByte('[')
		b.WriteString(strconv.Quote(p.name))
		b.WriteByte(']')
	}
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// syntax returns a decode-class error at byte offset at.
func (s *scanner) syntax(p *path, at int, format string, args ...any) *Error {
	return &Error{Class: ClassDecode, Field: s.resolve(p).String(),
		Msg: "invalid JSON at offset " + strconv.Itoa(at) + ": " + fmt.Sprintf(format, args...)}
}

// unexpected reports the byte at s.pos (or the end of input) as out of place.
func (s *scanner) unexpected(p *path, want string) *Error {
	if s.pos >= len(s.buf) {
		return s.syntax(p, s.pos, "unexpected end of input, want %s", want)
	}
	return s.syntax(p, s.pos, "unexpected %s, want %s", describeByte(s.buf[s.pos]), want)
}

func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// violate records a contract violation; only the first one is kept.
func (s *scanner) violate(p *path, format string, args ...any) {
	if s.serr == nil {
		s.serr = &Error{Class: ClassSchema, Field: s.resolve(p).String(), Msg: fmt.Sprintf(format, args...)}
	}
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// kindAt names the JSON kind of the value starting at s.pos, "" when no
// value can start there.
func (s *scanner) kindAt() string {
	if s.pos >= len(s.buf) {
		return ""
	}
	switch c := s.buf[s.pos]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return ""
}

// mismatch records that the value at s.pos has the wrong kind and skips it.
func (s *scanner) mismatch(p *path, want string) *Error {
	kind := s.kindAt()
	if kind == "" {
		return s.unexpected(p, "a value")
	}
	if err := s.skip(p); err != nil {
		return err
	}
	s.violate(p, "must be %s, got %s", want, kind)
	return nil
}

// literal consumes true, false or null at s.pos.
func (s *scanner) literal(p *path) (byte, *Error) {
	c := s.buf[s.pos]
	var want string
	switch c {
	case 't':
		want = "true"
	case 'f':
		want = "false"
	default:
		want = "null"
	}
	end := s.pos + len(want)
	if end > len(s.buf) || string(s.buf[s.pos:end]) != want {
		for i := 0; i < len(want); i++ {
			if s.pos+i >= len(s.buf) {
				return 0, s.syntax(p, s.pos+i, "unexpected end of input in literal %s", want)
			}
			if s.buf[s.pos+i] != want[i] {
				return 0, s.syntax(p, s.pos+i, "unexpected %s in literal %s", describeByte(s.buf[s.pos+i]), want)
			}
		}
	}
	s.pos = end
	return c, nil
}

// plain marks the bytes a string can hold without any attention: all but
// the quote, the backslash and control characters. Bytes from 0x80 up are
// plain here; str checks UTF-8 once over the whole string when it saw any.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any of the 8 bytes in v is a quote, a backslash or
// a control character (SWAR: "bit twiddling hacks", haszero and hasless,
// which hold for any byte values).
func special(v uint64) bool {
	q := v ^ (lsb * '"')
	bs := v ^ (lsb * '\\')
	return ((v-lsb*0x20)&^v|(q-lsb)&^q|(bs-lsb)&^bs)&msb != 0
}

// str scans the string starting at s.pos (which holds '"'). It returns the
// raw bytes between the quotes and whether they hold escapes, having checked
// escapes, surrogate pairs, control characters and UTF-8.
func (s *scanner) str(p *path) (raw []byte, esc bool, err *Error) {
	b := s.buf
	n := len(b)
	start := s.pos + 1
	i := start
	var high uint64 // the OR of the bytes seen, for their top bits
	for {
		for i+8 <= n {
			v := binary.LittleEndian.Uint64(b[i:])
			if special(v) {
				break
			}
			high |= v
			i += 8
		}
		for i < n && plain[b[i]] {
			high |= uint64(b[i])
			i++
		}
		if i >= n {
			return nil, false, s.syntax(p, n, "unexpected end of input in string")
		}
		switch c := b[i]; {
		case c == '"':
			raw = b[start:i]
			s.pos = i + 1
			if high&msb != 0 && !utf8.Valid(raw) {
				return nil, false, s.badUTF8(p, start, raw)
			}
			return raw, esc, nil
		case c == '\\':
			esc = true
			w, e := s.escape(p, i)
			if e != nil {
				return nil, false, e
			}
			i += w
		default:
			return nil, false, s.syntax(p, i, "control character U+%04X in string (escape it)", c)
		}
	}
}

func (s *scanner) badUTF8(p *path, start int, raw []byte) *Error {
	off := 0
	for off < len(raw) {
		r, size := utf8.DecodeRune(raw[off:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		off += size
	}
	return &Error{Class: ClassDecode, Field: s.resolve(p).String(),
		Msg: "invalid UTF-8 at offset " + strconv.Itoa(start+off)}
}

// escape checks the escape sequence at b[i] ('\\') and returns its width.
func (s *scanner) escape(p *path, i int) (int, *Error) {
	b := s.buf
	if i+1 >= len(b) {
		return 0, s.syntax(p, len(b), "unexpected end of input in string")
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return 0, s.syntax(p, i, "invalid \\u escape (want 4 hex digits)")
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if r2, ok := hex4(b, i+8); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					return 12, nil
				}
			}
			return 0, s.syntax(p, i, "unpaired surrogate \\u%04x", r)
		case r >= 0xDC00 && r < 0xE000:
			return 0, s.syntax(p, i, "unpaired surrogate \\u%04x", r)
		}
		return 6, nil
	}
	return 0, s.syntax(p, i, "invalid escape %s", strconv.Quote(string(b[i:i+2])))
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unescape decodes raw (already checked by str) into s.scratch.
func (s *scanner) unescape(raw []byte) []byte {
	s.scratch = appendUnescaped(s.scratch[:0], raw)
	return s.scratch
}

// appendUnescaped appends the decoded form of raw (already checked by str).
func appendUnescaped(out, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			out = append(out, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r < 0xDC00 {
				r2, _ := hex4(raw, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return out
}

// unescapedString decodes raw into a string of its own: one allocation of
// at most len(raw) bytes (decoding only shrinks), never written again.
func unescapedString(raw []byte) string {
	b := appendUnescaped(make([]byte, 0, len(raw)), raw)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// strBytes returns the decoded bytes of a scanned string, valid until the
// next unescape.
func (s *scanner) strBytes(raw []byte, esc bool) []byte {
	if !esc {
		return raw
	}
	return s.unescape(raw)
}

// numLit is a scanned JSON number. mant and exp10 describe its value as
// mant * 10^exp10 when exact; digits beyond 19 significant ones are dropped
// (exact is false when a dropped digit was not zero).
type numLit struct {
	start, end int
	mant       uint64
	exp10      int
	neg        bool
	isInt      bool // no fraction and no exponent in the literal
	exact      bool
}

// number scans the number at s.pos.
func (s *scanner) number(p *path) (numLit, *Error) {
	b := s.buf
	n := len(b)
	i := s.pos
	lit := numLit{start: i, isInt: true, exact: true}
	if b[i] == '-' {
		lit.neg = true
		i++
	}
	nd := 0 // significant digits kept in mant
	switch {
	case i >= n:
		return lit, s.syntax(p, i, "unexpected end of input in number")
	case b[i] == '0':
		i++
		if i < n && b[i] >= '0' && b[i] <= '9' {
			return lit, s.syntax(p, i-1, "leading zero in number")
		}
	case b[i] >= '1' && b[i] <= '9':
		for ; i < n && b[i] >= '0' && b[i] <= '9'; i++ {
			if nd < 19 {
				lit.mant = lit.mant*10 + uint64(b[i]-'0')
				nd++
			} else {
				lit.exp10++
				if b[i] != '0' {
					lit.exact = false
				}
			}
		}
	default:
		return lit, s.syntax(p, i, "unexpected %s in number", describeByte(b[i]))
	}
	if i < n && b[i] == '.' {
		lit.isInt = false
		i++
		j := i
		for ; i < n && b[i] >= '0' && b[i] <= '9'; i++ {
			d := b[i] - '0'
			switch {
			case nd == 0 && d == 0:
				lit.exp10--
			case nd < 19:
				lit.mant = lit.mant*10 + uint64(d)
				lit.exp10--
				nd++
			case d != 0:
				lit.exact = false
			}
		}
		if i == j {
			if i >= n {
				return lit, s.syntax(p, i, "unexpected end of input in number")
			}
			return lit, s.syntax(p, i, "unexpected %s in number, want a digit", describeByte(b[i]))
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		lit.isInt = false
		i++
		eneg := false
		if i < n && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		j := i
		e := 0
		for ; i < n && b[i] >= '0' && b[i] <= '9'; i++ {
			if e < 1_000_000 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if i == j {
			if i >= n {
				return lit, s.syntax(p, i, "unexpected end of input in number")
			}
			return lit, s.syntax(p, i, "unexpected %s in number, want a digit", describeByte(b[i]))
		}
		if eneg {
			e = -e
		}
		lit.exp10 += e
	}
	lit.end = i
	s.pos = i
	return lit, nil
}

// skip consumes any JSON value at s.pos, checking its syntax. It keeps its
// own stack of open containers, so depth costs no Go stack.
func (s *scanner) skip(p *path) *Error {
	var stackArr [32]byte
	stack := stackArr[:0]
	for {
		// A value is expected at s.pos.
		s.ws()
		if s.pos >= len(s.buf) {
			return s.unexpected(p, "a value")
		}
		switch c := s.buf[s.pos]; {
		case c == '{':
			s.pos++
			s.ws()
			if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
				s.pos++
				break
			}
			if err := s.skipKey(p); err != nil {
				return err
			}
			stack = append(stack, '}')
			continue
		case c == '[':
			s.pos++
			s.ws()
			if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
				s.pos++
				break
			}
			stack = append(stack, ']')
			continue
		case c == '"':
			if _, _, err := s.str(p); err != nil {
				return err
			}
		case c == 't' || c == 'f' || c == 'n':
			if _, err := s.literal(p); err != nil {
				return err
			}
		case c == '-' || c >= '0' && c <= '9':
			if _, err := s.number(p); err != nil {
				return err
			}
		default:
			return s.unexpected(p, "a value")
		}
		// A value ended: close containers until one goes on with ','.
		for {
			if len(stack) == 0 {
				return nil
			}
			s.ws()
			if s.pos >= len(s.buf) {
				return s.unexpected(p, "',' or "+strconv.QuoteRune(rune(stack[len(stack)-1])))
			}
			top := stack[len(stack)-1]
			c := s.buf[s.pos]
			if c == top {
				s.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return s.unexpected(p, "',' or "+strconv.QuoteRune(rune(top)))
			}
			s.pos++
			if top == '}' {
				s.ws()
				if err := s.skipKey(p); err != nil {
					return err
				}
			}
			break
		}
	}
}

// skipKey consumes `"name" :` at s.pos.
func (s *scanner) skipKey(p *path) *Error {
	if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
		return s.unexpected(p, "a field name")
	}
	if _, _, err := s.str(p); err != nil {
		return err
	}
	return s.colon(p)
}

// colon consumes `:` and the whitespace around it.
func (s *scanner) colon(p *path) *Error {
	s.ws()
	if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
		return s.unexpected(p, "':'")
	}
	s.pos++
	s.ws()
	return nil
}

// key reads an object key at s.pos plus the colon, returning the decoded name
// (valid until the next unescape).
func (s *scanner) key(p *path) ([]byte, *Error) {
	if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
		return nil, s.unexpected(p, "a field name")
	}
	raw, esc, err := s.str(p)
	if err != nil {
		return nil, err
	}
	k := s.strBytes(raw, esc)
	if err := s.colon(p); err != nil {
		return nil, err
	}
	return k, nil
}

// next consumes the whitespace and the ',' or closing byte after an object
// member or array element; more is true after ','.
func (s *scanner) next(p *path, closing byte) (more bool, err *Error) {
	s.ws()
	if s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.ws()
			return true, nil
		case closing:
			s.pos++
			return false, nil
		}
	}
	return false, s.unexpected(p, "',' or "+strconv.QuoteRune(rune(closing)))
}

// open consumes the opening byte of a container and reports whether it is
// empty (the closing byte followed at once and was consumed too).
func (s *scanner) open(closing byte) (empty bool) {
	s.pos++
	s.ws()
	if s.pos < len(s.buf) && s.buf[s.pos] == closing {
		s.pos++
		return true
	}
	return false
}
