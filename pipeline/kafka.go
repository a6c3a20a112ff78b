package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ragstream/ragstream/config"
)

// KafkaOpts returns the client options every ragstream Kafka client shares —
// the consumer, the dead-letter producer, kadm for lag — built from
// cfg: seed brokers, client id, TLS and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512). It reads the TLS files now, so a missing or bad file is an
// error naming its key. Consumer options (group, topics, offsets) are the
// Consumer's business.
func KafkaOpts(cfg config.Kafka) ([]kgo.Opt, error) {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers: at least one broker required"))
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.DialTLSConfig(tc))
		}
	}
	if m := cfg.SASL.Mechanism; m != "" {
		user, pass := cfg.SASL.User, cfg.SASL.Password.Reveal()
		if user == "" {
			errs = append(errs, fmt.Errorf("kafka.sasl.user: required with mechanism %s", m))
		}
		switch strings.ToUpper(m) {
		case config.SASLPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case config.SASLScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case config.SASLScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		default:
			errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q is not one of %s, %s, %s",
				m, config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

func tlsConfig(c config.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // an explicit, documented operator choice
	}
	var errs []error
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka.tls.ca_file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", c.CAFile))
			}
			tc.RootCAs = pool
		}
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka.tls.cert_file/key_file: %w", err))
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	case c.CertFile != "":
		errs = append(errs, errors.New("kafka.tls.key_file: required with cert_file"))
	case c.KeyFile != "":
		errs = append(errs, errors.New("kafka.tls.cert_file: required with key_file"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tc, nil
}

// kgoLogger hands franz-go's own log lines (connection trouble, group
// management) to zerolog at warn and above: below that it is chatty.
type kgoLogger struct{ log zerolog.Logger }

// NewKgoLogger returns a kgo.Logger that writes franz-go's warnings and
// errors to log, for clients built outside this package.
func NewKgoLogger(log zerolog.Logger) kgo.Logger { return kgoLogger{log: log} }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var ev *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		ev = l.log.Error()
	case kgo.LogLevelWarn:
		ev = l.log.Warn()
	default:
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, ok := keyvals[i].(string)
		if !ok {
			k = fmt.Sprint(keyvals[i])
		}
		ev = ev.Interface(k, keyvals[i+1])
	}
	ev.Str("component", "kafka_client").Msg(msg)
}
