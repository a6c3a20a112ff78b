package event_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

// TestVectorMatchesStrconv decodes vectors whose elements are spelled every
// way producers spell floats, around the decoder's fast path and off it, and
// holds every element to strconv's correctly rounded float32.
func TestVectorMatchesStrconv(t *testing.T) {
	const dims = 64
	r := rand.New(rand.NewPCG(5, 6))
	dec := event.NewDecoder(event.DefaultLimits(dims))
	spell := func(x float64) string {
		switch r.IntN(9) {
		case 0:
			return strconv.FormatFloat(x, 'f', 1+r.IntN(9), 64) // 0.1 … 0.123456789
		case 1:
			return strconv.FormatFloat(x, 'g', -1, 32) // shortest float32, e-05 forms
		case 2:
			return strconv.FormatFloat(x, 'g', -1, 64) // Python's repr of a float64
		case 3:
			return strconv.FormatFloat(x, 'e', r.IntN(10), 64)
		case 4:
			return strconv.FormatFloat(x*1e3, 'f', r.IntN(4), 64) // beyond ±1
		case 5:
			return strconv.FormatFloat(x, 'f', 6, 64) + strings.Repeat("0", r.IntN(3))
		case 6:
			return "-0.0"
		case 7:
			return strconv.FormatFloat(x, 'E', -1, 64)
		}
		return strconv.FormatFloat(x, 'f', 7, 64)
	}
	seps := []string{",", ",", ",", ", ", " ,\n\t"}
	for range 2000 {
		lits := make([]string, dims)
		var b strings.Builder
		b.WriteString(`{"id":"v","tenant":"acme","vector":[`)
		if r.IntN(4) == 0 {
			b.WriteString(" ")
		}
		for i := range lits {
			lits[i] = spell(r.NormFloat64() / 8)
			if i > 0 {
				b.WriteString(seps[r.IntN(len(seps))])
			}
			b.WriteString(lits[i])
		}
		if r.IntN(4) == 0 {
			b.WriteString("\n")
		}
		b.WriteString("]}")
		ev, err := dec.Decode(nil, []byte(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		for i, lit := range lits {
			want, _ := strconv.ParseFloat(lit, 32)
			if math.Float32bits(ev.Vector[i]) != math.Float32bits(float32(want)) {
				t.Fatalf("element %d %q: got %v, want %v", i, lit, ev.Vector[i], float32(want))
			}
		}
	}
}
