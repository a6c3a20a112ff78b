package pipeline

import "context"

// Authority is the store whose stored versions decide every key: ragstream
// uses Neo4j, because its transactions let the version read, the fold and the
// writes happen as one unit.
//
// Apply reads the stored state of the batch's keys, folds the batch's valid
// records against it with Fold (setting each record's Outcome), writes the
// resulting Writes in one transaction, and calls follow with the same Writes
// before it commits. It commits only when follow returns nil, so the
// follower's store never holds a write the authority rolled back; when the
// commit itself fails after follow succeeded, a redo re-applies the same
// writes (equal versions re-apply) and the stores agree again.
//
// Apply is idempotent: applying a batch twice leaves the state of applying it
// once. Errors are classified (Permanent, Transient, SinkDown); a permanent
// failure of single records is reported as *RecordError values (joined), and
// the batch is then not committed at all, so the caller can take the culprits
// out and apply the rest again.
type Authority interface {
	Name() string
	Apply(ctx context.Context, b *Batch, follow func(ctx context.Context, writes []Write) error) error
}

// Sink is a store that writes what the authority decided. Write makes every
// Write durable and visible to readers before it returns nil (Qdrant: wait =
// true) and is idempotent. Errors are classified as for Authority; a
// permanent failure of single writes is reported as *RecordError values
// naming each refused Write's Record.
type Sink interface {
	Name() string
	Write(ctx context.Context, writes []Write) error
}

// callMark is a context key marking what a store call is for.
type callMark int

const (
	isolatingMark callMark = iota
	probeMark
)

// WithIsolating marks ctx as that of a store call made while isolating the
// culprits of a refused batch (DESIGN.md §5).
func WithIsolating(ctx context.Context) context.Context {
	return context.WithValue(ctx, isolatingMark, true)
}

// Isolating reports whether ctx is that of a call isolating the culprits of
// a refused batch: the partition holds the whole batch back until the
// search ends, so an authority that queues calls (the Neo4j sink's
// transaction turns) serves it ahead of the others, and a partition with a
// refused record does not fall behind all of them.
func Isolating(ctx context.Context) bool { return ctx.Value(isolatingMark) != nil }

// WithProbe marks ctx as that of a probe: the authority applies one record
// in a transaction whose follower refuses on purpose, to learn whether the
// authority takes the record alone.
func WithProbe(ctx context.Context) context.Context {
	return context.WithValue(ctx, probeMark, true)
}

// Probing reports whether ctx is a probe's (WithProbe). An authority that
// calls the follower before its statements are done must not then: the
// follower's refusal would end the transaction before the authority had
// judged the record.
func Probing(ctx context.Context) bool { return ctx.Value(probeMark) != nil }
