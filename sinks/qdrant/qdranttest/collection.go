package qdranttest

import (
	"slices"
	"sync"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// vectorSpace stores one named (or the unnamed "") vector of every point.
// Each vector is the slice decoded from the request that wrote it (already
// preprocessed, and owned by the server), so storing a point copies
// nothing; nil marks a point without this vector.
type vectorSpace struct {
	size   int
	metric metric
	vecs   [][]float32
}

func (vs *vectorSpace) get(slot int32) []float32 { return vs.vecs[slot] }

func (vs *vectorSpace) has(slot int32) bool { return vs.vecs[slot] != nil }

// slot is a stored point; its vectors live in the vector spaces.
type slot struct {
	id      pointKey
	payload payload
	version uint64
	live    bool
}

// collection is one in-memory collection. Reads take mu for reading;
// updates are applied one at a time, in operation-id order, by the
// collection's worker, as Qdrant applies a shard's update queue.
type collection struct {
	name          string
	vectorsConfig *qdrant.VectorsConfig
	named         bool
	spaces        map[string]*vectorSpace
	onDiskPayload bool
	faults        *Faults

	mu     sync.RWMutex
	index  map[pointKey]int32
	slots  []slot
	free   []int32
	live   int
	schema map[string]*qdrant.PayloadSchemaInfo

	sortMu sync.Mutex
	sorted []pointKey // live ids in Qdrant's order; nil when stale

	qmu     sync.Mutex
	queue   []*op
	nextOp  uint64
	closed  bool
	kick    chan struct{}
	stopped chan struct{}
}

// op is one queued update.
type op struct {
	id      uint64
	apply   func(c *collection, version uint64)
	readyAt time.Time
	done    chan error // nil for wait=false writes
}

func newCollection(name string, cfg *qdrant.VectorsConfig, spaces map[string]*vectorSpace, named, onDiskPayload bool, f *Faults) *collection {
	c := &collection{
		name:          name,
		vectorsConfig: cfg,
		named:         named,
		spaces:        spaces,
		onDiskPayload: onDiskPayload,
		faults:        f,
		index:         map[pointKey]int32{},
		schema:        map[string]*qdrant.PayloadSchemaInfo{},
		kick:          make(chan struct{}, 1),
		stopped:       make(chan struct{}),
	}
	go c.run()
	return c
}

// submit queues an update and returns its operation id. With wait it
// blocks until the update is applied (or dropped by a simulated restart).
// A write without wait is acknowledged at once and applied later, after the
// fault injector's apply delay.
func (c *collection) submit(apply func(*collection, uint64), wait bool) (uint64, error) {
	o := &op{apply: apply, readyAt: time.Now()}
	if wait {
		o.done = make(chan error, 1)
	} else if d := c.faults.applyDelay(); d > 0 {
		o.readyAt = o.readyAt.Add(d)
	}
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		return 0, status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", c.name)
	}
	o.id = c.nextOp
	c.nextOp++
	c.queue = append(c.queue, o)
	c.qmu.Unlock()
	c.wake()
	if !wait {
		return o.id, nil
	}
	return o.id, <-o.done
}

func (c *collection) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *collection) run() {
	defer close(c.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.qmu.Lock()
		if c.closed {
			c.qmu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.qmu.Unlock()
			<-c.kick
			continue
		}
		o := c.queue[0]
		if wait := time.Until(o.readyAt); wait > 0 {
			c.qmu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.kick:
				if !timer.Stop() {
					<-timer.C
				}
			}
			continue
		}
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.qmu.Unlock()

		c.mu.Lock()
		o.apply(c, o.id)
		c.mu.Unlock()
		if o.done != nil {
			o.done <- nil
		}
	}
}

// dropPending discards every queued, unapplied update: wait=false writes
// vanish, and callers still waiting get Unavailable, as a client of a
// crashed server would.
func (c *collection) dropPending() int {
	c.qmu.Lock()
	q := c.queue
	c.queue = nil
	c.qmu.Unlock()
	n := 0
	for _, o := range q {
		if o.done != nil {
			o.done <- status.Error(codes.Unavailable, "qdranttest: server restarted before the update was applied")
			continue
		}
		n++
	}
	c.wake()
	return n
}

// close stops the worker; queued updates are dropped.
func (c *collection) close() {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		return
	}
	c.closed = true
	q := c.queue
	c.queue = nil
	c.qmu.Unlock()
	for _, o := range q {
		if o.done != nil {
			o.done <- status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", c.name)
		}
	}
	c.wake()
	<-c.stopped
}

// preparedPoint is a validated point, vectors already preprocessed.
type preparedPoint struct {
	key     pointKey
	payload payload
	vectors []namedVector
}

// upsert applies points in order (a duplicate id: the last wins). With
// cond, an existing point is replaced only if it matches cond; new points
// are inserted regardless. The mode skips existing (InsertOnly) or new
// (UpdateOnly) points. Must hold mu.
func (c *collection) upsert(points []preparedPoint, cond predicate, mode qdrant.UpdateMode, version uint64) {
	for i := range points {
		p := &points[i]
		s, exists := c.index[p.key]
		switch {
		case exists && mode == qdrant.UpdateMode_InsertOnly:
			continue
		case !exists && mode == qdrant.UpdateMode_UpdateOnly:
			continue
		case exists && cond != nil && !cond(c.view(s)):
			continue
		}
		if !exists {
			s = c.alloc(p.key)
		}
		c.slots[s].payload = p.payload
		c.slots[s].version = version
		for _, vs := range c.spaces {
			vs.vecs[s] = nil // a vector the new point lacks is gone
		}
		for _, nv := range p.vectors {
			c.spaces[nv.name].vecs[s] = nv.v
		}
	}
}

func (c *collection) alloc(k pointKey) int32 {
	var s int32
	if n := len(c.free); n > 0 {
		s = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		s = int32(len(c.slots))
		c.slots = append(c.slots, slot{})
		for _, vs := range c.spaces {
			vs.vecs = append(vs.vecs, nil)
		}
	}
	c.slots[s] = slot{id: k, live: true}
	c.index[k] = s
	c.live++
	c.sorted = nil
	return s
}

func (c *collection) remove(k pointKey) {
	s, ok := c.index[k]
	if !ok {
		return
	}
	delete(c.index, k)
	c.slots[s] = slot{}
	for _, vs := range c.spaces {
		vs.vecs[s] = nil
	}
	c.free = append(c.free, s)
	c.live--
	c.sorted = nil
}

func (c *collection) view(s int32) *pointView {
	return &pointView{id: c.slots[s].id, payload: c.slots[s].payload, c: c, slot: s}
}

// sortedIDs returns the live ids in Qdrant's order. Must hold mu (read).
func (c *collection) sortedIDs() []pointKey {
	c.sortMu.Lock()
	defer c.sortMu.Unlock()
	if c.sorted == nil {
		ids := make([]pointKey, 0, len(c.index))
		for k := range c.index {
			ids = append(ids, k)
		}
		slices.SortFunc(ids, pointKey.compare)
		c.sorted = ids
	}
	return c.sorted
}
