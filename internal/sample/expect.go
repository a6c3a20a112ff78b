package sample

import (
	"fmt"
	"sort"

	"github.com/ragstream/ragstream/pipeline/event"
)

// Counts is what the stores must hold after ingesting a stream: Qdrant
// points and Neo4j Chunk nodes (Chunks), Entity nodes, relationships between
// entities, and MENTIONS edges from chunks to entities.
type Counts struct {
	Chunks        int
	Entities      int
	Relationships int
	MentionEdges  int
}

// State is the final state of a stream under DESIGN.md §4's version rule.
type State struct {
	// Chunks maps "tenant/id" to the event of each live chunk.
	Chunks map[string]event.Event
}

// keyState is one key's fold state.
type keyState struct {
	known   bool
	version int64
	live    bool
	ev      event.Event
}

// Fold decodes the records (vectors of dims elements) and folds them key by
// key in slice order: an upsert or op:"delete" applies when its version (0
// when absent) is >= the key's current version, a tombstone applies always
// and keeps the current version. Records of one key must appear in the
// order a partition delivers them; Generate's streams also come out the same
// in any interleaving of partitions. A record that does not decode is an
// error: generated streams hold none.
func Fold(dims int, records []Record) (*State, error) {
	dec := event.NewDecoder(event.DefaultLimits(dims))
	keys := map[string]*keyState{}
	for i, r := range records {
		ev, err := dec.Decode(r.Key, r.Value)
		if err != nil {
			return nil, fmt.Errorf("sample record %d (key %q): %w", i, r.Key, err)
		}
		k := ev.Key()
		st := keys[k]
		if st == nil {
			st = &keyState{}
			keys[k] = st
		}
		switch {
		case ev.Tombstone:
			st.known, st.live = true, false
		case st.known && ev.Version < st.version:
			// Stale: skipped.
		case ev.Op == event.OpDelete:
			st.known, st.version, st.live = true, ev.Version, false
		default:
			st.known, st.version, st.live, st.ev = true, ev.Version, true, ev
		}
	}
	s := &State{Chunks: map[string]event.Event{}}
	for k, st := range keys {
		if st.live {
			s.Chunks[k] = st.ev
		}
	}
	return s, nil
}

// Expect returns the counts a correct pipeline ends with after ingesting
// records with vectors of dims elements.
func Expect(dims int, records []Record) (Counts, error) {
	s, err := Fold(dims, records)
	if err != nil {
		return Counts{}, err
	}
	return s.Counts(), nil
}

// Counts counts the state over all tenants.
func (s *State) Counts() Counts { return s.count(func(string) bool { return true }) }

// CountsFor counts one tenant's part of the state.
func (s *State) CountsFor(tenant string) Counts {
	return s.count(func(t string) bool { return t == tenant })
}

// Tenants returns the tenants with live chunks, sorted.
func (s *State) Tenants() []string {
	seen := map[string]bool{}
	for _, ev := range s.Chunks {
		seen[ev.Tenant] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// EntityKeys returns the live entities as "tenant/entity-id", sorted: the
// entities some live chunk mentions.
func (s *State) EntityKeys() []string {
	set := map[string]bool{}
	for _, ev := range s.Chunks {
		for _, e := range ev.Entities {
			set[ev.Tenant+"/"+e.ID] = true
		}
	}
	return sortedKeys(set)
}

// RelationshipKeys returns the live relationships as
// "tenant/from -[TYPE]-> to", sorted: those some live chunk asserts.
func (s *State) RelationshipKeys() []string {
	set := map[string]bool{}
	for _, ev := range s.Chunks {
		for _, r := range ev.Relations {
			set[ev.Tenant+"/"+r.From+" -["+r.Type+"]-> "+r.To] = true
		}
	}
	return sortedKeys(set)
}

func (s *State) count(want func(tenant string) bool) Counts {
	var c Counts
	ents := map[[2]string]bool{}
	rels := map[[4]string]bool{}
	for _, ev := range s.Chunks {
		if !want(ev.Tenant) {
			continue
		}
		c.Chunks++
		c.MentionEdges += len(ev.Entities) // ids are unique within an event
		for _, e := range ev.Entities {
			ents[[2]string{ev.Tenant, e.ID}] = true
		}
		for _, r := range ev.Relations {
			rels[[4]string{ev.Tenant, r.From, r.Type, r.To}] = true
		}
	}
	c.Entities, c.Relationships = len(ents), len(rels)
	return c
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
