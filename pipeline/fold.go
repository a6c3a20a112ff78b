package pipeline

import "github.com/ragstream/ragstream/pipeline/event"

// StoredState is what the version authority holds for a key.
type StoredState uint8

const (
	// Absent: neither a chunk nor a deletion marker.
	Absent StoredState = iota
	// Present: a chunk at Stored.Version.
	Present
	// Deleted: a deletion marker remembering Stored.Version, kept for the
	// tombstone retention so a late, older upsert cannot resurrect the chunk.
	Deleted
)

// Stored is a key's state in the version authority before a batch.
type Stored struct {
	State   StoredState
	Version int64
}

// Action is the one write a key's events fold to.
type Action uint8

const (
	// ActionUpsert writes Write.Record's chunk.
	ActionUpsert Action = iota + 1
	// ActionDelete removes the chunk and leaves a deletion marker.
	ActionDelete
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case ActionUpsert:
		return "upsert"
	case ActionDelete:
		return "delete"
	}
	return "none"
}

// Write is what one key of a batch folds to against the stored state.
type Write struct {
	Key    Key
	Action Action
	// Record is the record whose content is written: the last applied upsert,
	// or the applied delete.
	Record *Record
	// Version is the key's version after the write: the upsert's version, or
	// the version a deletion marker remembers.
	Version int64
	// Prior is the key's state before the batch: a store uses it to withdraw
	// the old chunk's assertions, and compensation to restore it.
	Prior Stored
}

// Fold applies DESIGN.md §4's version rule to the valid records of a batch,
// key by key in offset order, starting from the stored state that stored
// returns, and collapses each key to the one write that results. Keys whose
// records all lose to the stored version yield no write.
//
// The rule: an upsert or op:delete applies when its version (0 when absent)
// is >= the key's current version, so an equal version re-applies and a redo
// after a crash is harmless; a tombstone applies always and remembers the
// current version. Fold sets every record's Outcome to applied or
// skipped_stale; records with Err set are left alone.
//
// The result keeps the order in which keys first appear in the batch.
func Fold(records []*Record, stored func(Key) Stored) []Write {
	type state struct {
		write   Write
		known   bool // the key has a current version (stored or applied)
		version int64
		applied bool
	}
	idx := make(map[Key]int, len(records))
	states := make([]state, 0, len(records))
	for _, r := range records {
		if r.Err != nil {
			continue
		}
		k := r.Key()
		i, ok := idx[k]
		if !ok {
			prior := stored(k)
			i = len(states)
			idx[k] = i
			states = append(states, state{
				write:   Write{Key: k, Prior: prior},
				known:   prior.State != Absent,
				version: prior.Version,
			})
		}
		s := &states[i]
		ev := &r.Event
		switch {
		case ev.Tombstone:
			// A tombstone applies whatever the versions; it deletes at the
			// current version so an older upsert arriving later stays out.
			v := int64(0)
			if s.known {
				v = s.version
			}
			s.write.Action, s.write.Record, s.write.Version = ActionDelete, r, v
			s.known, s.version, s.applied = true, v, true
			r.Outcome = OutcomeApplied
		case s.known && ev.Version < s.version:
			r.Outcome = OutcomeSkippedStale
		default:
			action := ActionUpsert
			if ev.Op == event.OpDelete {
				action = ActionDelete
			}
			s.write.Action, s.write.Record, s.write.Version = action, r, ev.Version
			s.known, s.version, s.applied = true, ev.Version, true
			r.Outcome = OutcomeApplied
		}
	}
	out := make([]Write, 0, len(states))
	for _, s := range states {
		if s.applied {
			out = append(out, s.write)
		}
	}
	return out
}
