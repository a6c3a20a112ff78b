package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/admin/httpjson"
	"github.com/ragstream/ragstream/internal/metrics"
)

// StatusReporter is how a part that finds its own dependency unusable — a
// sink whose breaker opened, a store refusing authentication — takes the
// process out of rotation, and back in. Readiness implements it. Callers
// that must not import admin (pipeline, sinks) declare the same two methods
// in an interface of their own.
type StatusReporter interface {
	// ReportDown marks component down with the reason; readiness answers
	// 503 naming it until ReportUp.
	ReportDown(component string, err error)
	// ReportUp clears a ReportDown of component.
	ReportUp(component string)
}

// CheckFunc tells whether a dependency answers. It must return when ctx
// ends: the check's timeout and shutdown both arrive through ctx.
type CheckFunc func(ctx context.Context) error

// CheckOption configures one check.
type CheckOption func(*checkSpec)

// NonGating makes a check (and anything reported under its name) show in
// the readiness body without gating readiness: for dependencies whose loss
// degrades service instead of stopping it, such as Redis, where the rate
// limiter falls back to a local one.
func NonGating() CheckOption { return func(c *checkSpec) { c.gating = false } }

type checkSpec struct {
	name     string
	fn       CheckFunc
	timeout  time.Duration
	gating   bool
	inflight bool // guarded by Readiness.mu
}

// source is one input to a component's state: its check's last result, a
// condition the consumer sets, or a report from a sink.
type source struct {
	present bool
	ok      bool
	err     string
}

type component struct {
	name   string
	gating bool
	check  source
	cond   source
	report source

	ok          bool
	since       time.Time
	checkedAt   time.Time
	lastErr     string
	lastErrAt   time.Time
	initialised bool
}

// state derives the component's state from its sources: down when any
// present source is down.
func (c *component) state() (bool, string) {
	for _, s := range []source{c.check, c.cond, c.report} {
		if s.present && !s.ok {
			return false, s.err
		}
	}
	return true, ""
}

// Readiness decides what GET /health/ready answers. Its inputs are named
// components, each fed by any of: a check run in the background every
// interval with its own timeout (AddCheck), a condition the consumer sets
// (SetCondition: "the group has joined"), and reports from the parts that
// find their dependency down (ReportDown / ReportUp). The process is ready
// when it is not stopping and every gating component is up. Probes read the
// cached result; they never run a check.
type Readiness struct {
	log zerolog.Logger
	m   *metrics.Metrics
	now func() time.Time

	mu       sync.Mutex
	checks   []*checkSpec
	comps    map[string]*component
	stopping bool
	ready    bool
	wg       sync.WaitGroup
}

// NewReadiness returns a Readiness that logs its transitions to log and,
// when m is not nil, exports them as ragstream_ready and
// ragstream_dependency_up. With no component at all it is ready.
func NewReadiness(log zerolog.Logger, m *metrics.Metrics) *Readiness {
	r := &Readiness{log: log, m: m, now: time.Now, comps: make(map[string]*component), ready: true}
	if m != nil {
		m.SetReady(true)
	}
	return r
}

// comp returns the component called name, creating it; r.mu is held.
func (r *Readiness) comp(name string) *component {
	c, ok := r.comps[name]
	if !ok {
		c = &component{name: name, gating: true, ok: true, since: r.now()}
		r.comps[name] = c
	}
	return c
}

// AddCheck registers a check of the dependency name, run by Run every
// interval with timeout. Until its first result the component is down
// ("not checked yet"), so a process is not ready before its dependencies
// have answered once. It panics on an empty name, a nil fn, a non-positive
// timeout or a second check of the same name: these are wiring mistakes.
func (r *Readiness) AddCheck(name string, fn CheckFunc, timeout time.Duration, opts ...CheckOption) {
	switch {
	case name == "":
		panic("admin: readiness check with an empty name")
	case fn == nil:
		panic(fmt.Sprintf("admin: readiness check %q: nil function", name))
	case timeout <= 0:
		panic(fmt.Sprintf("admin: readiness check %q: timeout %v must be positive", name, timeout))
	}
	spec := &checkSpec{name: name, fn: fn, timeout: timeout, gating: true}
	for _, o := range opts {
		o(spec)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.checks {
		if c.name == name {
			panic(fmt.Sprintf("admin: readiness check %q registered twice", name))
		}
	}
	r.checks = append(r.checks, spec)
	c := r.comp(name)
	c.gating = spec.gating
	c.check = source{present: true, ok: false, err: "not checked yet"}
	r.updateLocked(c)
}

// SetCondition sets a condition the process itself knows, such as
// "kafka_group" (the consumer has joined its group). A condition that is
// not ok gates readiness with detail as its error.
func (r *Readiness) SetCondition(name string, ok bool, detail string) {
	if !ok && detail == "" {
		detail = "not ok"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.comp(name)
	c.cond = source{present: true, ok: ok}
	if !ok {
		c.cond.err = detail
	}
	r.updateLocked(c)
}

// ReportDown implements StatusReporter: component is down for err until
// ReportUp. A nil err still marks it down.
func (r *Readiness) ReportDown(component string, err error) {
	msg := "reported down"
	if err != nil {
		msg = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.comp(component)
	c.report = source{present: true, ok: false, err: msg}
	r.updateLocked(c)
}

// ReportUp implements StatusReporter: it clears ReportDown. The component
// stays listed, so the body shows it recovered.
func (r *Readiness) ReportUp(component string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.comp(component)
	c.report = source{present: true, ok: true}
	r.updateLocked(c)
}

// SetStopping makes readiness answer 503 from now on. Call it first thing
// on SIGTERM, so load balancers stop sending work while the pipeline
// drains; liveness stays 200.
func (r *Readiness) SetStopping() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopping {
		r.stopping = true
		r.log.Info().Msg("readiness: stopping; /health/ready answers 503 from now on")
	}
	r.recomputeLocked()
}

// Stopping reports whether SetStopping was called.
func (r *Readiness) Stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// updateLocked derives c's state from its sources, logging and exporting a
// change; r.mu is held.
func (r *Readiness) updateLocked(c *component) {
	ok, msg := c.state()
	now := r.now()
	if !ok {
		c.lastErr, c.lastErrAt = msg, now
	}
	if ok != c.ok || !c.initialised {
		if c.initialised {
			c.since = now
			if ok {
				r.log.Info().Str("dependency", c.name).Msg("readiness: dependency up")
			} else {
				r.log.Warn().Str("dependency", c.name).Str("error", msg).Bool("gating", c.gating).Msg("readiness: dependency down")
			}
		}
		c.ok, c.initialised = ok, true
		if r.m != nil {
			r.m.SetDependencyUp(c.name, ok)
		}
	}
	r.recomputeLocked()
}

func (r *Readiness) recomputeLocked() {
	ready := !r.stopping
	for _, c := range r.comps {
		if c.gating && !c.ok {
			ready = false
		}
	}
	if ready != r.ready {
		r.ready = ready
		if ready {
			r.log.Info().Msg("readiness: ready")
		} else {
			r.log.Warn().Msg("readiness: not ready")
		}
	}
	if r.m != nil {
		r.m.SetReady(ready)
	}
}

// Run runs every check at once and then every interval, each in its own
// goroutine under its timeout, until ctx ends; then it waits for running
// checks (whose contexts are cancelled) and returns nil. A check still
// running from an earlier round is not started again; its timeout has
// already marked it down.
func (r *Readiness) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("readiness: check interval %v must be positive", interval)
	}
	defer r.wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.startChecks(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckNow runs every check once and waits for their results, for a
// synchronous first answer at start-up and for tests.
func (r *Readiness) CheckNow(ctx context.Context) {
	r.startChecks(ctx)
	r.wg.Wait()
}

func (r *Readiness) startChecks(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.checks {
		if c.inflight {
			continue
		}
		c.inflight = true
		r.wg.Add(1)
		go r.runCheck(ctx, c)
	}
}

// runCheck runs one check. The result is recorded when the check returns
// or its timeout passes, whichever is first, so a check that ignores its
// context still turns readiness 503 on time.
func (r *Readiness) runCheck(ctx context.Context, c *checkSpec) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		c.inflight = false
		r.mu.Unlock()
	}()
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- safeCheck(cctx, c.fn) }()

	var err error
	returned := false
	select {
	case err = <-done:
		returned = true
	case <-cctx.Done():
		select {
		case err = <-done: // it returned at the same moment
			returned = true
		default:
		}
	}
	timedOut := cctx.Err() != nil && (!returned || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
	if timedOut {
		err = fmt.Errorf("no answer within %v", c.timeout)
	}
	// When ctx itself ended the process is shutting down: the cancellation
	// says nothing about the dependency, so nothing is recorded.
	if ctx.Err() == nil {
		r.recordCheck(c, err)
	}
	if !returned {
		// A check that ignores its context: wait for it, so it is never run
		// twice at once; its late result is stale and dropped.
		<-done
	}
}

func (r *Readiness) recordCheck(c *checkSpec, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	comp := r.comp(c.name)
	comp.checkedAt = r.now()
	if err != nil {
		comp.check = source{present: true, ok: false, err: err.Error()}
	} else {
		comp.check = source{present: true, ok: true}
	}
	r.updateLocked(comp)
}

// safeCheck runs fn, turning a panic into an error: a broken check must
// not take the process down.
func safeCheck(ctx context.Context, fn CheckFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// Report is the body of GET /health/ready.
type Report struct {
	// Status is "ready" or "not ready".
	Status string `json:"status"`
	// Stopping is true once SetStopping was called.
	Stopping bool                       `json:"stopping,omitempty"`
	Checks   map[string]ComponentStatus `json:"checks"`
}

// Ready reports whether the report says ready.
func (rep Report) Ready() bool { return rep.Status == StatusReady }

// Values of Report.Status.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
)

// ComponentStatus is one dependency's entry in the readiness body.
type ComponentStatus struct {
	OK bool `json:"ok"`
	// Gating is false for components that are reported but do not decide
	// readiness (NonGating).
	Gating bool `json:"gating"`
	// Error is why the component is down; empty while it is up.
	Error string `json:"error,omitempty"`
	// Since is when the component entered its current state.
	Since time.Time `json:"since"`
	// CheckedAt is when its check last finished; absent without a check.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	// LastError and LastErrorAt keep the most recent failure after a
	// recovery, for the operator who looks a minute too late.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Report returns the current state, as the probe answers it.
func (r *Readiness) Report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Status: StatusNotReady, Stopping: r.stopping, Checks: make(map[string]ComponentStatus, len(r.comps))}
	if r.ready {
		rep.Status = StatusReady
	}
	names := make([]string, 0, len(r.comps))
	for n := range r.comps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := r.comps[n]
		_, msg := c.state()
		cs := ComponentStatus{OK: c.ok, Gating: c.gating, Error: msg, Since: c.since.UTC(), LastError: c.lastErr}
		if !c.checkedAt.IsZero() {
			t := c.checkedAt.UTC()
			cs.CheckedAt = &t
		}
		if !c.lastErrAt.IsZero() {
			t := c.lastErrAt.UTC()
			cs.LastErrorAt = &t
		}
		rep.Checks[n] = cs
	}
	return rep
}

// ServeHTTP answers GET /health/ready: 200 with the report when ready, 503
// with it otherwise.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	rep := r.Report()
	status := http.StatusOK
	if !rep.Ready() {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, status, rep)
}
