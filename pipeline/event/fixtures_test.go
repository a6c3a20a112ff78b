package event_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline/event"
)

var update = flag.Bool("update", false, "rewrite the golden files of good fixtures and the expected class and message of bad ones")

const (
	goodDir = "../../testdata/events/good"
	badDir  = "../../testdata/events/bad"
	// fixtureDims is the vector dimension of fixtures that do not say otherwise.
	fixtureDims = 4
)

// fixture is one row of testdata/events/{good,bad}/cases.json.
type fixture struct {
	Name string `json:"name"`
	// File holds the value; absent for a tombstone (null value).
	File      string  `json:"file,omitempty"`
	Key       *string `json:"key"`
	KeyHex    string  `json:"key_hex,omitempty"` // a key that is not UTF-8
	Tombstone bool    `json:"tombstone,omitempty"`
	Dims      int     `json:"dims,omitempty"`
	Embedder  bool    `json:"embedder,omitempty"`
	// Bad fixtures only. Rule is "schema" when event.schema.json expresses
	// the rule broken, "decoder" when only the decoder can (RULES.md).
	Rule    string `json:"rule,omitempty"`
	Class   string `json:"class,omitempty"`
	Message string `json:"message,omitempty"`
}

func (f *fixture) key(t testing.TB) []byte {
	t.Helper()
	if f.KeyHex != "" {
		k, err := hex.DecodeString(f.KeyHex)
		if err != nil {
			t.Fatalf("%s: key_hex: %v", f.Name, err)
		}
		return k
	}
	if f.Key == nil {
		return nil
	}
	return []byte(*f.Key)
}

func (f *fixture) value(t testing.TB, dir string) []byte {
	t.Helper()
	if f.Tombstone {
		if f.File != "" {
			t.Fatalf("%s: a tombstone has no file", f.Name)
		}
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, f.File))
	if err != nil {
		t.Fatal(err)
	}
	if b == nil {
		b = []byte{} // an empty file is an empty value, not a tombstone
	}
	return b
}

func (f *fixture) decoder() *event.Decoder {
	dims := f.Dims
	if dims == 0 {
		dims = fixtureDims
	}
	l := event.DefaultLimits(dims)
	l.EmbedderConfigured = f.Embedder
	return event.NewDecoder(l)
}

func loadCases(t testing.TB, dir string) []fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []fixture
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatalf("%s/cases.json: %v", dir, err)
	}
	names := map[string]bool{}
	for _, c := range cs {
		if names[c.Name] {
			t.Fatalf("%s/cases.json: duplicate case %q", dir, c.Name)
		}
		names[c.Name] = true
	}
	return cs
}

func TestGoodFixtures(t *testing.T) {
	cases := loadCases(t, goodDir)
	var reused event.Event // DecodeInto must reset every field between events
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			d := c.decoder()
			ev, err := d.Decode(c.key(t), c.value(t, goodDir))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if v := c.value(t, goodDir); v != nil {
				matchStdlib(t, v, &ev)
			}
			got := render(&ev)
			golden := filepath.Join(goodDir, c.Name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("decoded event differs from %s:\n%s", golden, diff(string(want), got))
			}
			if err := d.DecodeInto(c.key(t), c.value(t, goodDir), &reused); err != nil {
				t.Fatalf("DecodeInto: %v", err)
			}
			if again := render(&reused); again != got {
				t.Errorf("DecodeInto into a used Event differs from Decode:\n%s", diff(got, again))
			}
		})
	}
}

func TestBadFixtures(t *testing.T) {
	cases := loadCases(t, badDir)
	kinds := 0
	files := map[string]bool{}
	for i := range cases {
		c := &cases[i]
		if c.File != "" {
			files[c.File] = true
		}
		t.Run(c.Name, func(t *testing.T) {
			_, err := c.decoder().Decode(c.key(t), c.value(t, badDir))
			if err == nil {
				t.Fatalf("Decode accepted a bad event")
			}
			var e *event.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *event.Error", err, err)
			}
			if *update {
				c.Class, c.Message = e.Class, e.Error()
			}
			if e.Class != c.Class || e.Error() != c.Message {
				t.Errorf("got  %s %q\nwant %s %q", e.Class, e.Error(), c.Class, c.Message)
			}
			if e.Error() != e.Field+": "+e.Msg && (e.Field != "" || e.Error() != e.Msg) {
				t.Errorf("Error() %q is not field: msg (%q, %q)", e.Error(), e.Field, e.Msg)
			}
			if c.Rule != "schema" && c.Rule != "decoder" {
				t.Errorf("rule %q: want schema or decoder", c.Rule)
			}
		})
		kinds++
	}
	if kinds < 25 {
		t.Errorf("%d bad kinds, the contract asks for at least 25", kinds)
	}
	entries, err := os.ReadDir(badDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if de.Name() != "cases.json" && !files[de.Name()] {
			t.Errorf("%s/%s has no row in cases.json", badDir, de.Name())
		}
	}
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", " ")
		if err := enc.Encode(cases); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(badDir, "cases.json"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// render prints an event deterministically, every value with its Go type,
// for the golden files.
func render(ev *event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "op: %s\ntombstone: %t\ntenant: %q\nid: %q\n", ev.Op, ev.Tombstone, ev.Tenant, ev.ID)
	fmt.Fprintf(&b, "doc_id: %q\n", ev.DocID)
	if ev.HasText {
		fmt.Fprintf(&b, "text: %q\n", ev.Text)
	} else {
		b.WriteString("text: absent\n")
	}
	if len(ev.Vector) == 0 {
		b.WriteString("vector: absent\n")
	} else {
		fmt.Fprintf(&b, "vector: %d float32 [", len(ev.Vector))
		for i, f := range ev.Vector {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(float64(f), 'g', -1, 32))
		}
		b.WriteString("]\n")
	}
	if ev.HasVersion {
		fmt.Fprintf(&b, "version: %d\n", ev.Version)
	} else {
		b.WriteString("version: absent\n")
	}
	if ev.TS.IsZero() {
		b.WriteString("ts: absent\n")
	} else {
		fmt.Fprintf(&b, "ts: %s\n", ev.TS.Format(time.RFC3339Nano))
	}
	if ev.Metadata == nil {
		b.WriteString("metadata: absent\n")
	} else {
		b.WriteString("metadata: ")
		renderValue(&b, "", ev.Metadata)
	}
	fmt.Fprintf(&b, "entities: %d\n", len(ev.Entities))
	for i, e := range ev.Entities {
		fmt.Fprintf(&b, "  [%d] id=%q type=%q name=%q\n", i, e.ID, e.Type, e.Name)
		if e.Props != nil {
			b.WriteString("      props: ")
			renderValue(&b, "      ", e.Props)
		}
	}
	fmt.Fprintf(&b, "relations: %d\n", len(ev.Relations))
	for i, r := range ev.Relations {
		fmt.Fprintf(&b, "  [%d] (%q)-[%q]->(%q)\n", i, r.From, r.Type, r.To)
		if r.Props != nil {
			b.WriteString("      props: ")
			renderValue(&b, "      ", r.Props)
		}
	}
	return b.String()
}

func renderValue(b *strings.Builder, indent string, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("nil\n")
	case string:
		fmt.Fprintf(b, "string %q\n", x)
	case int64:
		fmt.Fprintf(b, "int64 %d\n", x)
	case float64:
		fmt.Fprintf(b, "float64 %s\n", strconv.FormatFloat(x, 'g', -1, 64))
	case bool:
		fmt.Fprintf(b, "bool %t\n", x)
	case []any:
		fmt.Fprintf(b, "[]any len %d\n", len(x))
		for i, e := range x {
			fmt.Fprintf(b, "%s  [%d] ", indent, i)
			renderValue(b, indent+"  ", e)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(b, "map len %d\n", len(x))
		for _, k := range keys {
			fmt.Fprintf(b, "%s  %q: ", indent, k)
			renderValue(b, indent+"  ", x[k])
		}
	default:
		fmt.Fprintf(b, "UNEXPECTED %T %v\n", v, v)
	}
}

// diff shows the first differing line of two renderings.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return "(equal)"
}
