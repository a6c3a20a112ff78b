package event_test

import (
	"errors"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

// TestDeepMetadataPath names the field of a violation deep inside metadata,
// at depths on both sides of the decoder's fixed room for path steps.
func TestDeepMetadataPath(t *testing.T) {
	l := event.DefaultLimits(1)
	l.MaxDepth = 64
	dec := event.NewDecoder(l)
	for _, depth := range []int{1, 2, 15, 16, 17, 18, 40} {
		// depth containers, metadata first: objects keyed k alternating
		// with arrays whose second item goes on, the innermost holding an
		// integer out of int64 range.
		inner, want := "99999999999999999999", "metadata"
		for i := depth - 1; i >= 0; i-- {
			if i%2 == 0 {
				inner = `{"k":` + inner + `}`
			} else {
				inner = `[1,` + inner + `]`
			}
		}
		for i := range depth {
			want += map[bool]string{true: ".k", false: "[1]"}[i%2 == 0]
		}
		value := `{"id":"x","tenant":"acme","vector":[0.5],"metadata":` + inner + `}`
		_, err := dec.Decode(nil, []byte(value))
		var e *event.Error
		if !errors.As(err, &e) {
			t.Fatalf("depth %d: error %v, want an *event.Error", depth, err)
		}
		if e.Field != want || e.Msg != "integer out of int64 range" {
			t.Errorf("depth %d: got %s: %s, want %s", depth, e.Field, e.Msg, want)
		}
	}
}
