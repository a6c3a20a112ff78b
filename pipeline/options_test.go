package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

func TestNewRejectsBadOptions(t *testing.T) {
	good := func() pipeline.Options {
		return pipeline.Options{Group: "g", Topics: []string{"events"}, Limits: event.DefaultLimits(4)}
	}
	tests := []struct {
		name   string
		modify func(o *pipeline.Options)
		want   []string
	}{
		{"no group", func(o *pipeline.Options) { o.Group = "" }, []string{"Group: required"}},
		{"no topics", func(o *pipeline.Options) { o.Topics = nil }, []string{"Topics: at least one"}},
		{"empty topic", func(o *pipeline.Options) { o.Topics = []string{"a", ""} }, []string{"Topics[1]: empty"}},
		{"start offset", func(o *pipeline.Options) { o.StartOffset = "middle" }, []string{`StartOffset: want earliest or latest, got "middle"`}},
		{"negative records", func(o *pipeline.Options) { o.MaxRecords = -1 }, []string{"MaxRecords: must be at least 1, got -1"}},
		{"negative linger", func(o *pipeline.Options) { o.Linger = -5 * time.Second }, []string{"Linger: must not be negative"}},
		{"revoke beyond rebalance", func(o *pipeline.Options) { o.RevokeTimeout = time.Minute; o.RebalanceTimeout = 30 * time.Second },
			[]string{"RevokeTimeout: 1m0s must be below RebalanceTimeout 30s"}},
		{"no dims", func(o *pipeline.Options) { o.Limits.Dims = 0 }, []string{"Limits: event limits: dims 0"}},
		{"several at once", func(o *pipeline.Options) { o.Group = ""; o.MaxInflightBatches = -2 },
			[]string{"Group: required", "MaxInflightBatches: must be at least 1, got -2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.modify(&o)
			_, err := pipeline.New(o, nil, pipelinetest.NewStore("a"), pipelinetest.NewStore("s"), nil, zerolog.Nop(), pipeline.Hooks{})
			if err == nil {
				t.Fatal("New accepted bad options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("stores required", func(t *testing.T) {
		_, err := pipeline.New(good(), nil, nil, nil, nil, zerolog.Nop(), pipeline.Hooks{})
		if err == nil || !strings.Contains(err.Error(), "Authority is required") || !strings.Contains(err.Error(), "Sink is required") {
			t.Errorf("New without stores: %v", err)
		}
	})
	t.Run("defaults suffice", func(t *testing.T) {
		if _, err := pipeline.New(good(), nil, pipelinetest.NewStore("a"), pipelinetest.NewStore("s"), nil, zerolog.Nop(), pipeline.Hooks{}); err != nil {
			t.Errorf("New with only the required fields: %v", err)
		}
	})
}

func TestOptionsFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.Group, cfg.Kafka.Topics = "workers", []string{"a", "b"}
	cfg.Kafka.Isolation = "read_uncommitted"
	cfg.Pipeline.Batch.Linger = 0
	o := pipeline.OptionsFromConfig(&cfg)
	if o.Group != "workers" || len(o.Topics) != 2 || !o.ReadUncommitted {
		t.Errorf("group/topics/isolation not mapped: %+v", o)
	}
	if o.Linger != pipeline.ZeroLinger {
		t.Errorf("linger 0 in config maps to %v, want ZeroLinger (no linger)", o.Linger)
	}
	if o.MaxRecords != cfg.Pipeline.Batch.MaxRecords || o.MaxInflightBatches != cfg.Pipeline.MaxInflightBatches ||
		o.DrainTimeout != cfg.Pipeline.DrainTimeout.Duration() || o.Limits.Dims != cfg.Qdrant.VectorSize {
		t.Errorf("pipeline settings not mapped: %+v", o)
	}
	// max_active_batches 0: one batch per Neo4j transaction turn plus
	// one ready; a set value is taken as it is.
	for _, tt := range []struct{ set, txs, want int }{{0, 1, 2}, {0, 3, 4}, {5, 1, 5}} {
		c := cfg
		c.Pipeline.MaxActiveBatches, c.Neo4j.MaxConcurrentTransactions = tt.set, tt.txs
		if got := pipeline.OptionsFromConfig(&c).MaxActiveBatches; got != tt.want {
			t.Errorf("max_active_batches %d with neo4j.max_concurrent_transactions %d: MaxActiveBatches %d, want %d", tt.set, tt.txs, got, tt.want)
		}
	}
	if o.RevokeTimeout <= 0 || o.RevokeTimeout >= o.RebalanceTimeout {
		t.Errorf("revoke timeout %v not below rebalance timeout %v", o.RevokeTimeout, o.RebalanceTimeout)
	}
	if _, err := pipeline.New(o, nil, pipelinetest.NewStore("a"), pipelinetest.NewStore("s"), nil, zerolog.Nop(), pipeline.Hooks{}); err != nil {
		t.Errorf("options from the default config refused: %v", err)
	}
}

func TestKafkaOpts(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  func(k *config.Kafka)
		want []string
	}{
		{"no brokers", func(k *config.Kafka) { k.Brokers = nil }, []string{"kafka.brokers: at least one broker"}},
		{"bad mechanism", func(k *config.Kafka) { k.SASL.Mechanism, k.SASL.User = "GSSAPI", "u" }, []string{`kafka.sasl.mechanism: "GSSAPI" is not one of`}},
		{"sasl without user", func(k *config.Kafka) { k.SASL.Mechanism = config.SASLPlain }, []string{"kafka.sasl.user: required"}},
		{"missing ca", func(k *config.Kafka) { k.TLS.Enabled, k.TLS.CAFile = true, filepath.Join(dir, "nope.pem") }, []string{"kafka.tls.ca_file:", "nope.pem"}},
		{"ca not pem", func(k *config.Kafka) { k.TLS.Enabled, k.TLS.CAFile = true, notPEM }, []string{"kafka.tls.ca_file:", "holds no PEM certificate"}},
		{"cert without key", func(k *config.Kafka) { k.TLS.Enabled, k.TLS.CertFile = true, notPEM }, []string{"kafka.tls.key_file: required with cert_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := config.Default().Kafka
			tc.cfg(&k)
			_, err := pipeline.KafkaOpts(k)
			if err == nil {
				t.Fatal("KafkaOpts accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	// SASL against a cluster that requires it: the right password
	// connects, a wrong one is refused.
	for _, mech := range []string{config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512} {
		t.Run("sasl "+mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "ragstream", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, tc := range []struct {
				pass string
				ok   bool
			}{{"s3cret", true}, {"wrong", false}} {
				k := config.Default().Kafka
				k.Brokers = c.ListenAddrs()
				k.SASL = config.KafkaSASL{Mechanism: mech, User: "ragstream", Password: config.Secret(tc.pass)}
				opts, err := pipeline.KafkaOpts(k)
				if err != nil {
					t.Fatal(err)
				}
				cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(time.Second))...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = cl.Ping(ctx)
				cancel()
				cl.Close()
				if (err == nil) != tc.ok {
					t.Errorf("password %q: ping error %v, want success %v", tc.pass, err, tc.ok)
				}
			}
		})
	}
}

func TestErrorClass(t *testing.T) {
	dec := event.NewDecoder(event.DefaultLimits(4))
	_, decodeErr := dec.Decode([]byte("acme/x"), []byte("{"))
	_, schemaErr := dec.Decode([]byte("acme/x"), []byte(`{"id":"x","tenant":"acme"}`))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{pipeline.Permanent(decodeErr), "decode"},
		{pipeline.Permanent(schemaErr), "schema"},
		{pipeline.Permanent(context.DeadlineExceeded), "store_rejected"},
	} {
		if got := pipeline.ErrorClass(tc.err); got != tc.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCorrelationID(t *testing.T) {
	with := &kgo.Record{Topic: "events", Partition: 3, Offset: 17,
		Headers: []kgo.RecordHeader{{Key: "other", Value: []byte("x")}, {Key: pipeline.CorrelationHeader, Value: []byte("abc-123")}}}
	without := &kgo.Record{Topic: "events", Partition: 3, Offset: 17}
	if got := pipeline.CorrelationID(with); got != "abc-123" {
		t.Errorf("with header: %q", got)
	}
	if got := pipeline.CorrelationID(without); got != "events/3/17" {
		t.Errorf("without header: %q, want events/3/17", got)
	}
}

// TestRunFailsOnRefusedSettings checks that Run ends with the broker's
// reason when Kafka refuses the group's settings for good, instead of
// retrying forever.
func TestRunFailsOnRefusedSettings(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events")) // min session timeout 6 s
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := pipeline.Options{Group: "g", Topics: []string{"events"}, Limits: event.DefaultLimits(4),
		SessionTimeout: 4 * time.Second}
	cons, err := pipeline.New(o, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)},
		pipelinetest.NewStore("a"), pipelinetest.NewStore("s"), nil, zerolog.Nop(), pipeline.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = cons.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "INVALID_SESSION_TIMEOUT") {
		t.Errorf("Run = %v, want the broker's INVALID_SESSION_TIMEOUT", err)
	}
	if ctx.Err() != nil {
		t.Error("Run only returned when the context ended")
	}
}
