// Package config holds ragstream's configuration: the Config type with its
// defaults, loading from defaults < YAML file < RAGSTREAM_* environment <
// --set flags (Load), and one Validate that reports every problem at once.
//
// The key names, the environment convention and the defaults are a contract
// operators script against (DESIGN.md §10); config/example.yaml documents
// every key, and a test keeps it, .env.example and the Config type in step.
//
// Secrets are typed Secret: they print, marshal and log as "[redacted]", and
// each has a *_file twin naming a file (a mounted Kubernetes secret) that
// holds the value. Adding a Secret field with its _file twin is all it takes
// for a new secret to be redacted, loadable from a file and warned about when
// written into the YAML file or --set.
package config

// Config is the whole ragstream configuration. The koanf tags are the key
// names of the YAML file, of --set, and (upper-cased, "__" between levels,
// RAGSTREAM_ prefix) of the environment.
type Config struct {
	Kafka    Kafka    `koanf:"kafka"`
	Qdrant   Qdrant   `koanf:"qdrant"`
	Neo4j    Neo4j    `koanf:"neo4j"`
	Redis    Redis    `koanf:"redis"`
	Admin    Admin    `koanf:"admin"`
	DLQ      DLQ      `koanf:"dlq"`
	Log      Log      `koanf:"log"`
	Pipeline Pipeline `koanf:"pipeline"`
	Event    Event    `koanf:"event"`
	Dev      Dev      `koanf:"dev"`

	// DevMode is true for `ragstream dev`. It is not a key: Load sets it
	// from LoadOptions.Dev. Validate checks the dev.* keys only in dev mode,
	// since nothing else reads them.
	DevMode bool `koanf:"-"`
}

// Kafka configures the consumer group that reads the source topics (and the
// producer of the dead-letter queue, which shares brokers, TLS and SASL).
type Kafka struct {
	Brokers  []string `koanf:"brokers"`
	Topics   []string `koanf:"topics"`
	Group    string   `koanf:"group"`
	ClientID string   `koanf:"client_id"`
	// StartOffset is where a group without committed offsets starts:
	// "earliest" or "latest".
	StartOffset string `koanf:"start_offset"`
	// Isolation is "read_committed" (skip aborted transactional records)
	// or "read_uncommitted".
	Isolation        string   `koanf:"isolation"`
	SessionTimeout   Duration `koanf:"session_timeout"`
	RebalanceTimeout Duration `koanf:"rebalance_timeout"`
	FetchMaxBytes    ByteSize `koanf:"fetch_max_bytes"`
	// FetchMaxPartitionBytes bounds what one fetch returns for one
	// partition (Kafka returns a larger record batch whole).
	FetchMaxPartitionBytes ByteSize  `koanf:"fetch_max_partition_bytes"`
	TLS                    KafkaTLS  `koanf:"tls"`
	SASL                   KafkaSASL `koanf:"sasl"`
}

// KafkaTLS configures TLS to the brokers. CAFile empty means the system
// roots; CertFile and KeyFile (both or neither) give a client certificate.
type KafkaTLS struct {
	Enabled            bool   `koanf:"enabled"`
	CAFile             string `koanf:"ca_file"`
	CertFile           string `koanf:"cert_file"`
	KeyFile            string `koanf:"key_file"`
	ServerName         string `koanf:"server_name"`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify"`
}

// SASL mechanisms accepted in kafka.sasl.mechanism; empty means no SASL.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaSASL configures SASL authentication to the brokers.
type KafkaSASL struct {
	Mechanism    string `koanf:"mechanism"`
	User         string `koanf:"user"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
}

// Qdrant configures the vector store, reached over gRPC.
type Qdrant struct {
	// Addr is the gRPC host:port (6334 by default in Qdrant), not the REST port.
	Addr       string    `koanf:"addr"`
	APIKey     Secret    `koanf:"api_key"`
	APIKeyFile string    `koanf:"api_key_file"`
	Collection string    `koanf:"collection"`
	VectorSize int       `koanf:"vector_size"`
	Distance   string    `koanf:"distance"`
	TLS        QdrantTLS `koanf:"tls"`
	Timeout    Duration  `koanf:"timeout"`
	// StoreText keeps the chunk text in the point payload.
	StoreText bool `koanf:"store_text"`
	// Writes always wait for the operation to be applied (wait=true): an
	// offset is committed only after the write is durable, so this is not a
	// setting.
}

// QdrantTLS configures TLS to Qdrant; CAFile empty means the system roots.
type QdrantTLS struct {
	Enabled            bool   `koanf:"enabled"`
	CAFile             string `koanf:"ca_file"`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify"`
}

// Neo4j configures the graph store.
type Neo4j struct {
	// URI takes every scheme the Go driver accepts: bolt, bolt+s, bolt+ssc,
	// neo4j, neo4j+s, neo4j+ssc (routing, with an optional routing context
	// in the query) and bolt+unix (a socket path).
	URI string `koanf:"uri"`
	// User and Password are basic auth; an empty password means the server
	// runs without authentication.
	User         string `koanf:"user"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
	// Database empty means the user's home database.
	Database              string   `koanf:"database"`
	Timeout               Duration `koanf:"timeout"`
	StoreText             bool     `koanf:"store_text"`
	MaxConnectionPoolSize int      `koanf:"max_connection_pool_size"`
	// MaxConcurrentTransactions bounds the batch transactions running at
	// once across partitions: partitions share entities, so concurrent
	// transactions mostly wait on each other's locks.
	MaxConcurrentTransactions int `koanf:"max_concurrent_transactions"`
}

// Redis configures the store of API keys and the shared rate limiter.
type Redis struct {
	Addr         string `koanf:"addr"`
	User         string `koanf:"user"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
	DB           int    `koanf:"db"`
}

// Admin configures the HTTP port (health, metrics, query and admin API).
type Admin struct {
	Addr              string   `koanf:"addr"`
	ReadHeaderTimeout Duration `koanf:"read_header_timeout"`
	ReadTimeout       Duration `koanf:"read_timeout"`
	WriteTimeout      Duration `koanf:"write_timeout"`
	IdleTimeout       Duration `koanf:"idle_timeout"`
	ShutdownTimeout   Duration `koanf:"shutdown_timeout"`
	MaxHeaderBytes    ByteSize `koanf:"max_header_bytes"`
	MaxBodyBytes      ByteSize `koanf:"max_body_bytes"`
	// ReadinessInterval is how often the readiness checks run in the
	// background; a probe reads their last result.
	ReadinessInterval Duration `koanf:"readiness_interval"`
	// KafkaCheckTimeout bounds the readiness check of the brokers (the
	// stores' checks use qdrant.timeout and neo4j.timeout).
	KafkaCheckTimeout Duration `koanf:"kafka_check_timeout"`
}

// DLQ configures the dead-letter queue.
type DLQ struct {
	// Topic empty means "<source topic>.dlq" for each source topic.
	Topic string `koanf:"topic"`
	// ConnectCompatibleHeaders adds Kafka Connect's __connect.errors.* headers.
	ConnectCompatibleHeaders bool     `koanf:"connect_compatible_headers"`
	ProduceTimeout           Duration `koanf:"produce_timeout"`
	// MaxReplayCount is how often one record may be replayed from the DLQ.
	MaxReplayCount int `koanf:"max_replay_count"`
}

// Log levels accepted in log.level.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// Log configures the JSON log.
type Log struct {
	Level string `koanf:"level"`
}

// Pipeline configures batching, concurrency, retries and shutdown.
type Pipeline struct {
	Batch              Batch    `koanf:"batch"`
	MaxInflightBatches int      `koanf:"max_inflight_batches"`
	MaxInflightBytes   ByteSize `koanf:"max_inflight_bytes"`
	// MaxActiveBatches bounds the batches decoded or in delivery at once
	// across partitions; 0 derives it (ActiveBatches).
	MaxActiveBatches       int      `koanf:"max_active_batches"`
	DrainTimeout           Duration `koanf:"drain_timeout"`
	TombstoneRetention     Duration `koanf:"tombstone_retention"`
	TombstoneSweepInterval Duration `koanf:"tombstone_sweep_interval"`
	Retry                  Retry    `koanf:"retry"`
	Breaker                Breaker  `koanf:"breaker"`
	LagRefresh             Duration `koanf:"lag_refresh"`
}

// ActiveBatches returns pipeline.max_active_batches, or when it is 0 one
// more than the Neo4j transactions allowed at once (neo4jTx): one batch
// written per transaction turn, and one decoded and ready for the next.
func (p Pipeline) ActiveBatches(neo4jTx int) int {
	if p.MaxActiveBatches > 0 {
		return p.MaxActiveBatches
	}
	return max(neo4jTx, 1) + 1
}

// Batch says when a batch closes: on whichever limit is reached first.
type Batch struct {
	MaxRecords int      `koanf:"max_records"`
	MaxBytes   ByteSize `koanf:"max_bytes"`
	// Linger 0 closes a batch as soon as no more records are buffered.
	Linger Duration `koanf:"linger"`
}

// Retry bounds the retries of transient sink errors in one attempt cycle.
type Retry struct {
	MaxAttempts    int      `koanf:"max_attempts"`
	InitialBackoff Duration `koanf:"initial_backoff"`
	MaxBackoff     Duration `koanf:"max_backoff"`
	MaxElapsed     Duration `koanf:"max_elapsed"`
}

// Breaker configures each sink's circuit breaker.
type Breaker struct {
	FailureThreshold    int      `koanf:"failure_threshold"`
	OpenTimeout         Duration `koanf:"open_timeout"`
	HalfOpenMaxRequests int      `koanf:"half_open_max_requests"`
}

// Event holds the size limits of the event decoder; it takes them through
// its own options.
type Event struct {
	MaxRecordBytes  ByteSize `koanf:"max_record_bytes"`
	MaxIDBytes      ByteSize `koanf:"max_id_bytes"`
	MaxTextBytes    ByteSize `koanf:"max_text_bytes"`
	MaxStringBytes  ByteSize `koanf:"max_string_bytes"`
	MaxEntities     int      `koanf:"max_entities"`
	MaxRelations    int      `koanf:"max_relations"`
	MaxMetadataKeys int      `koanf:"max_metadata_keys"`
	MaxProps        int      `koanf:"max_props"`
}

// Dev configures `ragstream dev`. Its in-process Kafka and Qdrant
// stand-in listen on these addresses so any client can reach them.
type Dev struct {
	KafkaListen  string `koanf:"kafka_listen"`
	QdrantListen string `koanf:"qdrant_listen"`
	Neo4jURI     string `koanf:"neo4j_uri"`
	// RedisAddr empty starts an in-process Redis.
	RedisAddr string `koanf:"redis_addr"`
}
