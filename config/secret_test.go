package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	yamlv3 "go.yaml.in/yaml/v3"
)

// secretConfig returns a valid config with every secret set to a value
// that must never show, and those values.
func secretConfig(t *testing.T) (*Config, []string) {
	t.Helper()
	c := Default()
	c.Kafka.SASL = KafkaSASL{Mechanism: SASLScramSHA512, User: "u", Password: "kafka-SECRET-1"}
	c.Qdrant.APIKey = "qdrant-SECRET-2"
	c.Neo4j.Password = "neo4j-SECRET-3"
	c.Redis.Password = "redis-SECRET-4"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c, []string{"kafka-SECRET-1", "qdrant-SECRET-2", "neo4j-SECRET-3", "redis-SECRET-4"}
}

func TestSecretKeys(t *testing.T) {
	// Adding a secret means adding a Secret field and its _file twin; this
	// list is here so that doing so is a visible decision.
	eq(t, "SecretKeys", SecretKeys(), []string{"kafka.sasl.password", "qdrant.api_key", "neo4j.password", "redis.password"})
	c, secrets := secretConfig(t)
	if len(secrets) != len(SecretKeys()) {
		t.Fatalf("secretConfig sets %d secrets, there are %d", len(secrets), len(SecretKeys()))
	}
	for _, f := range schema.fields {
		if f.secret && f.value(c).String() == "" {
			t.Errorf("secretConfig leaves %s empty", f.key)
		}
	}
}

func TestSecretsNeverShown(t *testing.T) {
	c, secrets := secretConfig(t)
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v"} {
		outputs["Sprintf "+verb+" *Config"] = fmt.Sprintf(verb, c)
		outputs["Sprintf "+verb+" Config"] = fmt.Sprintf(verb, *c)
		outputs["Sprintf "+verb+" Neo4j"] = fmt.Sprintf(verb, c.Neo4j)
		outputs["Sprintf "+verb+" Secret"] = fmt.Sprintf(verb, c.Neo4j.Password)
	}
	outputs["Sprint"] = fmt.Sprint(c, c.Kafka.SASL, c.Redis.Password)
	outputs["Println"] = fmt.Sprintln(*c)

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json.Marshal"] = string(j)
	y, err := yamlv3.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["yaml.Marshal"] = string(y)
	r, err := json.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	outputs["Redacted"] = string(r)

	var zl bytes.Buffer
	zlog := zerolog.New(&zl)
	zlog.Info().Object("config", c).Msg("start")
	outputs["zerolog Object"] = zl.String()
	var zi bytes.Buffer
	zilog := zerolog.New(&zi)
	zilog.Info().Interface("config", c).Msg("start")
	outputs["zerolog Interface"] = zi.String()
	var sl bytes.Buffer
	slog.New(slog.NewJSONHandler(&sl, nil)).Info("start", "config", c, "password", c.Neo4j.Password)
	outputs["slog"] = sl.String()

	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
		if !strings.Contains(out, RedactedValue) {
			t.Errorf("%s shows no %s:\n%s", name, RedactedValue, out)
		}
	}

	// The structured forms name each secret key as redacted.
	red := c.Redacted()
	for _, key := range SecretKeys() {
		eq(t, "Redacted()["+key+"]", red[key], any(RedactedValue))
	}
	if !strings.Contains(zl.String(), `"neo4j.password":"[redacted]"`) {
		t.Errorf("zerolog output lacks the redacted neo4j.password key: %s", zl.String())
	}
}

func TestSecretEmptyAndReveal(t *testing.T) {
	var empty Secret
	eq(t, "String", empty.String(), "")
	eq(t, "%q", fmt.Sprintf("%q", empty), `""`)
	def := Default()
	eq(t, "Redacted", def.Redacted()["neo4j.password"], any(""))
	s := Secret("v")
	eq(t, "Reveal", s.Reveal(), "v")
	eq(t, "%v", fmt.Sprintf("%v", s), RedactedValue)
	eq(t, "%#v", fmt.Sprintf("%#v", s), `config.Secret("[redacted]")`)
}

// TestSecretNotInMessages checks that a secret of the wrong type is not
// echoed in the load error.
func TestSecretNotInMessages(t *testing.T) {
	file := writeFile(t, "c.yaml", "neo4j: {password: 918273645}\nredis: {password: [a918273645]}\n")
	got := loadErr(t, LoadOptions{File: file})
	for _, line := range got {
		if strings.Contains(line, "918273645") {
			t.Errorf("message shows the secret: %s", line)
		}
	}
	assertSameLines(t, got, []string{
		"neo4j.password: expected a string, got integer (quote it)",
		"redis.password: expected a string, got a list",
	})
}

func TestRedactedValues(t *testing.T) {
	c := Default()
	r := c.Redacted()
	eq(t, "len", len(r), len(Keys()))
	eq(t, "kafka.brokers", r["kafka.brokers"], any([]string{"127.0.0.1:9092"}))
	eq(t, "pipeline.tombstone_retention", r["pipeline.tombstone_retention"], any("7d"))
	eq(t, "pipeline.batch.max_bytes", r["pipeline.batch.max_bytes"], any("8MiB"))
	eq(t, "qdrant.vector_size", r["qdrant.vector_size"], any(384))
	eq(t, "qdrant.store_text", r["qdrant.store_text"], any(true))
	// The map is a copy.
	r["kafka.brokers"].([]string)[0] = "changed"
	eq(t, "kafka.brokers after change", c.Kafka.Brokers[0], "127.0.0.1:9092")
}
