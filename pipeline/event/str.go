package event

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

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

// specials marks the quotes, backslashes and control characters among the
// 8 bytes in v (the first byte lowest) with the top bit of their byte (SWAR:
// "bit twiddling hacks", haszero and hasless, which hold for any byte
// values). A borrow can mark bytes above a marked one too, never below, so
// the lowest mark is exact.
func specials(v uint64) uint64 {
	q := v ^ (lsb * '"')
	bs := v ^ (lsb * '\\')
	return ((v-lsb*0x20)&^v | (q-lsb)&^q | (bs-lsb)&^bs) & msb
}

// plainRun returns the index of the first byte from b[i] on that is not
// plain (len(b) if none) and high ORed with the bytes before it.
func plainRun(b []byte, i int, high uint64) (int, uint64) {
	for i+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[i:])
		if m := specials(v); m != 0 {
			k := uint(bits.TrailingZeros64(m)) >> 3
			return i + int(k), high | v&(1<<(8*k)-1)
		}
		high |= v
		i += 8
	}
	for i < len(b) && plain[b[i]] {
		high |= uint64(b[i])
		i++
	}
	return i, high
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
		i, high = plainRun(b, i, high)
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
			j := len(raw)
			if k := bytes.IndexByte(raw[i+1:], '\\'); k >= 0 {
				j = i + 1 + k
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

// strBytes returns the decoded bytes of a scanned string, valid until the
// next unescape.
func (s *scanner) strBytes(raw []byte, esc bool) []byte {
	if !esc {
		return raw
	}
	return s.unescape(raw)
}
