package config

import (
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Validate checks c and returns every problem at once as an *Error, one
// "key: message" per problem, or nil. Load calls it; call it yourself on a
// Config built in code. It reads the TLS files it names (to catch a wrong
// path at start-up rather than at the first connection) and nothing else.
func (c *Config) Validate() error { return c.check().err() }

func (c *Config) check() problems {
	var ps problems
	c.checkKafka(&ps)
	c.checkQdrant(&ps)
	c.checkNeo4j(&ps)
	c.checkRedis(&ps)
	c.checkAdmin(&ps)
	c.checkDLQ(&ps)
	oneOf(&ps, "log.level", c.Log.Level, logLevels...)
	c.checkPipeline(&ps)
	c.checkEvent(&ps)
	if c.DevMode {
		c.checkDev(&ps)
	}
	return ps
}

func (c *Config) checkKafka(ps *problems) {
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		ps.add("kafka.brokers", "must not be empty")
	}
	for i, b := range k.Brokers {
		hostPort(ps, fmt.Sprintf("kafka.brokers[%d]", i), b, dial)
	}
	if len(k.Topics) == 0 {
		ps.add("kafka.topics", "must not be empty")
	}
	for i, t := range k.Topics {
		key := fmt.Sprintf("kafka.topics[%d]", i)
		topicName(ps, key, t)
		if slices.Index(k.Topics, t) < i {
			ps.add(key, "duplicate topic %q", t)
		}
	}
	if k.Group == "" {
		ps.add("kafka.group", "must not be empty")
	}
	oneOf(ps, "kafka.start_offset", k.StartOffset, "earliest", "latest")
	oneOf(ps, "kafka.isolation", k.Isolation, "read_committed", "read_uncommitted")
	positive(ps, "kafka.session_timeout", k.SessionTimeout)
	positive(ps, "kafka.rebalance_timeout", k.RebalanceTimeout)
	atLeast(ps, "kafka.fetch_max_bytes", int64(k.FetchMaxBytes), 1)
	if k.FetchMaxBytes > math.MaxInt32 {
		// The Kafka protocol carries it as an int32.
		ps.add("kafka.fetch_max_bytes", "must be at most %d (the protocol's int32), got %d", math.MaxInt32, k.FetchMaxBytes.Bytes())
	}
	atLeast(ps, "kafka.fetch_max_partition_bytes", int64(k.FetchMaxPartitionBytes), 1)
	if k.FetchMaxPartitionBytes > k.FetchMaxBytes {
		ps.add("kafka.fetch_max_partition_bytes", "must be at most kafka.fetch_max_bytes (%s), got %s", k.FetchMaxBytes, k.FetchMaxPartitionBytes)
	}

	t := &k.TLS
	tlsFiles(ps, "kafka.tls", t.Enabled, map[string]string{
		"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile,
	}, t.ServerName != "" || t.InsecureSkipVerify)
	if t.Enabled {
		if t.CertFile != "" && t.KeyFile == "" {
			ps.add("kafka.tls.key_file", "required when kafka.tls.cert_file is set")
		}
		if t.KeyFile != "" && t.CertFile == "" {
			ps.add("kafka.tls.cert_file", "required when kafka.tls.key_file is set")
		}
	}

	s := &k.SASL
	if s.Mechanism == "" {
		if s.User != "" {
			ps.add("kafka.sasl.user", "set but kafka.sasl.mechanism is empty")
		}
		if s.Password != "" {
			ps.add("kafka.sasl.password", "set but kafka.sasl.mechanism is empty")
		}
		return
	}
	if oneOf(ps, "kafka.sasl.mechanism", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512) {
		if s.User == "" {
			ps.add("kafka.sasl.user", "required with kafka.sasl.mechanism %s", s.Mechanism)
		}
		if s.Password == "" {
			ps.add("kafka.sasl.password", "required with kafka.sasl.mechanism %s", s.Mechanism)
		}
	}
}

func (c *Config) checkQdrant(ps *problems) {
	q := &c.Qdrant
	hostPort(ps, "qdrant.addr", q.Addr, dial)
	collectionName(ps, "qdrant.collection", q.Collection)
	if q.VectorSize < 1 || q.VectorSize > 65536 {
		ps.add("qdrant.vector_size", "must be between 1 and 65536, got %d", q.VectorSize)
	}
	oneOf(ps, "qdrant.distance", q.Distance, "Cosine", "Dot", "Euclid", "Manhattan")
	tlsFiles(ps, "qdrant.tls", q.TLS.Enabled, map[string]string{"ca_file": q.TLS.CAFile}, q.TLS.InsecureSkipVerify)
	positive(ps, "qdrant.timeout", q.Timeout)
}

func (c *Config) checkNeo4j(ps *problems) {
	n := &c.Neo4j
	neo4jURI(ps, "neo4j.uri", n.URI)
	if n.User == "" && n.Password != "" {
		ps.add("neo4j.password", "set but neo4j.user is empty")
	}
	if n.Database != "" && !neo4jDatabase.MatchString(n.Database) {
		ps.add("neo4j.database", "invalid name %q (3 to 63 letters, digits, dots and dashes, starting with a letter)", n.Database)
	}
	positive(ps, "neo4j.timeout", n.Timeout)
	atLeast(ps, "neo4j.max_connection_pool_size", int64(n.MaxConnectionPoolSize), 1)
	atLeast(ps, "neo4j.max_concurrent_transactions", int64(n.MaxConcurrentTransactions), 1)
}

func (c *Config) checkRedis(ps *problems) {
	hostPort(ps, "redis.addr", c.Redis.Addr, dial)
	atLeast(ps, "redis.db", int64(c.Redis.DB), 0)
}

func (c *Config) checkAdmin(ps *problems) {
	a := &c.Admin
	hostPort(ps, "admin.addr", a.Addr, listen)
	positive(ps, "admin.read_header_timeout", a.ReadHeaderTimeout)
	positive(ps, "admin.read_timeout", a.ReadTimeout)
	positive(ps, "admin.write_timeout", a.WriteTimeout)
	positive(ps, "admin.idle_timeout", a.IdleTimeout)
	positive(ps, "admin.shutdown_timeout", a.ShutdownTimeout)
	positive(ps, "admin.readiness_interval", a.ReadinessInterval)
	positive(ps, "admin.kafka_check_timeout", a.KafkaCheckTimeout)
	atLeast(ps, "admin.max_header_bytes", int64(a.MaxHeaderBytes), 1)
	atLeast(ps, "admin.max_body_bytes", int64(a.MaxBodyBytes), 1)
}

func (c *Config) checkDLQ(ps *problems) {
	d := &c.DLQ
	if d.Topic != "" {
		topicName(ps, "dlq.topic", d.Topic)
		if slices.Contains(c.Kafka.Topics, d.Topic) {
			ps.add("dlq.topic", "%q is also a source topic in kafka.topics", d.Topic)
		}
	} else {
		for i, t := range c.Kafka.Topics {
			if len(t+dlqSuffix) > maxTopicLen && len(t) <= maxTopicLen {
				ps.add(fmt.Sprintf("kafka.topics[%d]", i),
					"too long to derive its dead-letter topic (%q + %q exceeds %d characters); set dlq.topic",
					t, dlqSuffix, maxTopicLen)
			}
		}
	}
	positive(ps, "dlq.produce_timeout", d.ProduceTimeout)
	atLeast(ps, "dlq.max_replay_count", int64(d.MaxReplayCount), 0)
}

// dlqSuffix names a source topic's dead-letter topic when dlq.topic is empty.
const dlqSuffix = ".dlq"

func (c *Config) checkPipeline(ps *problems) {
	p := &c.Pipeline
	atLeast(ps, "pipeline.batch.max_records", int64(p.Batch.MaxRecords), 1)
	atLeast(ps, "pipeline.batch.max_bytes", int64(p.Batch.MaxBytes), 1)
	if p.Batch.Linger < 0 {
		ps.add("pipeline.batch.linger", "must not be negative, got %s", p.Batch.Linger)
	}
	atLeast(ps, "pipeline.max_inflight_batches", int64(p.MaxInflightBatches), 1)
	atLeast(ps, "pipeline.max_active_batches", int64(p.MaxActiveBatches), 0)
	if p.MaxInflightBytes < p.Batch.MaxBytes {
		ps.add("pipeline.max_inflight_bytes", "must be at least pipeline.batch.max_bytes (%s), so that a full batch fits, got %s", p.Batch.MaxBytes, p.MaxInflightBytes)
	}
	positive(ps, "pipeline.drain_timeout", p.DrainTimeout)
	positive(ps, "pipeline.tombstone_retention", p.TombstoneRetention)
	if positive(ps, "pipeline.tombstone_sweep_interval", p.TombstoneSweepInterval) &&
		p.TombstoneRetention > 0 && p.TombstoneSweepInterval > p.TombstoneRetention {
		ps.add("pipeline.tombstone_sweep_interval", "must not exceed pipeline.tombstone_retention (%s), got %s",
			p.TombstoneRetention, p.TombstoneSweepInterval)
	}
	atLeast(ps, "pipeline.retry.max_attempts", int64(p.Retry.MaxAttempts), 1)
	positive(ps, "pipeline.retry.initial_backoff", p.Retry.InitialBackoff)
	if positive(ps, "pipeline.retry.max_backoff", p.Retry.MaxBackoff) && p.Retry.MaxBackoff < p.Retry.InitialBackoff {
		ps.add("pipeline.retry.max_backoff", "must be at least pipeline.retry.initial_backoff (%s), got %s",
			p.Retry.InitialBackoff, p.Retry.MaxBackoff)
	}
	positive(ps, "pipeline.retry.max_elapsed", p.Retry.MaxElapsed)
	atLeast(ps, "pipeline.breaker.failure_threshold", int64(p.Breaker.FailureThreshold), 1)
	positive(ps, "pipeline.breaker.open_timeout", p.Breaker.OpenTimeout)
	atLeast(ps, "pipeline.breaker.half_open_max_requests", int64(p.Breaker.HalfOpenMaxRequests), 1)
	positive(ps, "pipeline.lag_refresh", p.LagRefresh)
}

func (c *Config) checkEvent(ps *problems) {
	e := &c.Event
	atLeast(ps, "event.max_record_bytes", int64(e.MaxRecordBytes), 1)
	atLeast(ps, "event.max_id_bytes", int64(e.MaxIDBytes), 1)
	atLeast(ps, "event.max_text_bytes", int64(e.MaxTextBytes), 1)
	atLeast(ps, "event.max_string_bytes", int64(e.MaxStringBytes), 1)
	atLeast(ps, "event.max_entities", int64(e.MaxEntities), 0)
	atLeast(ps, "event.max_relations", int64(e.MaxRelations), 0)
	atLeast(ps, "event.max_metadata_keys", int64(e.MaxMetadataKeys), 0)
	atLeast(ps, "event.max_props", int64(e.MaxProps), 0)
}

func (c *Config) checkDev(ps *problems) {
	d := &c.Dev
	hostPort(ps, "dev.kafka_listen", d.KafkaListen, listen)
	hostPort(ps, "dev.qdrant_listen", d.QdrantListen, listen)
	neo4jURI(ps, "dev.neo4j_uri", d.Neo4jURI)
	if d.RedisAddr != "" {
		hostPort(ps, "dev.redis_addr", d.RedisAddr, dial)
	}
}

// addrUse says whether an address is dialled (host and a non-zero port
// required) or listened on (host may be empty for every interface, port 0
// picks a free one).
type addrUse bool

const (
	dial   addrUse = true
	listen addrUse = false
)

// hostPort checks a host:port address.
func hostPort(ps *problems, key, addr string, use addrUse) {
	if addr == "" {
		ps.add(key, "must not be empty (want host:port)")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.add(key, "invalid address %q (want host:port)", addr)
		return
	}
	if use == dial && host == "" {
		ps.add(key, "missing host in %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && use == dial) {
		ps.add(key, "invalid port %q in %q", port, addr)
	}
}

// oneOf reports whether v is one of allowed, adding a problem if not.
func oneOf(ps *problems, key, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	var want string
	if slices.Contains(allowed, "") {
		want = "empty or "
	}
	quoted := make([]string, 0, len(allowed))
	for _, a := range allowed {
		if a != "" {
			quoted = append(quoted, a)
		}
	}
	want += strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
	ps.add(key, "unsupported value %q (want %s)", v, want)
	return false
}

// positive reports whether d > 0, adding a problem if not.
func positive(ps *problems, key string, d Duration) bool {
	if d > 0 {
		return true
	}
	ps.add(key, "must be positive, got %s", d)
	return false
}

func atLeast(ps *problems, key string, v, lowest int64) {
	if v < lowest {
		ps.add(key, "must be at least %d, got %d", lowest, v)
	}
}

// tlsFiles checks the files of a TLS block: readable when TLS is on, and
// not set while it is off (a file set with TLS off is a configuration that
// looks encrypted and is not). other says whether another TLS setting is
// given.
func tlsFiles(ps *problems, prefix string, enabled bool, files map[string]string, other bool) {
	names := []string{"ca_file", "cert_file", "key_file"}
	for _, name := range names {
		path, ok := files[name]
		if !ok || path == "" {
			continue
		}
		key := prefix + "." + name
		if !enabled {
			ps.add(key, "set but %s.enabled is false", prefix)
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			ps.addErr(key, err)
			continue
		}
		f.Close()
	}
	if !enabled && other {
		ps.add(prefix+".enabled", "false, but other %s settings are given", prefix)
	}
}

// Kafka's rules for topic names.
const maxTopicLen = 249

var topicChars = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func topicName(ps *problems, key, t string) {
	switch {
	case t == "":
		ps.add(key, "must not be empty")
	case t == "." || t == "..":
		ps.add(key, "invalid topic name %q", t)
	case len(t) > maxTopicLen:
		ps.add(key, "topic name longer than %d characters", maxTopicLen)
	case !topicChars.MatchString(t):
		ps.add(key, "invalid topic name %q (letters, digits, '.', '_' and '-' only)", t)
	}
}

// collectionName applies Qdrant's rules for a new collection's name.
func collectionName(ps *problems, key, name string) {
	switch {
	case name == "":
		ps.add(key, "must not be empty")
	case len(name) > 255:
		ps.add(key, "longer than 255 characters")
	case strings.ContainsAny(name, "<>:\"/\\|?*\x00\x1f"):
		ps.add(key, "invalid collection name %q (no < > : \" / \\ | ? *)", name)
	}
}

// neo4jDatabase is Neo4j's rule for database names (case-insensitive).
var neo4jDatabase = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.-]{2,62}$`)
