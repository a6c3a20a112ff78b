package event

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// pow10f32 holds the powers of ten that float32 represents exactly.
var pow10f32 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

// fastFloat32 converts the common vector element, -?(0|[1-9]\d*)(\.\d+)?
// with an optional short exponent and at most 19 digits, starting at b[i]
// and followed by a delimiter. ok is false for anything else (including
// every syntax error), which the general path then handles. Within float32's
// exact range (mantissa below 2^24, power of ten up to 10^10) one float32
// division rounds correctly, as in strconv's own fast path; beyond it the
// float64 path of float32 applies.
func fastFloat32(b []byte, i int) (f float32, end int, ok bool) {
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	var m uint64
	if i < len(b) && b[i] == '0' {
		i++
	} else {
		for i < len(b) && b[i]-'0' <= 9 {
			m = m*10 + uint64(b[i]-'0')
			i++
		}
		if i == start {
			return 0, 0, false
		}
	}
	digits := i - start
	e := 0
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		if i+8 <= len(b) {
			// Up to 8 fraction digits at once, without the mispredicted
			// branch a digit loop takes on its variable exit.
			if k, v := digits8(binary.LittleEndian.Uint64(b[i:])); k > 0 {
				m = m*pow10u64[k] + v
				i += k
			}
		}
		for i < len(b) && b[i]-'0' <= 9 {
			m = m*10 + uint64(b[i]-'0')
			i++
		}
		if i == fs {
			return 0, 0, false
		}
		digits += i - fs
		e = fs - i
	}
	if digits > 19 {
		return 0, 0, false
	}
	if i < len(b) && b[i]|0x20 == 'e' {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		es := i
		x := 0
		for i < len(b) && b[i]-'0' <= 9 && i-es < 3 {
			x = x*10 + int(b[i]-'0')
			i++
		}
		if i == es {
			return 0, 0, false
		}
		if eneg {
			x = -x
		}
		e += x
	}
	if i < len(b) {
		switch b[i] {
		case ',', ']', ' ', '\n', '\r', '\t':
		default:
			return 0, 0, false
		}
	}
	if m < 1<<24 && e >= -10 && e <= 10 {
		f = float32(m)
		if e < 0 {
			f /= pow10f32[-e]
		} else {
			f *= pow10f32[e]
		}
		if neg {
			f = -f
		}
		return f, i, true
	}
	f, ok = float32From64(numLit{mant: m, exp10: e, neg: neg, exact: true})
	return f, i, ok
}

var pow10u64 = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// digits8 reads the leading ASCII digits of the 8 bytes in w (the first
// byte lowest) and returns how many there are and, when there are any, their
// value (SWAR; see
// Lemire, "Fast numerical parsing", and simdjson's parse_eight_digits).
func digits8(w uint64) (k int, v uint64) {
	// A byte is a digit when its high nibble is 3 and adding 6 keeps it 3.
	// A carry out of a non-digit byte only disturbs the bytes above it,
	// which come after the first non-digit and are not used.
	nd := (w&0xF0F0F0F0F0F0F0F0 | (w+0x0606060606060606)&0xF0F0F0F0F0F0F0F0>>4) ^ 0x3333333333333333
	k = bits.TrailingZeros64(nd) >> 3
	// Digit values in the low k bytes, moved to the top so the bytes below
	// read as leading zeros; the bytes past the digits fall off the top.
	// The mask lets the compiler emit a bare shift; it makes v meaningless
	// for k = 0, which callers check first.
	d := (w - 0x3030303030303030) << ((64 - 8*k) & 63)
	d = (d * 10) + (d >> 8)
	d = ((d & 0x000000FF000000FF) * (100 + (1000000 << 32))) + (((d >> 16) & 0x000000FF000000FF) * (1 + (10000 << 32)))
	return k, d >> 32 & 0xFFFFFFFF
}

// float32From64 is the float64 route of float32, ok false when it cannot
// decide.
func float32From64(lit numLit) (float32, bool) {
	f, ok := exact64(lit)
	if !ok {
		return 0, false
	}
	if f == 0 {
		return float32(f), true
	}
	a := math.Abs(f)
	if a >= 0x1p-126 && a <= math.MaxFloat32 && math.Float64bits(f)&(1<<29-1) != 1<<28 {
		return float32(f), true
	}
	return 0, false
}

// litString views the literal's bytes as a string without copying. strconv
// copies the string into any error it returns, so the view never outlives buf.
func (s *scanner) litString(lit numLit) string {
	return unsafe.String(&s.buf[lit.start], lit.end-lit.start)
}

// exact64 returns the literal's value rounded once to float64 when mant and
// the power of ten are both exact in float64 (the classic fast path: one
// correctly rounded multiplication or division).
func exact64(lit numLit) (float64, bool) {
	if !lit.exact || lit.mant >= 1<<53 || lit.exp10 < -22 || lit.exp10 > 22 {
		return 0, false
	}
	f := float64(lit.mant)
	if lit.exp10 < 0 {
		f /= pow10[-lit.exp10]
	} else {
		f *= pow10[lit.exp10]
	}
	if lit.neg {
		f = -f
	}
	return f, true
}

// float32 converts the literal to the nearest float32; ok is false when it
// rounds to ±Inf. Converting the once-rounded float64 to float32 rounds twice,
// which errs only when the float64 lands exactly on a midpoint between two
// float32 values (a float32 midpoint is itself a float64, so the nearest
// float64 to x cannot lie beyond one); those, subnormals and overflow take
// strconv's correctly rounded path.
func (s *scanner) float32(lit numLit) (float32, bool) {
	if f, ok := float32From64(lit); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(s.litString(lit), 32)
	if err != nil {
		return 0, false
	}
	return float32(f), true
}

// float64 converts the literal to the nearest float64; ok is false when it
// rounds to ±Inf.
func (s *scanner) float64(lit numLit) (float64, bool) {
	if f, ok := exact64(lit); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(s.litString(lit), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// int64 converts an integer literal; ok is false out of int64's range.
func (s *scanner) int64(lit numLit) (int64, bool) {
	if lit.exact && lit.exp10 == 0 {
		if !lit.neg && lit.mant <= math.MaxInt64 {
			return int64(lit.mant), true
		}
		if lit.neg && lit.mant < 1<<63 {
			return -int64(lit.mant), true
		}
		if lit.neg && lit.mant == 1<<63 {
			return math.MinInt64, true
		}
	}
	return 0, false
}

// integral returns the value of a number of any spelling (17, 17.0, 1.7e1)
// when it is a whole number in [0, MaxInt64], as JSON Schema's "integer"
// type counts them.
func integral(lit numLit) (int64, bool) {
	if !lit.exact {
		return 0, false
	}
	m, e := lit.mant, lit.exp10
	if m == 0 {
		return 0, true
	}
	for e < 0 && m%10 == 0 {
		m /= 10
		e++
	}
	if e < 0 || lit.neg {
		return 0, false
	}
	for ; e > 0; e-- {
		if m > math.MaxInt64/10 {
			return 0, false
		}
		m *= 10
	}
	if m > math.MaxInt64 {
		return 0, false
	}
	return int64(m), true
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
