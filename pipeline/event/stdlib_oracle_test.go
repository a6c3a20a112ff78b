package event_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ragstream/ragstream/pipeline/event"
)

// matchStdlib holds an accepted event to what encoding/json reads from the
// same value: the independent oracle for escapes, numbers and structure.
// Values the decoder accepts have no duplicate keys, no invalid UTF-8 and no
// lone surrogates, where the two would legitimately differ.
func matchStdlib(t *testing.T, value []byte, ev *event.Event) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("encoding/json cannot read an accepted value: %v", err)
	}
	str := func(k string) string { s, _ := doc[k].(string); return s }
	if ev.ID != str("id") || ev.Tenant != str("tenant") || ev.DocID != str("doc_id") || ev.Text != str("text") {
		t.Fatalf("strings differ from encoding/json: %q %q %q %q", ev.ID, ev.Tenant, ev.DocID, ev.Text)
	}
	if _, ok := doc["text"].(string); ok != ev.HasText {
		t.Fatalf("HasText %v, encoding/json text %v", ev.HasText, doc["text"])
	}
	vec, _ := doc["vector"].([]any)
	if len(vec) != len(ev.Vector) {
		t.Fatalf("vector of %d, encoding/json %d", len(ev.Vector), len(vec))
	}
	for i, x := range vec {
		want, _ := strconv.ParseFloat(string(x.(json.Number)), 32)
		if math.Float32bits(float32(want)) != math.Float32bits(ev.Vector[i]) {
			t.Fatalf("vector[%d] = %v, encoding/json %v", i, ev.Vector[i], x)
		}
	}
	if doc["metadata"] != nil || ev.Metadata != nil {
		if got, want := ev.Metadata, kinds(doc["metadata"], false); !reflect.DeepEqual(any(got), want) {
			t.Fatalf("metadata %#v, encoding/json %#v", got, want)
		}
	}
	ents, _ := doc["entities"].([]any)
	if len(ents) != len(ev.Entities) {
		t.Fatalf("%d entities, encoding/json %d", len(ev.Entities), len(ents))
	}
	for i, x := range ents {
		m := x.(map[string]any)
		e := ev.Entities[i]
		if e.ID != m["id"] || e.Type != m["type"] || e.Name != m["name"] {
			t.Fatalf("entities[%d] %+v, encoding/json %v", i, e, m)
		}
		if m["props"] != nil || e.Props != nil {
			if want := kinds(m["props"], true); !reflect.DeepEqual(any(e.Props), want) {
				t.Fatalf("entities[%d].props %#v, encoding/json %#v", i, e.Props, want)
			}
		}
	}
	rels, _ := doc["relations"].([]any)
	if len(rels) != len(ev.Relations) {
		t.Fatalf("%d relations, encoding/json %d", len(ev.Relations), len(rels))
	}
	for i, x := range rels {
		m := x.(map[string]any)
		r := ev.Relations[i]
		if r.From != m["from"] || r.To != m["to"] || r.Type != m["type"] {
			t.Fatalf("relations[%d] %+v, encoding/json %v", i, r, m)
		}
		if m["props"] != nil || r.Props != nil {
			if want := kinds(m["props"], true); !reflect.DeepEqual(any(r.Props), want) {
				t.Fatalf("relations[%d].props %#v, encoding/json %#v", i, r.Props, want)
			}
		}
	}
	if v, ok := doc["version"].(json.Number); ok {
		if got := fmt.Sprint(ev.Version); !ev.HasVersion || !sameInteger(string(v), ev.Version) {
			t.Fatalf("version %s, encoding/json %s", got, v)
		}
	}
}

// kinds converts encoding/json's UseNumber output to the decoder's kinds:
// an integer literal is an int64, any other number a float64; in props, an
// array holding a non-integer makes all its numbers float64.
func kinds(v any, props bool) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			n, _ := strconv.ParseInt(s, 10, 64)
			return n
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = kinds(e, props)
		}
		return out
	case []any:
		out := make([]any, len(x))
		floats := false
		for i, e := range x {
			out[i] = kinds(e, props)
			if _, ok := out[i].(float64); ok {
				floats = true
			}
		}
		if props && floats {
			for i, e := range out {
				if n, ok := e.(int64); ok {
					out[i] = float64(n)
				}
			}
		}
		return out
	}
	return v
}

func sameInteger(lit string, v int64) bool {
	f, err := strconv.ParseFloat(lit, 64)
	return err == nil && (f == float64(v) || math.Abs(f-float64(v)) <= math.Abs(f)*1e-15)
}
