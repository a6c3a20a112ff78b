package qdranttest

import (
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Faults injects failures into a stand-in. Everything is off until a test
// turns it on; Reset turns it all off again. A method is named by its
// short name ("Upsert", "Query", "CollectionExists"), by its full gRPC name
// ("/qdrant.Points/Upsert"), or "" for every method.
type Faults struct {
	mu       sync.Mutex
	rules    []*faultRule
	rejected map[pointKey]struct{}
	latency  time.Duration
	delay    time.Duration
	restart  func() int
}

type faultRule struct {
	method string
	code   codes.Code
	left   int       // calls left to fail; -1 for a period
	until  time.Time // end of the period
}

// FailNext makes the next n calls of method fail with code.
func (f *Faults) FailNext(method string, code codes.Code, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{method: method, code: code, left: n})
}

// FailFor makes every call of method fail with code for the duration d.
func (f *Faults) FailFor(method string, code codes.Code, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{method: method, code: code, left: -1, until: time.Now().Add(d)})
}

// RejectPoints makes any upsert that carries one of these ids fail with
// InvalidArgument naming the id, as Qdrant refuses a request holding one
// bad point (a record-level rejection). Ids are uint64 / int, UUID strings
// or *qdrant.PointId; ids it cannot parse are ignored.
func (f *Faults) RejectPoints(ids ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejected == nil {
		f.rejected = map[pointKey]struct{}{}
	}
	for _, id := range ids {
		if k, ok := keyFromAny(id); ok {
			f.rejected[k] = struct{}{}
		}
	}
}

// SetLatency delays every call by d before it is handled.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// SetApplyDelay delays the apply step of wait=false writes by d: they are
// acknowledged at once and become visible d later (a wait=true write queued
// behind them waits too, as Qdrant's update queue is ordered).
func (f *Faults) SetApplyDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Restart simulates a crash and restart: every acknowledged but not yet
// applied wait=false write is lost, and callers still waiting on a
// wait=true write get Unavailable. Applied data stays. It returns the
// number of wait=false writes dropped.
func (f *Faults) Restart() int {
	f.mu.Lock()
	r := f.restart
	f.mu.Unlock()
	if r == nil {
		return 0
	}
	return r()
}

// Reset turns every fault off.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	f.rejected = nil
	f.latency = 0
	f.delay = 0
}

func (f *Faults) applyDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

func (f *Faults) currentLatency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latency
}

// check returns the injected error for a call of fullMethod, if any.
func (f *Faults) check(fullMethod string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	kept := f.rules[:0]
	var hit *faultRule
	for _, r := range f.rules {
		expired := (r.left == 0) || (r.left < 0 && !now.Before(r.until))
		if expired {
			continue
		}
		if hit == nil && methodMatches(r.method, fullMethod) {
			hit = r
			if r.left > 0 {
				r.left--
			}
		}
		if r.left != 0 {
			kept = append(kept, r)
		}
	}
	for i := len(kept); i < len(f.rules); i++ {
		f.rules[i] = nil
	}
	f.rules = kept
	if hit == nil {
		return nil
	}
	return status.Errorf(hit.code, "qdranttest: injected fault %s on %s", hit.code, fullMethod)
}

// rejectedIn returns the first rejected id among keys.
func (f *Faults) rejectedIn(keys []pointKey) (pointKey, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rejected) == 0 {
		return pointKey{}, false
	}
	for _, k := range keys {
		if _, ok := f.rejected[k]; ok {
			return k, true
		}
	}
	return pointKey{}, false
}

func methodMatches(rule, fullMethod string) bool {
	if rule == "" || rule == fullMethod {
		return true
	}
	i := strings.LastIndexByte(fullMethod, '/')
	return fullMethod[i+1:] == rule
}
