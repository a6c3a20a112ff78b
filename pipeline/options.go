package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline/event"
)

// Options configure a Consumer. The zero value of a field takes the value of
// DefaultOptions, except Group and Topics, which are required.
type Options struct {
	// Group is the consumer group; Topics the source topics.
	Group  string
	Topics []string
	// StartOffset is where a group without committed offsets starts:
	// "earliest" (default) or "latest".
	StartOffset string
	// ReadUncommitted reads records of aborted transactions too; the default
	// is read_committed.
	ReadUncommitted bool
	// SessionTimeout and RebalanceTimeout are the group's timeouts.
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// FetchMaxBytes bounds one fetch response; FetchMaxPartitionBytes
	// what it returns for one partition (a larger record batch still comes
	// whole).
	FetchMaxBytes          int32
	FetchMaxPartitionBytes int32
	// FetchMaxWait bounds how long a broker holds a fetch when there is no
	// new data. A partition resumed after a pause is fetched only when the
	// broker's in-flight fetch returns, so this also bounds the stall after
	// backpressure; franz-go's 5 s default is too long for that.
	FetchMaxWait time.Duration

	// MaxRecords, MaxBytes and Linger close a batch: on whichever is
	// reached first. Linger counts from the batch's first record; Linger
	// ZeroLinger (0 means the default) closes a batch as soon as no more
	// records are buffered. MaxBytes counts key and value bytes; a batch
	// never exceeds it, except a record larger than MaxBytes, which is a
	// batch of its own.
	MaxRecords int
	MaxBytes   int
	Linger     time.Duration
	// MaxInflightBatches bounds, per partition, the records held between
	// the fetch and the commit: above MaxInflightBatches-1 batches' worth
	// ((MaxInflightBatches-1) × MaxRecords records, or as many MaxBytes)
	// the partition's fetching pauses, so it holds at most that plus what
	// one fetch returned for it (FetchMaxPartitionBytes).
	MaxInflightBatches int
	// MaxInflightBytes bounds the record bytes (keys and values) held by
	// all partitions together, from the fetch to the commit: above it,
	// the partition that pushed last pauses, and every partition paused
	// for it resumes once the total is back under it. It keeps memory flat
	// however many partitions the member is assigned; at least two
	// batches' worth (2 × MaxBytes, or 2 × MaxRecords records) keeps one
	// batch ready while another is written.
	MaxInflightBytes int
	// MaxActiveBatches bounds the batches decoded or in delivery at once,
	// across all partitions: a partition takes a place before it decodes
	// the first record of a batch and gives it back once the batch is
	// delivered (or abandoned), dropping the decoded events. A partition
	// waiting for a place keeps its fetched records undecoded, and the
	// places go round in the order they were asked for. With one store
	// transaction at a time, two places keep one batch written and one
	// ready; more only add decoded batches waiting for the store. 0 means
	// the default (2); a negative value means no bound.
	MaxActiveBatches int
	// MaxRecordBytes bounds one record's key plus value; a larger record is
	// refused as a decode error.
	MaxRecordBytes int
	// Limits configure the event decoder; Limits.Dims is required.
	Limits event.Limits

	// RevokeTimeout bounds how long a revoked partition may take to finish
	// its in-flight batch before the batch is abandoned uncommitted. Keep
	// it well below RebalanceTimeout.
	RevokeTimeout time.Duration
	// DrainTimeout bounds a graceful shutdown: finishing in-flight batches
	// (three quarters of it), then the final commit. Keep it below the
	// pod's termination grace period.
	DrainTimeout time.Duration
	// CommitInterval is the least time between two offset commits; finished
	// batches between them are committed together.
	CommitInterval time.Duration
	// CommitTimeout bounds one offset commit.
	CommitTimeout time.Duration

	// Retry bounds the retries of transient errors in one attempt cycle.
	Retry RetryOptions
	// SinkDownBackoff and SinkDownMaxBackoff space the attempt cycles of a
	// partition paused because a store is down: doubling from the first to
	// the second.
	SinkDownBackoff    time.Duration
	SinkDownMaxBackoff time.Duration
}

// RetryOptions bound the retries of transient errors (DESIGN.md §5): an
// exponential backoff with jitter, at most MaxAttempts attempts and at most
// MaxElapsed in all. When the budget runs out the store counts as down.
type RetryOptions struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	MaxElapsed     time.Duration
}

// ZeroLinger is the Linger value that means "no linger": Options treats a
// zero Linger as unset, so a caller who wants none says so with this.
const ZeroLinger = time.Duration(-1)

// DefaultOptions returns the defaults of every optional field (the values of
// config.Default()).
func DefaultOptions() Options {
	return Options{
		StartOffset:            "earliest",
		SessionTimeout:         45 * time.Second,
		RebalanceTimeout:       60 * time.Second,
		FetchMaxBytes:          50 << 20,
		FetchMaxPartitionBytes: 1 << 20,
		FetchMaxWait:           200 * time.Millisecond,
		MaxRecords:             1000,
		MaxBytes:               8 << 20,
		Linger:                 50 * time.Millisecond,
		MaxInflightBatches:     2,
		MaxInflightBytes:       24 << 20,
		MaxActiveBatches:       2,
		MaxRecordBytes:         4 << 20,
		RevokeTimeout:          10 * time.Second,
		DrainTimeout:           20 * time.Second,
		CommitInterval:         100 * time.Millisecond,
		CommitTimeout:          10 * time.Second,
		Retry: RetryOptions{
			MaxAttempts:    5,
			InitialBackoff: 100 * time.Millisecond,
			MaxBackoff:     5 * time.Second,
			MaxElapsed:     30 * time.Second,
		},
		SinkDownBackoff:    time.Second,
		SinkDownMaxBackoff: 30 * time.Second,
	}
}

// OptionsFromConfig maps the configuration onto Options: kafka.* for the
// group, pipeline.* for batching and shutdown, event.* and
// qdrant.vector_size for the decoder. The revoke deadline is a third of
// kafka.rebalance_timeout, at most 10 s.
func OptionsFromConfig(cfg *config.Config) Options {
	k, p, e := cfg.Kafka, cfg.Pipeline, cfg.Event
	o := Options{
		Group:                  k.Group,
		Topics:                 append([]string(nil), k.Topics...),
		StartOffset:            k.StartOffset,
		ReadUncommitted:        k.Isolation == "read_uncommitted",
		SessionTimeout:         k.SessionTimeout.Duration(),
		RebalanceTimeout:       k.RebalanceTimeout.Duration(),
		FetchMaxBytes:          int32(min(int64(k.FetchMaxBytes), 1<<31-1)),
		FetchMaxPartitionBytes: int32(min(int64(k.FetchMaxPartitionBytes), 1<<31-1)),
		MaxRecords:             p.Batch.MaxRecords,
		MaxBytes:               int(p.Batch.MaxBytes),
		Linger:                 p.Batch.Linger.Duration(),
		MaxInflightBatches:     p.MaxInflightBatches,
		MaxInflightBytes:       int(p.MaxInflightBytes),
		MaxActiveBatches:       p.ActiveBatches(cfg.Neo4j.MaxConcurrentTransactions),
		MaxRecordBytes:         int(e.MaxRecordBytes),
		DrainTimeout:           p.DrainTimeout.Duration(),
		Retry: RetryOptions{
			MaxAttempts:    p.Retry.MaxAttempts,
			InitialBackoff: p.Retry.InitialBackoff.Duration(),
			MaxBackoff:     p.Retry.MaxBackoff.Duration(),
			MaxElapsed:     p.Retry.MaxElapsed.Duration(),
		},
		Limits: event.Limits{
			Dims:            cfg.Qdrant.VectorSize,
			MaxIDBytes:      int(e.MaxIDBytes),
			MaxTextBytes:    int(e.MaxTextBytes),
			MaxStringBytes:  int(e.MaxStringBytes),
			MaxEntities:     e.MaxEntities,
			MaxRelations:    e.MaxRelations,
			MaxMetadataKeys: e.MaxMetadataKeys,
			MaxPropsKeys:    e.MaxProps,
		},
	}
	if o.Linger == 0 {
		o.Linger = ZeroLinger
	}
	o.RevokeTimeout = DefaultOptions().RevokeTimeout
	if rt := o.RebalanceTimeout / 3; rt > 0 && rt < o.RevokeTimeout {
		o.RevokeTimeout = rt
	}
	return o
}

// withDefaults fills the zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	fill := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	fillInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if o.StartOffset == "" {
		o.StartOffset = d.StartOffset
	}
	if o.FetchMaxBytes == 0 {
		o.FetchMaxBytes = d.FetchMaxBytes
	}
	if o.FetchMaxPartitionBytes == 0 {
		o.FetchMaxPartitionBytes = min(d.FetchMaxPartitionBytes, o.FetchMaxBytes)
	}
	fill(&o.FetchMaxWait, d.FetchMaxWait)
	fill(&o.SessionTimeout, d.SessionTimeout)
	fill(&o.RebalanceTimeout, d.RebalanceTimeout)
	fillInt(&o.MaxRecords, d.MaxRecords)
	fillInt(&o.MaxBytes, d.MaxBytes)
	fill(&o.Linger, d.Linger)
	if o.Linger == ZeroLinger {
		o.Linger = 0
	}
	fillInt(&o.MaxInflightBatches, d.MaxInflightBatches)
	fillInt(&o.MaxInflightBytes, d.MaxInflightBytes)
	fillInt(&o.MaxActiveBatches, d.MaxActiveBatches)
	fillInt(&o.MaxRecordBytes, d.MaxRecordBytes)
	fill(&o.RevokeTimeout, d.RevokeTimeout)
	fill(&o.DrainTimeout, d.DrainTimeout)
	fill(&o.CommitInterval, d.CommitInterval)
	fill(&o.CommitTimeout, d.CommitTimeout)
	fillInt(&o.Retry.MaxAttempts, d.Retry.MaxAttempts)
	fill(&o.Retry.InitialBackoff, d.Retry.InitialBackoff)
	fill(&o.Retry.MaxBackoff, d.Retry.MaxBackoff)
	fill(&o.Retry.MaxElapsed, d.Retry.MaxElapsed)
	fill(&o.SinkDownBackoff, d.SinkDownBackoff)
	fill(&o.SinkDownMaxBackoff, d.SinkDownMaxBackoff)
	return o
}

// validate reports every problem of o (after withDefaults), each naming
// its field.
func (o Options) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("pipeline options: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.Group == "" {
		bad("Group", "required")
	}
	if len(o.Topics) == 0 {
		bad("Topics", "at least one topic required")
	}
	for i, t := range o.Topics {
		if t == "" {
			bad(fmt.Sprintf("Topics[%d]", i), "empty topic name")
		}
	}
	if o.StartOffset != "earliest" && o.StartOffset != "latest" {
		bad("StartOffset", "want earliest or latest, got %q", o.StartOffset)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxRecords", int64(o.MaxRecords)}, {"MaxBytes", int64(o.MaxBytes)},
		{"MaxInflightBatches", int64(o.MaxInflightBatches)}, {"MaxInflightBytes", int64(o.MaxInflightBytes)},
		{"MaxRecordBytes", int64(o.MaxRecordBytes)},
		{"FetchMaxBytes", int64(o.FetchMaxBytes)}, {"FetchMaxPartitionBytes", int64(o.FetchMaxPartitionBytes)},
		{"Retry.MaxAttempts", int64(o.Retry.MaxAttempts)},
	} {
		if f.v < 1 {
			bad(f.name, "must be at least 1, got %d", f.v)
		}
	}
	if o.Linger < 0 {
		bad("Linger", "must not be negative, got %s (use ZeroLinger for none)", o.Linger)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"SessionTimeout", o.SessionTimeout}, {"RebalanceTimeout", o.RebalanceTimeout},
		{"FetchMaxWait", o.FetchMaxWait},
		{"RevokeTimeout", o.RevokeTimeout}, {"DrainTimeout", o.DrainTimeout},
		{"CommitInterval", o.CommitInterval}, {"CommitTimeout", o.CommitTimeout},
		{"Retry.InitialBackoff", o.Retry.InitialBackoff}, {"Retry.MaxBackoff", o.Retry.MaxBackoff},
		{"Retry.MaxElapsed", o.Retry.MaxElapsed},
		{"SinkDownBackoff", o.SinkDownBackoff}, {"SinkDownMaxBackoff", o.SinkDownMaxBackoff},
	} {
		if f.v < 0 {
			bad(f.name, "must not be negative, got %s", f.v)
		}
	}
	if o.RevokeTimeout >= o.RebalanceTimeout {
		bad("RevokeTimeout", "%s must be below RebalanceTimeout %s", o.RevokeTimeout, o.RebalanceTimeout)
	}
	if err := limitsProblem(o.Limits); err != nil {
		bad("Limits", "%v", err)
	}
	return errors.Join(errs...)
}

// limitsProblem reports what event.NewDecoder would panic about: it fills
// zero limits with the defaults and validates the result.
func limitsProblem(l event.Limits) error {
	d := event.DefaultLimits(l.Dims)
	for _, f := range []struct{ p, v *int }{
		{&l.MaxIDBytes, &d.MaxIDBytes}, {&l.MaxTenantBytes, &d.MaxTenantBytes},
		{&l.MaxTextBytes, &d.MaxTextBytes}, {&l.MaxStringBytes, &d.MaxStringBytes},
		{&l.MaxKeyBytes, &d.MaxKeyBytes}, {&l.MaxEntities, &d.MaxEntities},
		{&l.MaxRelations, &d.MaxRelations}, {&l.MaxMetadataKeys, &d.MaxMetadataKeys},
		{&l.MaxPropsKeys, &d.MaxPropsKeys}, {&l.MaxArrayItems, &d.MaxArrayItems},
		{&l.MaxDepth, &d.MaxDepth},
	} {
		if *f.p == 0 {
			*f.p = *f.v
		}
	}
	return l.Validate()
}
