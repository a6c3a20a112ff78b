// Package neo4j is ragstream's graph store and its version authority
// (pipeline.Authority): the stored versions of chunks and of deletion markers
// live here, and one Neo4j transaction per batch reads them, folds the batch
// against them, writes the graph and lets the follower store (Qdrant) write
// the same decisions before it commits.
//
// The graph model, the merge rule for properties that several chunks assert,
// the deletion markers and every Cypher statement are documented in
// docs/neo4j-model.md.
package neo4j

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
	"github.com/rs/zerolog"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout            = 5 * time.Second
	DefaultTombstoneRetention = 7 * 24 * time.Hour
	DefaultSweepBatch         = 10000
)

// Config configures the sink.
type Config struct {
	// URI is any URI the Go driver takes: bolt, neo4j and their +s / +ssc forms.
	URI string
	// User and Password are basic auth; an empty password means the server
	// runs without authentication.
	User     string
	Password string
	// Database empty means the user's home database.
	Database string
	// Timeout bounds each call: a whole Apply once it has a transaction
	// turn (its transaction, the driver's retries of it and the follower's
	// write inside it), a sweep statement, a Ping. It is also the
	// server-side transaction timeout. Default 5 s.
	Timeout time.Duration
	// StoreText keeps the chunk text on the Chunk node.
	StoreText bool
	// TombstoneRetention is how long a deletion marker remembers the version a
	// chunk was deleted at. Default 7 days.
	TombstoneRetention time.Duration
	// SweepBatch bounds the markers one sweep statement deletes. Default 10000.
	SweepBatch int
	// MaxConnectionPoolSize is the driver's pool size; 0 keeps the driver's
	// default (100).
	MaxConnectionPoolSize int
	// MaxConcurrentTx bounds the Apply transactions running at once across
	// partitions (default 1). Partitions share entities, so concurrent
	// transactions mostly wait on each other's locks, deadlock and time out;
	// one at a time is the faster order. Waiting for a turn has no deadline
	// (behind progressing transactions it is backpressure); when a
	// transaction fails on the server (timeout, lost connection) the calls
	// queued behind it fail at once (transient), so a frozen server opens
	// the breaker within one Timeout.
	MaxConcurrentTx int
	// Log receives the sweeper's reports; the zero value logs nothing.
	Log zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.TombstoneRetention <= 0 {
		c.TombstoneRetention = DefaultTombstoneRetention
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = DefaultSweepBatch
	}
	if c.MaxConcurrentTx <= 0 {
		c.MaxConcurrentTx = 1
	}
	return c
}

// Sink writes batches to Neo4j and decides every key's version. It is safe
// for concurrent use by the partitions' workers.
type Sink struct {
	cfg    Config
	driver neo4j.DriverWithContext
	owned  bool       // Close closes the driver
	turns  *turnQueue // MaxConcurrentTx turns for Apply
	slice  writeSlice // bounds of one write statement; zero: the defaults

	stallMu sync.Mutex
	stall   chan struct{} // closed when a transaction fails on the server
}

// New connects to Neo4j as cfg says. It does not contact the server: call
// Setup (which does) before the first Apply.
func New(cfg Config) (*Sink, error) {
	if cfg.URI == "" {
		return nil, errors.New("neo4j sink: uri is required")
	}
	cfg = cfg.withDefaults()
	auth := neo4j.NoAuth()
	if cfg.Password != "" {
		auth = neo4j.BasicAuth(cfg.User, cfg.Password, "")
	}
	drv, err := neo4j.NewDriverWithContext(cfg.URI, auth, func(c *config.Config) {
		// The driver retries a transaction on transient errors (deadlocks
		// among partitions sharing entities); keep its retries inside one
		// call's budget so the pipeline's own backoff stays in charge.
		c.MaxTransactionRetryTime = cfg.Timeout
		if cfg.MaxConnectionPoolSize > 0 {
			c.MaxConnectionPoolSize = cfg.MaxConnectionPoolSize
		}
	})
	if err != nil {
		return nil, fmt.Errorf("neo4j sink: driver for %s: %w", cfg.URI, err)
	}
	return &Sink{cfg: cfg, driver: drv, owned: true, turns: newTurnQueue(cfg.MaxConcurrentTx)}, nil
}

// NewWithDriver returns a sink on an existing driver, which the caller keeps
// and closes. cfg.URI, User, Password and MaxConnectionPoolSize are ignored.
func NewWithDriver(drv neo4j.DriverWithContext, cfg Config) *Sink {
	cfg = cfg.withDefaults()
	return &Sink{cfg: cfg, driver: drv, turns: newTurnQueue(cfg.MaxConcurrentTx)}
}

// Name identifies the sink in logs, metrics and the DLQ's error stage.
func (s *Sink) Name() string { return "neo4j" }

// Stage is the DLQ error stage of records this sink refuses.
const Stage = "sink.neo4j"

// Setup creates the uniqueness constraints on the (tenant, id) keys of Chunk,
// Entity and ChunkTombstone, which back every MERGE, and the index the
// tombstone sweep uses, if they do not exist yet, and waits until they are
// online. It is idempotent; run it at start-up.
func (s *Sink) Setup(ctx context.Context) error {
	// Creating a constraint on an existing graph builds its index first, and
	// db.awaitIndexes waits up to 300 s: allow for both, not just Timeout.
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.Timeout, 6*time.Minute))
	defer cancel()
	sess := s.session(ctx)
	defer sess.Close(ctx)
	for _, q := range setupStatements {
		res, err := sess.Run(ctx, q, nil)
		if err == nil {
			_, err = res.Consume(ctx)
		}
		if err != nil {
			return classify(fmt.Sprintf("setup %q", q), err)
		}
	}
	return nil
}

// Ping checks that the database answers a query within the timeout, for the
// readiness probe.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sess := s.driver.NewSession(ctx, neo4j.SessionConfig{DatabaseName: s.cfg.Database, AccessMode: neo4j.AccessModeRead})
	defer sess.Close(ctx)
	res, err := sess.Run(ctx, "RETURN 1", nil, neo4j.WithTxTimeout(s.cfg.Timeout))
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		return classify("ping", err)
	}
	return nil
}

// Close closes the driver when New opened it.
func (s *Sink) Close(ctx context.Context) error {
	if !s.owned {
		return nil
	}
	return s.driver.Close(ctx)
}

func (s *Sink) session(ctx context.Context) neo4j.SessionWithContext {
	return s.driver.NewSession(ctx, neo4j.SessionConfig{DatabaseName: s.cfg.Database, AccessMode: neo4j.AccessModeWrite})
}
