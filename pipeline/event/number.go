package event

import (
	"math"
	"strconv"
	"unsafe"
)

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

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
	if f, ok := exact64(lit); ok {
		if f == 0 {
			return float32(f), true
		}
		a := math.Abs(f)
		if a >= 0x1p-126 && a <= math.MaxFloat32 && math.Float64bits(f)&(1<<29-1) != 1<<28 {
			return float32(f), true
		}
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
