package sample

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// jsonWriter appends JSON by hand: encoding/json would dominate the cost of
// generating benchmark input.
type jsonWriter struct {
	buf []byte
	// ascii escapes every non-ASCII rune as \uXXXX (a surrogate pair beyond
	// the BMP), like Python's json.dumps with its default ensure_ascii.
	ascii bool
}

func (w *jsonWriter) raw(s string) { w.buf = append(w.buf, s...) }

func (w *jsonWriter) int(n int64) { w.buf = strconv.AppendInt(w.buf, n, 10) }

func (w *jsonWriter) float(f float64) {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		// Keep the JSON kind: a whole float still prints as a float.
		w.buf = strconv.AppendFloat(w.buf, f, 'f', 1, 64)
		return
	}
	w.buf = strconv.AppendFloat(w.buf, f, 'g', -1, 64)
}

func (w *jsonWriter) bool(b bool) { w.buf = strconv.AppendBool(w.buf, b) }

const hexDigits = "0123456789abcdef"

func (w *jsonWriter) str(s string) {
	b := append(w.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c >= 0x80 && !w.ascii {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c == '\n':
			b = append(b, '\\', 'n')
			i++
		case c == '\t':
			b = append(b, '\\', 't')
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r > 0xFFFF {
				r -= 0x10000
				b = appendU(b, 0xD800+(r>>10))
				b = appendU(b, 0xDC00+(r&0x3ff))
			} else {
				b = appendU(b, r)
			}
			i += size
		}
		start = i
	}
	b = append(b, s[start:]...)
	w.buf = append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// props writes an ordered object of scalar or array values.
func (w *jsonWriter) props(p []kv) {
	w.raw("{")
	for i, m := range p {
		if i > 0 {
			w.raw(",")
		}
		w.str(m.k)
		w.raw(":")
		switch v := m.v.(type) {
		case string:
			w.str(v)
		case int64:
			w.int(v)
		case float64:
			w.float(v)
		case bool:
			w.bool(v)
		case []string:
			w.raw("[")
			for j, s := range v {
				if j > 0 {
					w.raw(",")
				}
				w.str(s)
			}
			w.raw("]")
		case []int64:
			w.raw("[")
			for j, n := range v {
				if j > 0 {
					w.raw(",")
				}
				w.int(n)
			}
			w.raw("]")
		default:
			panic("sample: unsupported prop value") // the catalog is static
		}
	}
	w.raw("}")
}
