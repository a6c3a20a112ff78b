package event

import (
	"fmt"
	"strconv"
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

	arena []byte   // the current block of the event's strings and numbers; see keep
	strs  []string // the current slab of boxed strings; see boxString

	base    *path   // path of the metadata object; see here
	nseg    int     // depth of the path below base while scanning metadata
	segBuf  [16]seg // its first steps (a slice into it would move s to the heap)
	segMore []seg   // the steps beyond len(segBuf)

	vecPresent bool // "vector" held an array
	vecLen     int  // its length, elements beyond Dims included
	elemErr    *Error
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
		switch c := s.buf[s.pos]; {
		case c > ' ':
			return
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
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
