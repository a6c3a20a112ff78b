package event_test

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline/event"
)

var (
	tenantRE = regexp.MustCompile(event.TenantPattern)
	labelRE  = regexp.MustCompile(event.LabelPattern)
)

// FuzzDecode feeds arbitrary keys and values to the decoder, seeded with
// every fixture and a few generated events. Beyond not crashing, it holds the
// decoder to what its callers rely on: every error is an *event.Error of a
// known class; a value encoding/json calls invalid is never accepted and is
// always class decode; an accepted event satisfies the contract.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{goodDir, badDir} {
		for _, c := range loadCases(f, dir) {
			// The fuzzer minimizes every input that finds new coverage,
			// which is slow on the limit fixtures of tens of kilobytes;
			// TestBadFixtures covers those, the fuzzer gets the small ones.
			if v := c.value(f, dir); len(v) <= 4<<10 {
				f.Add(c.key(f), v, c.Tombstone)
			}
		}
	}
	for _, r := range sample.Generate(8, sample.Options{Seed: 3, Dims: fixtureDims, EscapeNonASCII: 0.5}) {
		f.Add(r.Key, r.Value, r.Value == nil)
	}
	l := event.DefaultLimits(fixtureDims)
	l.MaxStringBytes, l.MaxTextBytes, l.MaxDepth = 64, 256, 4 // reachable by small inputs
	dec := event.NewDecoder(l)
	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		ev, err := dec.Decode(key, value)
		if err != nil {
			var e *event.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *event.Error: %v", err, err)
			}
			if e.Class != event.ClassDecode && e.Class != event.ClassSchema {
				t.Fatalf("unknown class %q: %v", e.Class, err)
			}
			if e.Msg == "" {
				t.Fatalf("empty message")
			}
			if value != nil && !json.Valid(value) && e.Class != event.ClassDecode {
				t.Fatalf("invalid JSON reported as %s: %v", e.Class, err)
			}
			return
		}
		if value != nil && !json.Valid(value) {
			t.Fatalf("accepted a value encoding/json calls invalid: %q", value)
		}
		checkEvent(t, l, key, value == nil, &ev)
		if value != nil {
			matchStdlib(t, value, &ev)
		}
	})
}

// checkEvent asserts the contract on an accepted event.
func checkEvent(t *testing.T, l event.Limits, key []byte, tombstone bool, ev *event.Event) {
	t.Helper()
	if !tenantRE.MatchString(ev.Tenant) {
		t.Fatalf("accepted tenant %q", ev.Tenant)
	}
	if ev.ID == "" || len(ev.ID) > l.MaxIDBytes || !utf8.ValidString(ev.ID) {
		t.Fatalf("accepted id %q", ev.ID)
	}
	if len(key) > 0 && string(key) != ev.Tenant+"/"+ev.ID {
		t.Fatalf("key %q accepted for %s/%s", key, ev.Tenant, ev.ID)
	}
	if tombstone {
		if !ev.Tombstone || ev.Op != event.OpDelete {
			t.Fatalf("tombstone decoded as %+v", ev)
		}
		return
	}
	if ev.Op == event.OpUpsert && len(ev.Vector) != l.Dims && !(l.EmbedderConfigured && ev.HasText) {
		t.Fatalf("upsert accepted with a vector of %d", len(ev.Vector))
	}
	if len(ev.Vector) != 0 && len(ev.Vector) != l.Dims {
		t.Fatalf("vector of %d accepted", len(ev.Vector))
	}
	for i, f := range ev.Vector {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("vector[%d] = %v accepted", i, f)
		}
	}
	if len(ev.Text) > l.MaxTextBytes || !utf8.ValidString(ev.Text) || !utf8.ValidString(ev.DocID) {
		t.Fatalf("text or doc_id out of contract")
	}
	ids := map[string]bool{}
	for _, e := range ev.Entities {
		if !labelRE.MatchString(e.Type) || e.Name == "" || !utf8.ValidString(e.Name) || ids[e.ID] {
			t.Fatalf("entity %+v accepted", e)
		}
		ids[e.ID] = true
		checkProps(t, e.Props)
	}
	for _, r := range ev.Relations {
		if !labelRE.MatchString(r.Type) || !ids[r.From] || !ids[r.To] {
			t.Fatalf("relation %+v accepted", r)
		}
		checkProps(t, r.Props)
	}
	checkMeta(t, l, ev.Metadata, 1)
}

func checkProps(t *testing.T, props map[string]any) {
	t.Helper()
	for k, v := range props {
		if k == "" || !utf8.ValidString(k) {
			t.Fatalf("props key %q accepted", k)
		}
		switch x := v.(type) {
		case nil, bool, int64, string:
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				t.Fatalf("props %q = %v accepted", k, x)
			}
		case []any:
			kinds := map[string]bool{}
			for _, e := range x {
				switch e.(type) {
				case string:
					kinds["string"] = true
				case int64, float64:
					kinds["number"] = true
				case bool:
					kinds["bool"] = true
				default:
					t.Fatalf("props %q holds %T", k, e)
				}
			}
			if len(kinds) > 1 {
				t.Fatalf("props %q mixes %v", k, kinds)
			}
		default:
			t.Fatalf("props %q = %T accepted", k, v)
		}
	}
}

func checkMeta(t *testing.T, l event.Limits, v any, depth int) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if depth > l.MaxDepth {
			t.Fatalf("metadata nests deeper than %d", l.MaxDepth)
		}
		for k, e := range x {
			if k == "" || len(k) > l.MaxKeyBytes || !utf8.ValidString(k) {
				t.Fatalf("metadata key %q accepted", k)
			}
			checkMeta(t, l, e, depth+1)
		}
	case []any:
		if depth > l.MaxDepth {
			t.Fatalf("metadata nests deeper than %d", l.MaxDepth)
		}
		for _, e := range x {
			checkMeta(t, l, e, depth+1)
		}
	case string:
		if len(x) > l.MaxStringBytes || !utf8.ValidString(x) {
			t.Fatalf("metadata string %q accepted", x)
		}
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			t.Fatalf("metadata %v accepted", x)
		}
	case nil, bool, int64:
	default:
		t.Fatalf("metadata holds %T", v)
	}
}
