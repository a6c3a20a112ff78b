package event

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func scanLit(t *testing.T, s string) (*scanner, numLit) {
	t.Helper()
	sc := &scanner{buf: []byte(s)}
	lit, err := sc.number(nil)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	if lit.end != len(s) {
		t.Fatalf("%q: scanned %d of %d bytes", s, lit.end, len(s))
	}
	return sc, lit
}

// TestFloat32MatchesStrconv holds the fast float path to strconv's correctly
// rounded result, on random decimals of every length and on the cases
// where rounding twice (decimal to float64 to float32) would go wrong.
func TestFloat32MatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lits := []string{
		"0", "-0", "1", "-1", "0.1", "16777217", "16777219", "33554435",
		"1.00000005960464477539062500001", "1.000000059604644775390625", // just above / at a float32 midpoint
		"1.0000000596046447753906249999", "0.000000000000000000000000000000000000011754942",
		"1e-45", "7e-46", "1.4e-45", "3.4028235e38", "3.4028236e38", "1e38", "123456789012345678",
		"9007199254740993", "0.30000001192092896", "2.5e-8", "-6.103515625e-05",
	}
	for range 20000 {
		f := float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10)))
		lits = append(lits,
			strconv.FormatFloat(float64(f), 'g', -1, 32),
			strconv.FormatFloat(float64(f), 'g', 1+r.IntN(17), 64),
			strconv.FormatFloat(float64(f), 'f', r.IntN(12), 64),
			strconv.FormatFloat(float64(f), 'e', r.IntN(20), 64),
			// midpoint between f and its successor: the double-rounding trap
			strconv.FormatFloat((float64(f)+float64(math.Nextafter32(f, float32(math.Inf(1)))))/2, 'g', -1, 64),
		)
	}
	fast := 0
	defer func() {
		if fast < len(lits)/2 {
			t.Errorf("the fast path took only %d of %d literals", fast, len(lits))
		}
	}()
	for _, s := range lits {
		sc, lit := scanLit(t, s)
		got, ok := sc.float32(lit)
		want, err := strconv.ParseFloat(s, 32)
		if (err == nil) != ok {
			t.Fatalf("%q: ok %v, strconv error %v", s, ok, err)
		}
		if ok && math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("%q: got %v (%#x), want %v (%#x)", s, got, math.Float32bits(got), float32(want), math.Float32bits(float32(want)))
		}
		if ff, end, ok := fastFloat32([]byte(s+","), 0); ok {
			fast++
			if end != len(s) || err != nil || math.Float32bits(ff) != math.Float32bits(float32(want)) {
				t.Fatalf("%q: fast path %v (%#x) end %d, want %v (%#x)", s, ff, math.Float32bits(ff), end, float32(want), math.Float32bits(float32(want)))
			}
		}
		g64, ok64 := sc.float64(lit)
		w64, err := strconv.ParseFloat(s, 64)
		if ok64 != (err == nil) || ok64 && math.Float64bits(g64) != math.Float64bits(w64) {
			t.Fatalf("%q: float64 %v %v, strconv %v %v", s, g64, ok64, w64, err)
		}
	}
}

func TestIntegers(t *testing.T) {
	for _, c := range []struct {
		lit      string
		int64    int64
		ok       bool
		integral int64
		isInt    bool // integral ok
	}{
		{"0", 0, true, 0, true},
		{"-0", 0, true, 0, true},
		{"17", 17, true, 17, true},
		{"9223372036854775807", math.MaxInt64, true, math.MaxInt64, true},
		{"9223372036854775808", 0, false, 0, false},
		{"-9223372036854775808", math.MinInt64, true, 0, false},
		{"-9223372036854775809", 0, false, 0, false},
		{"12345678901234567890", 0, false, 0, false},
		{"17.0", 0, false, 17, true},
		{"1.7e1", 0, false, 17, true},
		{"170e-1", 0, false, 17, true},
		{"0.0", 0, false, 0, true},
		{"0e999999999", 0, false, 0, true},
		{"1e18", 0, false, 1e18, true},
		{"9.223372036854775807e18", 0, false, math.MaxInt64, true},
		{"9.223372036854775808e18", 0, false, 0, false},
		{"1e19", 0, false, 0, false},
		{"1e999999999", 0, false, 0, false},
		{"17.5", 0, false, 0, false},
		{"-1", -1, true, 0, false},
		{"1.0000000000000000000001", 0, false, 0, false},
	} {
		sc, lit := scanLit(t, c.lit)
		if lit.isInt {
			v, ok := sc.int64(lit)
			if ok != c.ok || v != c.int64 {
				t.Errorf("int64(%s) = %d, %v; want %d, %v", c.lit, v, ok, c.int64, c.ok)
			}
		}
		v, ok := integral(lit)
		if ok != c.isInt || v != c.integral {
			t.Errorf("integral(%s) = %d, %v; want %d, %v", c.lit, v, ok, c.integral, c.isInt)
		}
	}
}

func TestRFC3339(t *testing.T) {
	for _, s := range []string{
		"2026-01-08T12:00:00Z", "2026-01-08T12:00:00.5Z", "2026-01-08T12:00:00.123456789Z",
		"2026-01-08T12:00:00+02:00", "2026-01-08T12:00:00-07:30", "2024-02-29T23:59:59.999999999+23:59",
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	} {
		got, ok := parseRFC3339([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: got %v %v, time.Parse %v %v", s, got, ok, want, err)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"2026-01-08t12:00:00z", "2026-01-08T12:00:00Z"},
		{"2026-01-08T12:00:00.1234567891Z", "2026-01-08T12:00:00.123456789Z"},
		{"2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"},
		{"2017-01-01T00:59:60.5+01:00", "2017-01-01T00:00:00.5Z"},
	} {
		got, ok := parseRFC3339([]byte(c.in))
		if !ok || got.Format(time.RFC3339Nano) != c.want {
			t.Errorf("%s: got %v %v, want %s", c.in, got, ok, c.want)
		}
	}
	for _, s := range []string{
		"", "2026-01-08", "2026-01-08T12:00:00", "2026-01-08 12:00:00Z", "2026-13-01T00:00:00Z",
		"2025-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-01-08T24:00:00Z", "2026-01-08T12:60:00Z",
		"2026-01-08T12:00:60Z", "2026-01-08T12:00:00.Z", "2026-01-08T12:00:00+2:00", "2026-01-08T12:00:00+24:00",
		"2026-01-08T12:00:00+02:60", "2026-01-08T12:00:00+0200", "2026-01-08T12:00:00ZZ", "+026-01-08T12:00:00Z",
		"2026-01-08T12:00:00UTC",
	} {
		if got, ok := parseRFC3339([]byte(s)); ok {
			t.Errorf("%q accepted as %v", s, got)
		}
	}
}

func TestPathString(t *testing.T) {
	ents := elem(pathEntities, 2)
	typ := field(&ents, "type")
	meta := field(pathMetadata, "a b")
	idx := elem(&meta, 0)
	empty := field(&idx, "")
	for _, c := range []struct {
		p    *path
		want string
	}{
		{nil, ""},
		{&typ, "entities[2].type"},
		{&empty, `metadata["a b"][0][""]`},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestDigits8(t *testing.T) {
	for _, c := range []struct {
		in string
		k  int
		v  uint64
	}{
		{"12345678", 8, 12345678}, {"035013,-", 6, 35013}, {"0,123456", 1, 0}, {"9]......", 1, 9},
		{"x1234567", 0, 0}, {"00000001", 8, 1}, {"99999999", 8, 99999999}, {"1234567/", 7, 1234567},
		{"123:5678", 3, 123}, {"12\xff45678", 2, 12}, {"1\xfa\xff\xff\xff\xff\xff\xff", 1, 1},
	} {
		var w [8]byte
		copy(w[:], c.in)
		k, v := digits8(binary.LittleEndian.Uint64(w[:]))
		if k == 0 {
			v = 0 // meaningless without digits
		}
		if k != c.k || v != c.v {
			t.Errorf("digits8(%q) = %d, %d; want %d, %d", c.in, k, v, c.k, c.v)
		}
	}
}

func TestDigits8Random(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var w [8]byte
		for i := range w {
			if r.IntN(4) == 0 {
				w[i] = byte(r.IntN(256))
			} else {
				w[i] = byte('0' + r.IntN(10))
			}
		}
		wantK, wantV := 0, uint64(0)
		for wantK < 8 && w[wantK] >= '0' && w[wantK] <= '9' {
			wantV = wantV*10 + uint64(w[wantK]-'0')
			wantK++
		}
		k, v := digits8(binary.LittleEndian.Uint64(w[:]))
		if k == 0 {
			v = 0 // meaningless without digits
		}
		if k != wantK || v != wantV {
			t.Fatalf("digits8(%q) = %d, %d; want %d, %d", w[:], k, v, wantK, wantV)
		}
	}
}
