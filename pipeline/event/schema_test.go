package event_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ragstream/ragstream/pipeline/event"
)

const schemaFile = "event.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat() // ts is a date-time; 2020-12 only annotates formats by default
	if err := c.AddResource(schemaFile, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaFile, err)
	}
	return sch
}

// TestSchemaAgreement holds the schema and the decoder to the same verdict on
// every fixture about a structural rule, and checks that every decoder-only
// fixture of class schema is one the schema accepts (else the rule belongs
// in the schema). Decode-class fixtures are not JSON, or not UTF-8, which a
// schema validator cannot see (encoding/json replaces invalid UTF-8 and lone
// surrogates), so only the decoder judges them.
func TestSchemaAgreement(t *testing.T) {
	sch := compileSchema(t)
	validate := func(t *testing.T, value []byte) error {
		t.Helper()
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
		if err != nil {
			t.Fatalf("the schema validator cannot parse the fixture: %v", err)
		}
		return sch.Validate(inst)
	}
	for _, c := range loadCases(t, goodDir) {
		if c.Tombstone {
			continue // no value to validate
		}
		t.Run("good/"+c.Name, func(t *testing.T) {
			if err := validate(t, c.value(t, goodDir)); err != nil {
				t.Errorf("decoder accepts, schema rejects: %v", err)
			}
		})
	}
	structural := 0
	for _, c := range loadCases(t, badDir) {
		if c.Tombstone || c.Class == event.ClassDecode {
			continue
		}
		t.Run("bad/"+c.Name, func(t *testing.T) {
			err := validate(t, c.value(t, badDir))
			switch c.Rule {
			case "schema":
				structural++
				if err == nil {
					t.Errorf("decoder rejects (%s), schema accepts", c.Message)
				}
			case "decoder":
				if err != nil {
					t.Errorf("marked decoder-only, but the schema rejects it too (mark it rule schema): %v", err)
				}
			}
		})
	}
	if structural < 25 {
		t.Errorf("only %d structural bad fixtures", structural)
	}
}

// TestSchemaLimits keeps the limits written in the schema equal to the
// decoder's defaults.
func TestSchemaLimits(t *testing.T) {
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	at := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: %q is not inside an object", path, p)
			}
			v = m[p]
		}
		return v
	}
	props := at("$defs", "props", "additionalProperties", "anyOf").([]any)
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{"id maxLength", at("$defs", "id", "maxLength"), event.DefaultMaxIDBytes},
		{"text maxLength", at("properties", "text", "maxLength"), event.DefaultMaxTextBytes},
		{"string maxLength", at("$defs", "string", "maxLength"), event.DefaultMaxStringBytes},
		{"metaValue maxLength", at("$defs", "metaValue", "maxLength"), event.DefaultMaxStringBytes},
		{"key maxLength", at("$defs", "key", "maxLength"), event.DefaultMaxKeyBytes},
		{"entities maxItems", at("properties", "entities", "maxItems"), event.DefaultMaxEntities},
		{"relations maxItems", at("properties", "relations", "maxItems"), event.DefaultMaxRelations},
		{"metadata maxProperties", at("$defs", "metaObject", "maxProperties"), event.DefaultMaxMetadataKeys},
		{"metaValue maxProperties", at("$defs", "metaValue", "maxProperties"), event.DefaultMaxMetadataKeys},
		{"metaValue maxItems", at("$defs", "metaValue", "maxItems"), event.DefaultMaxArrayItems},
		{"props maxProperties", at("$defs", "props", "maxProperties"), event.DefaultMaxPropsKeys},
		{"props array maxItems", props[2].(map[string]any)["maxItems"], event.DefaultMaxArrayItems},
		{"vector maxItems", at("properties", "vector", "maxItems"), event.MaxDims},
		{"tenant pattern", at("properties", "tenant", "pattern"), event.TenantPattern},
		{"label pattern", at("$defs", "label", "pattern"), event.LabelPattern},
	} {
		want := c.want
		if n, ok := want.(int); ok {
			want = float64(n)
		}
		if c.got != want {
			t.Errorf("schema %s = %v, decoder default %v", c.name, c.got, c.want)
		}
	}
	if got, want := event.DefaultMaxTenantBytes, 63; got != want {
		t.Errorf("DefaultMaxTenantBytes %d, the tenant pattern allows %d", got, want)
	}
}
