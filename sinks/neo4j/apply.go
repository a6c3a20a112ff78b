package neo4j

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
)

var _ pipeline.Authority = (*Sink)(nil)

// Apply implements pipeline.Authority: in one managed write transaction it
// reads the stored state of the batch's keys (chunk versions and deletion
// markers), folds the batch's valid records against it (pipeline.Fold sets
// each record's Outcome to applied or skipped_stale), writes the resulting
// Writes to the graph, and calls follow with the same Writes; the transaction
// commits only when follow returns nil. The upserts of keys new to the store
// go to follow while the statements run, and are undone if the transaction
// then fails (earlyFollow); the other writes go after the statements.
//
// A record whose graph content the model cannot hold (a reserved label or
// property name) fails the whole call before anything is written, as a
// permanent error joining one *pipeline.RecordError per such record; the
// caller takes them out and applies the rest. Other errors are classified
// (see classify); a constraint violation names the records that write the
// value it found twice as suspects (withSuspects); follow's errors are
// returned as follow returned them. When
// Apply fails, the records' outcomes are left as they were.
//
// The driver may run the transaction again after a transient failure
// (deadlocks between partitions that share entities are expected): each run
// starts from scratch, and follow may then be called more than once with the
// same decisions, which is harmless since the follower's writes are
// idempotent.
func (s *Sink) Apply(ctx context.Context, b *pipeline.Batch, follow func(context.Context, []pipeline.Write) error) error {
	if err := checkBatch(b); err != nil {
		return err
	}
	saved := make([]pipeline.Outcome, len(b.Records))
	valid := make([]*pipeline.Record, 0, len(b.Records))
	for i, r := range b.Records {
		saved[i] = r.Outcome
		if r.Err == nil {
			valid = append(valid, r)
		}
	}
	if len(valid) == 0 {
		return follow(ctx, nil)
	}

	// The wait for a transaction turn has no deadline of its own: behind
	// transactions that progress it is backpressure, not a failure (six
	// partitions with a backlog queue for one turn all the time). When the
	// transaction ahead fails on the server (its neo4j.timeout ran out, the
	// connection broke) every call queued behind it gives up at once with a
	// transient error, so on a frozen server the breaker sees all of them
	// fail within one timeout instead of one per timeout.
	t := &turn{s: s}
	if err := t.acquire(ctx, s.stallSignal()); err != nil {
		return err
	}
	defer t.release()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sess := s.session(ctx)
	defer sess.Close(ctx)
	var step string
	// sent are the writes any run gave the follower early.
	var sent []pipeline.Write
	_, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
		// A run the driver repeats (after a deadlock) takes a turn again,
		// within the call's timeout.
		if err := t.acquire(ctx, nil); err != nil {
			return nil, err
		}
		return nil, s.attempt(ctx, &runner{tx: tx, step: &step, slice: s.slice}, valid, follow, t, &sent)
	}, neo4j.WithTxTimeout(s.cfg.Timeout))
	if err == nil {
		return nil
	}
	for i, r := range b.Records {
		r.Outcome = saved[i]
	}
	var fe *followError
	var re *pipeline.RecordError
	if len(sent) > 0 && !errors.As(err, &fe) {
		// Neo4j failed after the follower took (or may have taken) the new
		// keys' points: take them out again. A refusal by the follower
		// leaves what it took, as for any follower error: the batch is
		// applied again, whole or without the culprits, and decides those
		// writes alike.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		uerr := undoEarly(uctx, sent, follow)
		cancel()
		if uerr != nil {
			// The points stay in the follower until the batch is applied
			// again, which it must be, whatever Neo4j said.
			return pipeline.Transient(fmt.Errorf("neo4j failed (%w) and the points written ahead of it to the other store could not be removed: %w", err, uerr))
		}
	}
	switch {
	case errors.As(err, &fe):
		return fe.err
	case errors.As(err, &re):
		return pipeline.Permanent(err)
	}
	if serverStalled(err) {
		s.signalStall()
	}
	return withSuspects(classify(step, err), err, valid)
}

// attempt is one run of Apply's transaction; it adds the writes it gives
// the follower early to *sent.
func (s *Sink) attempt(ctx context.Context, tx *runner, valid []*pipeline.Record, follow func(context.Context, []pipeline.Write) error, t *turn, sent *[]pipeline.Write) error {
	now := time.Now().UTC()
	stored, priors, err := readKeys(ctx, tx, valid)
	if err != nil {
		return err
	}
	writes := pipeline.Fold(valid, func(k pipeline.Key) pipeline.Stored { return stored[k] })
	p, err := newPlan(writes, priors, chunkMeta{storeText: s.cfg.StoreText, now: now})
	if err != nil {
		return err
	}
	late := writes
	if !pipeline.Probing(ctx) {
		// A probe's follower refuses on purpose, after the statements, to
		// have the transaction rolled back: it gets every write last.
		var early []pipeline.Write
		if early, late = splitEarly(writes, stored); len(early) > 0 {
			*sent = append(*sent, early...)
			e := startEarly(ctx, early, follow)
			defer e.wait() // never return with the follower still writing
			tx.interrupt = e.failed
			lateFollow := follow
			follow = func(ctx context.Context, ws []pipeline.Write) error {
				if err := e.wait(); err != nil {
					return err
				}
				if len(ws) == 0 {
					return nil
				}
				return lateFollow(ctx, ws)
			}
		}
	}
	entReplace, err := withdrawEntities(ctx, tx, p)
	if err != nil {
		return err
	}
	relReplace, err := withdrawRelations(ctx, tx, p)
	if err != nil {
		return err
	}
	params := map[string]any{"now": now}
	for _, st := range []struct {
		name, cypher string
		rows         []any
	}{
		{"delete chunks", cypherDeleteChunks, p.deletes},
		{"withdraw mentions", cypherUnmention, p.unmentions},
		{"recompute entities", cypherEntityReplace, entReplace},
	} {
		if err := tx.exec(ctx, st.name, st.cypher, st.rows, params); err != nil {
			return err
		}
	}
	if err := tx.execTyped(ctx, "recompute relationships", cypherRelationReplace, relReplace); err != nil {
		return err
	}
	if err := tx.write(ctx, entityMergeRows(p.entIn), p.upserts, relationMergeRows(p.relIn)); err != nil {
		return err
	}
	if err := tx.exec(ctx, "remove deletion markers", cypherUnmark, p.unmarks, params); err != nil {
		return err
	}
	if err := tx.exec(ctx, "delete orphaned entities", cypherDropOrphans, entityKeyRows(p.entOut), nil); err != nil {
		return err
	}
	// The statements are done: the turn goes to the next batch while this
	// one waits for the other store and commits. The transaction asks for
	// no lock after this point, so a transaction that waits for its locks
	// cannot deadlock with it.
	t.release()
	tx.setStep("follow")
	if err := follow(ctx, late); err != nil {
		return &followError{err}
	}
	tx.setStep("commit")
	return nil
}

// readKeys reads the stored state of the records' keys: the chunk's version
// and assertions, or the deletion marker's version.
func readKeys(ctx context.Context, tx *runner, valid []*pipeline.Record) (map[pipeline.Key]pipeline.Stored, map[pipeline.Key]*chunkGraph, error) {
	var keys []pipeline.Key
	seen := make(map[pipeline.Key]bool, len(valid))
	rows := make([]any, 0, len(valid))
	for _, r := range valid {
		k := r.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		rows = append(rows, map[string]any{"i": int64(len(keys)), "tenant": k.Tenant, "id": k.ID})
		keys = append(keys, k)
	}
	stored := make(map[pipeline.Key]pipeline.Stored)
	priors := make(map[pipeline.Key]*chunkGraph)
	err := tx.query(ctx, "read key state", cypherReadKeys, rows, func(rec *neo4j.Record) error {
		k := keys[rec.Values[0].(int64)]
		if v, ok := rec.Values[1].(int64); ok {
			stored[k] = pipeline.Stored{State: pipeline.Present, Version: v}
			a, _ := rec.Values[2].(string)
			g, err := decodeGraph(a)
			if err != nil {
				return fmt.Errorf("chunk %s: %w", k, err)
			}
			priors[k] = g
			return nil
		}
		if v, ok := rec.Values[3].(int64); ok {
			stored[k] = pipeline.Stored{State: pipeline.Deleted, Version: v}
		}
		return nil
	})
	return stored, priors, err
}

// withdrawEntities locks the entities that lose assertions, finds those whose
// state a withdrawn assertion decided, and recomputes them from the
// assertions that remain; it returns their replace rows.
func withdrawEntities(ctx context.Context, tx *runner, p *plan) ([]any, error) {
	if len(p.entOut) == 0 {
		return nil, nil
	}
	keys := sortedEntKeys(p.entOut)
	rows := make([]any, len(keys))
	for i, k := range keys {
		rows[i] = map[string]any{"i": int64(i), "tenant": k.Tenant, "id": k.ID, "ranks": p.entOut[k].ranks}
	}
	had := map[int64][]string{}
	if err := tx.query(ctx, "withdraw entity assertions", cypherEntityWithdrawn, rows, func(rec *neo4j.Record) error {
		had[rec.Values[0].(int64)] = stringList(rec.Values[1])
		return nil
	}); err != nil {
		return nil, err
	}
	if len(had) == 0 {
		return nil, nil
	}
	scan := make([]any, 0, len(had))
	for i, k := range keys {
		if _, ok := had[int64(i)]; ok {
			scan = append(scan, map[string]any{"i": int64(i), "tenant": k.Tenant, "id": k.ID, "exclude": p.entOut[k].chunks})
		}
	}
	remaining := map[int64][]ranked{}
	if err := tx.query(ctx, "read entity assertions", cypherEntityAssertions, scan, func(rec *neo4j.Record) error {
		i := rec.Values[0].(int64)
		a, _ := rec.Values[1].(string)
		g, err := decodeGraph(a)
		if err != nil {
			return err
		}
		if e := g.entity(keys[i].ID); e != nil {
			remaining[i] = append(remaining[i], ranked{rank: g.Rank, name: e.Name, typ: e.Type, props: e.Props})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]any, 0, len(had))
	for i, k := range keys {
		userKeys, ok := had[int64(i)]
		if !ok {
			continue
		}
		m := mergeAll(remaining[int64(i)])
		row := m.replaceRow(userKeys)
		row["tenant"], row["id"], row["name"], row["type"] = k.Tenant, k.ID, nil, nil
		if m.rank != "" {
			row["name"], row["type"] = m.name, m.typ
		}
		out = append(out, row)
	}
	return out, nil
}

// withdrawRelations takes the withdrawing chunks out of the sources of the
// relationships that lose assertions (deleting those left without any), and
// recomputes the properties of survivors that a withdrawn assertion decided;
// it returns their replace rows.
func withdrawRelations(ctx context.Context, tx *runner, p *plan) ([]any, error) {
	if len(p.relOut) == 0 {
		return nil, nil
	}
	keys := sortedRelKeys(p.relOut)
	rows := make([]any, len(keys))
	for i, k := range keys {
		w := p.relOut[k]
		rows[i] = map[string]any{"i": int64(i), "tenant": k.Tenant, "from": k.From, "type": k.Type, "to": k.To, "srcs": w.chunks, "ranks": w.ranks}
	}
	type survivor struct{ sources, keys []string }
	need := map[int64]survivor{}
	for _, g := range byType(rows) {
		q, err := relType(cypherRelationWithdrawn, g.typ)
		if err != nil {
			return nil, err
		}
		if err := tx.query(ctx, "withdraw relationship assertions", q, g.rows, func(rec *neo4j.Record) error {
			need[rec.Values[0].(int64)] = survivor{stringList(rec.Values[1]), stringList(rec.Values[2])}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	fetch := make([]any, 0, len(need))
	for i, k := range keys {
		if s, ok := need[int64(i)]; ok {
			fetch = append(fetch, map[string]any{"i": int64(i), "tenant": k.Tenant, "ids": s.sources})
		}
	}
	remaining := map[int64][]ranked{}
	if err := tx.query(ctx, "read relationship assertions", cypherChunkAssertions, fetch, func(rec *neo4j.Record) error {
		i := rec.Values[0].(int64)
		a, _ := rec.Values[1].(string)
		g, err := decodeGraph(a)
		if err != nil {
			return err
		}
		k := keys[i]
		if r := g.relation(k.From, k.Type, k.To); r != nil {
			remaining[i] = append(remaining[i], ranked{rank: g.Rank, props: r.Props})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]any, 0, len(need))
	for i, k := range keys {
		s, ok := need[int64(i)]
		if !ok {
			continue
		}
		m := mergeAll(remaining[int64(i)])
		row := m.replaceRow(s.keys)
		row["tenant"], row["from"], row["type"], row["to"] = k.Tenant, k.From, k.Type, k.To
		out = append(out, row)
	}
	return out, nil
}

func entityKeyRows(m map[entKey]*withdrawal) []any {
	keys := sortedEntKeys(m)
	rows := make([]any, len(keys))
	for i, k := range keys {
		rows[i] = map[string]any{"tenant": k.Tenant, "id": k.ID}
	}
	return rows
}

// stringList converts a list the driver returned into []string.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// runner runs the statements of one transaction attempt and remembers which
// step is running, so a failure names it.
type runner struct {
	tx   neo4j.ManagedTransaction
	step *string
	// interrupt, when set, is asked before each statement: an error ends
	// the run there (the early follower's refusal).
	interrupt func() error
	slice     writeSlice
}

func (r *runner) setStep(s string) { *r.step = s }

// exec runs a write statement over rows; no rows, no round trip.
func (r *runner) exec(ctx context.Context, step, cypher string, rows []any, extra map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	if r.interrupt != nil {
		if err := r.interrupt(); err != nil {
			return err
		}
	}
	r.setStep(step)
	params := map[string]any{"rows": rows}
	for k, v := range extra {
		params[k] = v
	}
	res, err := r.tx.Run(ctx, cypher, params)
	if err != nil {
		return err
	}
	_, err = res.Consume(ctx)
	return err
}

// execTyped runs a relationship template once per relationship type, over
// the rows of that type.
func (r *runner) execTyped(ctx context.Context, step, tmpl string, rows []any) error {
	for _, g := range byType(rows) {
		q, err := relType(tmpl, g.typ)
		if err != nil {
			return err
		}
		if err := r.exec(ctx, step, q, g.rows, nil); err != nil {
			return err
		}
	}
	return nil
}

// Bounds of one write statement. A batch of 1,000 sample events (1,000
// chunks, up to 3,000 entities and 2,000 relationships) goes as one
// statement; a larger one as several, in the order one statement would take
// its rows, so that the driver's outgoing buffer, which it keeps per
// connection at the largest message sent, holds a slice and not the whole
// batch (about 13 MB at 5,000 events).
const (
	writeSliceChunks = 1000
	writeSliceRows   = 8000
)

// writeSlice bounds the rows of one write statement; a zero field takes its
// default above (tests make them small).
type writeSlice struct{ chunks, rows int }

func (w writeSlice) bounds() (chunks, rows int) {
	return cmp.Or(w.chunks, writeSliceChunks), cmp.Or(w.rows, writeSliceRows)
}

// write runs the batch's merges and upserts (writeStatement) in as few
// statements as the slice bounds allow: entities, then chunks, then
// relationships by type in name order, each statement taking the next rows
// of that order. Then the general paths of the merges run over the rows the
// fast paths left.
func (r *runner) write(ctx context.Context, ents, chunks, rels []any) error {
	// The rows' "i" index ents and rels as given; the statements take the
	// relationships sorted by type.
	byName := slices.Clone(rels)
	slices.SortStableFunc(byName, func(a, b any) int { return strings.Compare(rowType(a), rowType(b)) })
	maxChunks, maxRows := r.slice.bounds()
	var entLeft, relLeft []any
	for e, c, rl := ents, chunks, byName; len(e)+len(c)+len(rl) > 0; {
		room := maxRows
		se := e[:min(room, len(e))]
		room -= len(se)
		sc := c[:min(room, len(c), maxChunks)]
		room -= len(sc)
		sr := rl[:min(room, len(rl))]
		e, c, rl = e[len(se):], c[len(sc):], rl[len(sr):]
		q, params, err := writeStatement(se, sc, sr)
		if err != nil {
			return err
		}
		if err := r.run(ctx, "write entities, chunks and relationships", q, params, func(rec *neo4j.Record) error {
			for _, i := range rec.Values[0].([]any) {
				entLeft = append(entLeft, ents[i.(int64)])
			}
			for _, i := range rec.Values[1].([]any) {
				relLeft = append(relLeft, rels[i.(int64)])
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := r.exec(ctx, "merge entities (general)", cypherEntityMergeGeneral, entLeft, nil); err != nil {
		return err
	}
	return r.execTyped(ctx, "merge relationships (general)", cypherRelationMergeGeneral, relLeft)
}

func rowType(row any) string { return row.(map[string]any)["type"].(string) }

// typeGroup is the rows of one relationship type.
type typeGroup struct {
	typ  string
	rows []any
}

// byType groups rows by their "type", keeping the order of first appearance
// and the rows' order within each type.
func byType(rows []any) []typeGroup {
	var groups []typeGroup
	idx := map[string]int{}
	for _, row := range rows {
		t := rowType(row)
		i, ok := idx[t]
		if !ok {
			i = len(groups)
			idx[t] = i
			groups = append(groups, typeGroup{typ: t})
		}
		groups[i].rows = append(groups[i].rows, row)
	}
	return groups
}

// query runs a statement over rows and hands each result record to fn.
func (r *runner) query(ctx context.Context, step, cypher string, rows []any, fn func(*neo4j.Record) error) error {
	if len(rows) == 0 {
		return nil
	}
	return r.run(ctx, step, cypher, map[string]any{"rows": rows}, fn)
}

// run runs a statement and hands each result record to fn.
func (r *runner) run(ctx context.Context, step, cypher string, params map[string]any, fn func(*neo4j.Record) error) error {
	if r.interrupt != nil {
		if err := r.interrupt(); err != nil {
			return err
		}
	}
	r.setStep(step)
	res, err := r.tx.Run(ctx, cypher, params)
	if err != nil {
		return err
	}
	for res.Next(ctx) {
		if err := fn(res.Record()); err != nil {
			return err
		}
	}
	return res.Err()
}

// turn is an Apply's hold on one of the sink's MaxConcurrentTx transaction
// turns: taken for the statements, given back before the follower's write
// and the commit. Used by one goroutine (ExecuteWrite runs its function in
// the caller's).
type turn struct {
	s    *Sink
	held bool
}

// errStalled is the cause a queued call gives up with when the transaction
// ahead of it failed on the server.
var errStalled = errors.New("the transaction ahead of this one in the queue for a turn failed on the server (timeout or lost connection)")

// acquire waits for a turn until ctx ends or stall closes (nil: never).
// The time it waits is added to ctx's WithTurnWait counter.
func (t *turn) acquire(ctx context.Context, stall <-chan struct{}) error {
	if t.held {
		return nil
	}
	if d, ok := ctx.Value(turnWaitKey{}).(*time.Duration); ok {
		start := time.Now()
		defer func() { *d += time.Since(start) }()
	}
	err := t.s.turns.acquire(ctx, stall, pipeline.Isolating(ctx))
	switch {
	case err == nil:
		t.held = true
		return nil
	case errors.Is(err, errStalled):
		return pipeline.Transient(fmt.Errorf("neo4j: no transaction turn (neo4j.max_concurrent_transactions %d): %w", t.s.cfg.MaxConcurrentTx, err))
	default:
		// The caller's context ended (shutdown, revoke), or, for a run the
		// driver repeats, the call's neo4j.timeout.
		return pipeline.Transient(fmt.Errorf("neo4j: no transaction turn (neo4j.max_concurrent_transactions %d, all busy): %w",
			t.s.cfg.MaxConcurrentTx, err))
	}
}

// turnWaitKey is the context key of WithTurnWait's counter.
type turnWaitKey struct{}

// WithTurnWait returns a context under which Apply adds to *d the time it
// waits for a transaction turn (neo4j.max_concurrent_transactions): time
// queued behind other partitions' transactions, not spent in Neo4j, which
// the worker's metrics leave out of the call's duration. The counter is
// written by the goroutine that calls Apply.
func WithTurnWait(ctx context.Context, d *time.Duration) context.Context {
	return context.WithValue(ctx, turnWaitKey{}, d)
}

func (t *turn) release() {
	if t.held {
		t.s.turns.release()
		t.held = false
	}
}

// stallSignal returns the channel that closes when a transaction fails on
// the server; a call takes it before it queues for a turn.
func (s *Sink) stallSignal() <-chan struct{} {
	s.stallMu.Lock()
	defer s.stallMu.Unlock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
	return s.stall
}

// signalStall releases every call queued for a turn: the transaction ahead
// of them failed on the server.
func (s *Sink) signalStall() {
	s.stallMu.Lock()
	defer s.stallMu.Unlock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
}

// serverStalled reports whether a transaction failed because the server did
// not answer in time or the connection broke (the driver's last attempt
// when it gave up retrying), as opposed to a refusal or a deadlock.
func serverStalled(err error) bool {
	var limit *neo4j.TransactionExecutionLimit
	if errors.As(err, &limit) && len(limit.Errors) > 0 && limit.Errors[len(limit.Errors)-1] != nil {
		err = limit.Errors[len(limit.Errors)-1]
	}
	var ce *neo4j.ConnectivityError
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ce)
}
