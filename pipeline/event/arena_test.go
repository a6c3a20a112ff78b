package event_test

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline/event"
)

// arenaRecord is an event whose strings and values overflow the decoder's
// shared blocks several times: a text longer than a block, more string
// values than one slab of headers, escaped keys, numbers of every box.
func arenaRecord(dims int) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"big","tenant":"acme","text":"`)
	b.WriteString(strings.Repeat(`long text \u00e9 `, 300))
	b.WriteString(`","vector":[`)
	for i := range dims {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("0.5")
	}
	b.WriteString(`],"metadata":{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"k\u00e9%d":"value %d",`, i, i)
	}
	b.WriteString(`"neg":-5,"small":7,"big":9223372036854775807,"min":-9223372036854775808,` +
		`"zero":0.0,"negzero":-0.0,"none":[],"many":[1,2,3,4,5,6,7,8,9,10],"f":1.5,"e":2e300,"empty":"","tags":["a","","b"],` +
		`"deep":{"x":{"y":[1000,-1.25,"z"]}}},` +
		`"entities":[{"id":"a","type":"T","name":"A","props":{"xs":[1,2.5,3000],"e":[],"ys":["a","b","c","d","e","f"],"n":-70000,"s":"\"q\""}},` +
		`{"id":"b","type":"T","name":"B"}],` +
		`"relations":[{"from":"a","to":"b","type":"R","props":{"w":0.25,"since":2013}}]}`)
	return []byte(b.String())
}

// TestArenaValues checks the kinds and exact values of numbers and strings
// the decoder boxes itself, signs and extremes included.
func TestArenaValues(t *testing.T) {
	dec := event.NewDecoder(event.DefaultLimits(4))
	ev, err := dec.Decode([]byte("acme/big"), arenaRecord(4))
	if err != nil {
		t.Fatal(err)
	}
	m := ev.Metadata
	for k, want := range map[string]any{
		"neg": int64(-5), "small": int64(7), "big": int64(math.MaxInt64), "min": int64(math.MinInt64),
		"zero": 0.0, "f": 1.5, "e": 2e300, "empty": "", "k\u00e939": "value 39",
		"tags": []any{"a", "", "b"}, "none": []any{},
		"many": []any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7), int64(8), int64(9), int64(10)},
		"deep": map[string]any{"x": map[string]any{"y": []any{int64(1000), -1.25, "z"}}},
	} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("metadata[%q] = %#v, want %#v", k, m[k], want)
		}
	}
	if nz, ok := m["negzero"].(float64); !ok || nz != 0 || !math.Signbit(nz) {
		t.Errorf("metadata.negzero = %#v, want float64 -0", m["negzero"])
	}
	if z, ok := m["zero"].(float64); !ok || math.Signbit(z) {
		t.Errorf("metadata.zero = %#v, want float64 +0", m["zero"])
	}
	wantProps := map[string]any{"xs": []any{1.0, 2.5, 3000.0}, "n": int64(-70000), "s": `"q"`,
		"e": []any{}, "ys": []any{"a", "b", "c", "d", "e", "f"}}
	if got := ev.Entities[0].Props; !reflect.DeepEqual(got, wantProps) {
		t.Errorf("entities[0].props = %#v, want %#v", got, wantProps)
	}
	if got, want := ev.Relations[0].Props, map[string]any{"w": 0.25, "since": int64(2013)}; !reflect.DeepEqual(got, want) {
		t.Errorf("relations[0].props = %#v, want %#v", got, want)
	}
	if want := strings.Repeat("long text é ", 300); ev.Text != want {
		t.Errorf("text of %d bytes, want %d", len(ev.Text), len(want))
	}
}

// TestDecodeIntoLeavesEarlierEvents decodes many records into one Event, as
// the pipeline does, keeping a copy of each result the way a sink keeps its
// strings and maps: no later decode may change what an earlier one returned.
func TestDecodeIntoLeavesEarlierEvents(t *testing.T) {
	const dims = 8
	recs := sample.Generate(200, sample.Options{Seed: 11, Dims: dims, EscapeNonASCII: 0.5})
	recs = append(recs, sample.Record{Key: []byte("acme/big"), Value: arenaRecord(dims)})
	dec := event.NewDecoder(event.DefaultLimits(dims))
	type kept struct {
		ev   event.Event
		want string
	}
	var all []kept
	var ev event.Event
	for i, r := range recs {
		if err := dec.DecodeInto(r.Key, r.Value, &ev); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		// The slices are the decoder's to reuse; strings and maps are not.
		c := ev
		c.Vector = append([]float32(nil), ev.Vector...)
		c.Entities = append([]event.Entity(nil), ev.Entities...)
		c.Relations = append([]event.Relation(nil), ev.Relations...)
		all = append(all, kept{c, render(&c)})
		if i%50 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	for i, k := range all {
		if got := render(&k.ev); got != k.want {
			t.Fatalf("record %d changed after later decodes:\n%s", i, diff(k.want, got))
		}
		fresh, err := dec.Decode(recs[i].Key, recs[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		if got := render(&fresh); got != k.want {
			t.Fatalf("record %d: DecodeInto and Decode differ:\n%s", i, diff(k.want, got))
		}
	}
}
