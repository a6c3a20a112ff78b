package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/ragstream/ragstream/admin"
	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/metrics"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/breaker"
	"github.com/ragstream/ragstream/sinks/neo4j"
	"github.com/ragstream/ragstream/sinks/qdrant"
)

// worker is the production job wired from a configuration: the consumer
// group, the two stores, the admin port and the background loops. `run` and
// `dev` both use it; dev only points the configuration at in-process
// services first.
type worker struct {
	cfg      *config.Config
	log      zerolog.Logger
	metrics  *metrics.Metrics
	ready    *admin.Readiness
	server   *admin.Server
	qdrant   *qdrant.Sink
	neo4j    *neo4j.Sink
	dlq      *dlq.Writer
	breakers []*breaker.Breaker
	consumer *pipeline.Consumer
	kadmCl   *kgo.Client
	adm      *kadm.Client
}

// newWorker connects to the stores (lazily where the clients allow),
// prepares them (collection, indexes, constraints), makes sure the
// dead-letter topics exist, and builds the consumer with a circuit breaker
// in front of each store and of the DLQ (docs/failure-handling.md). A store
// that is not reachable yet is waited for, with backoff, until ctx ends; a
// store that refuses ragstream (authentication, a collection of another
// shape, DLQ topics it may not create) is an error.
func newWorker(ctx context.Context, cfg *config.Config, log zerolog.Logger) (w *worker, err error) {
	// wk, not the named result: `return nil, err` sets w to nil before
	// this deferred close runs.
	wk := &worker{cfg: cfg, log: log}
	w = wk
	defer func() {
		if err != nil {
			wk.close()
		}
	}()
	w.metrics = metrics.New(buildinfo.Get(), metrics.WithLogger(log))
	w.metrics.InitTopics(cfg.Kafka.Topics...)
	w.metrics.InitSinks("qdrant", "neo4j", storeDLQ)
	w.ready = admin.NewReadiness(log, w.metrics)
	w.server, err = admin.New(admin.ConfigFrom(cfg.Admin), log, w.metrics, w.ready)
	if err != nil {
		return nil, err
	}

	w.qdrant, err = qdrant.New(qdrant.Config{
		Addr:               cfg.Qdrant.Addr,
		APIKey:             cfg.Qdrant.APIKey.Reveal(),
		Collection:         cfg.Qdrant.Collection,
		VectorSize:         cfg.Qdrant.VectorSize,
		Distance:           cfg.Qdrant.Distance,
		TLS:                cfg.Qdrant.TLS.Enabled,
		CAFile:             cfg.Qdrant.TLS.CAFile,
		InsecureSkipVerify: cfg.Qdrant.TLS.InsecureSkipVerify,
		Timeout:            cfg.Qdrant.Timeout.Duration(),
		StoreText:          cfg.Qdrant.StoreText,
	})
	if err != nil {
		return nil, err
	}
	w.neo4j, err = neo4j.New(neo4j.Config{
		URI:                   cfg.Neo4j.URI,
		User:                  cfg.Neo4j.User,
		Password:              cfg.Neo4j.Password.Reveal(),
		Database:              cfg.Neo4j.Database,
		Timeout:               cfg.Neo4j.Timeout.Duration(),
		StoreText:             cfg.Neo4j.StoreText,
		TombstoneRetention:    cfg.Pipeline.TombstoneRetention.Duration(),
		MaxConnectionPoolSize: cfg.Neo4j.MaxConnectionPoolSize,
		MaxConcurrentTx:       cfg.Neo4j.MaxConcurrentTransactions,
		Log:                   log,
	})
	if err != nil {
		return nil, err
	}

	kopts, err := pipeline.KafkaOpts(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	w.kadmCl, err = kgo.NewClient(append(kopts, kgo.WithLogger(pipeline.NewKgoLogger(log)))...)
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	w.adm = kadm.NewClient(w.kadmCl)

	// A check may take at most one interval, so a frozen store turns the
	// probe to 503 within two intervals, however long its write timeout.
	every := cfg.Admin.ReadinessInterval.Duration()
	w.ready.AddCheck("kafka", func(ctx context.Context) error { return w.kadmCl.Ping(ctx) }, min(cfg.Admin.KafkaCheckTimeout.Duration(), every))
	w.ready.AddCheck("qdrant", w.qdrant.Ping, min(cfg.Qdrant.Timeout.Duration(), every))
	w.ready.AddCheck("neo4j", w.neo4j.Ping, min(cfg.Neo4j.Timeout.Duration(), every))
	w.ready.SetCondition("kafka_group", false, "not joined yet")

	if err := setupStore(ctx, log, "qdrant", w.qdrant.Setup); err != nil {
		return nil, err
	}
	if err := setupStore(ctx, log, "neo4j", w.neo4j.Setup); err != nil {
		return nil, err
	}

	w.dlq, err = dlq.NewWriter(dlq.ConfigFrom(cfg.DLQ), kopts, log)
	if err != nil {
		return nil, err
	}
	if err := ensureDLQTopics(ctx, log, w.dlq, cfg.Kafka.Topics); err != nil {
		return nil, err
	}

	// The breakers wrap the timed stores, so the sink metrics observe only
	// the calls that reach a store, not the ones an open breaker refuses.
	guard := func(store string) (*breaker.Breaker, error) {
		b, err := breaker.New(store, breaker.SettingsFrom(cfg.Pipeline.Breaker), breakerListener(w.metrics, w.ready, log))
		if err == nil {
			w.breakers = append(w.breakers, b)
		}
		return b, err
	}
	nb, err := guard(w.neo4j.Name())
	if err != nil {
		return nil, err
	}
	qb, err := guard(w.qdrant.Name())
	if err != nil {
		return nil, err
	}
	db, err := guard(storeDLQ)
	if err != nil {
		return nil, err
	}

	hooks := pipelineHooks(w.metrics, func(ok bool) {
		if ok {
			w.ready.SetCondition("kafka_group", true, "")
		}
	})
	w.consumer, err = pipeline.New(pipeline.OptionsFromConfig(cfg), kopts,
		nb.Authority(timedAuthority{w.neo4j, w.metrics}), qb.Sink(timedSink{w.qdrant, w.metrics}),
		db.DeadLetter(timedDeadLetter{w.dlq, w.metrics}), log, hooks)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// dlqEnsureTimeout bounds the start-up check of one dead-letter topic.
const dlqEnsureTimeout = 15 * time.Second

// ensureDLQTopics makes sure the dead-letter topic of every source topic
// exists, so a missing permission shows at start-up rather than at the
// first poison record. A transient failure (Kafka not reachable yet, the
// source topic not created yet) is logged and left to the first dead
// letter, which ensures its topic again; a refusal is an error.
func ensureDLQTopics(ctx context.Context, log zerolog.Logger, w *dlq.Writer, topics []string) error {
	for _, t := range topics {
		tctx, cancel := context.WithTimeout(ctx, dlqEnsureTimeout)
		err := w.EnsureTopic(tctx, t)
		cancel()
		switch {
		case err == nil:
			log.Debug().Str("topic", t).Str("dlq_topic", w.TopicFor(t)).Msg("dead-letter topic ready")
		case pipeline.ClassOf(err) == pipeline.ClassTransient && ctx.Err() == nil:
			log.Warn().Err(err).Str("topic", t).Str("dlq_topic", w.TopicFor(t)).
				Msg("dead-letter topic not ensured yet; the first dead letter tries again")
		default:
			return fmt.Errorf("dead-letter topic %s of %s: %w", w.TopicFor(t), t, err)
		}
	}
	return nil
}

// setupStore runs a store's start-up preparation, waiting with backoff while
// the store is unreachable (it may start after ragstream, as in compose or a
// rolling restart). Anything but a transient error is final.
func setupStore(ctx context.Context, log zerolog.Logger, name string, setup func(context.Context) error) error {
	backoff := 500 * time.Millisecond
	for {
		err := setup(ctx)
		if err == nil {
			return nil
		}
		if pipeline.ClassOf(err) != pipeline.ClassTransient || ctx.Err() != nil {
			return fmt.Errorf("%s setup: %w", name, err)
		}
		log.Warn().Err(err).Str("store", name).Dur("retry_in", backoff).Msg("store not reachable yet; waiting")
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s setup: %w", name, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// run serves until ctx ends, then shuts down in the order DESIGN.md and
// STYLE.md give: readiness 503 first, then the pipeline drains and commits,
// then the background loops and last the admin port, so probes keep
// answering while the pipeline drains.
func (w *worker) run(ctx context.Context) error {
	if err := w.server.Listen(); err != nil {
		return err
	}
	w.log.Info().Str("admin", w.server.Addr()).Strs("topics", w.cfg.Kafka.Topics).
		Str("group", w.cfg.Kafka.Group).Int("gomaxprocs", runtime.GOMAXPROCS(0)).Msg("ragstream worker starting")

	bg, bgCancel := context.WithCancel(context.Background())
	defer bgCancel()
	var g errgroup.Group
	g.Go(func() error { return w.server.Run(bg) })
	g.Go(func() error { return w.ready.Run(bg, w.cfg.Admin.ReadinessInterval.Duration()) })
	g.Go(func() error {
		return w.metrics.RunLagCollector(bg, w.adm, w.cfg.Kafka.Group, w.cfg.Kafka.Topics, w.cfg.Pipeline.LagRefresh.Duration())
	})
	g.Go(func() error { return w.neo4j.RunSweeper(bg, w.cfg.Pipeline.TombstoneSweepInterval.Duration()) })

	consumerErr := make(chan error, 1)
	go func() { consumerErr <- w.consumer.Run(ctx) }()

	var err error
	select {
	case err = <-consumerErr:
		// The consumer ended by itself: Kafka refused the group for good.
		w.ready.SetStopping()
	case <-ctx.Done():
		w.ready.SetStopping()
		w.log.Info().Msg("stopping: readiness is 503, draining the pipeline")
		err = <-consumerErr
	}
	bgCancel()
	if gerr := g.Wait(); gerr != nil && !errors.Is(gerr, context.Canceled) {
		err = errors.Join(err, gerr)
	}
	w.close()
	if err != nil {
		return err
	}
	w.log.Info().Msg("ragstream worker stopped")
	return nil
}

func (w *worker) close() {
	for _, b := range w.breakers {
		b.Stop()
	}
	if w.dlq != nil {
		// The consumer has drained: this only waits for produces a Send gave
		// up on, which are not committed and so are redone after a restart.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := w.dlq.Close(ctx); err != nil {
			w.log.Warn().Err(err).Msg("dead-letter producer closed with records unacknowledged; their offsets are not committed")
		}
		cancel()
	}
	if w.kadmCl != nil {
		w.kadmCl.Close()
	}
	if w.qdrant != nil {
		_ = w.qdrant.Close()
	}
	if w.neo4j != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = w.neo4j.Close(ctx)
		cancel()
	}
}
