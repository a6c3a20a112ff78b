package admin

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// controlledCheck is a check whose answer the test sets, and which tells
// the test each time it has run.
type controlledCheck struct {
	fail  atomic.Pointer[error]
	calls chan struct{}
}

func newControlledCheck() *controlledCheck {
	return &controlledCheck{calls: make(chan struct{}, 1000)}
}

func (c *controlledCheck) fn(context.Context) error {
	var err error
	if p := c.fail.Load(); p != nil {
		err = *p
	}
	c.calls <- struct{}{}
	return err
}

func (c *controlledCheck) set(err error) {
	if err == nil {
		c.fail.Store(nil)
		return
	}
	c.fail.Store(&err)
}

// waitRounds waits until the check has been started n more times. Checks
// of one name never overlap, so when the n-th call starts, the result of
// every earlier call is recorded.
func (c *controlledCheck) waitRounds(t *testing.T, n int) {
	t.Helper()
	// Drop calls that happened before the change the test just made.
	for len(c.calls) > 0 {
		<-c.calls
	}
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-c.calls:
		case <-timeout:
			t.Fatalf("the check ran %d times in 30s, want %d", i, n)
		}
	}
}

func runReadiness(t *testing.T, f *fixture, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.ready.Run(ctx, interval) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

type readyBody struct {
	Status   string `json:"status"`
	Stopping bool   `json:"stopping"`
	Checks   map[string]struct {
		OK          bool       `json:"ok"`
		Gating      bool       `json:"gating"`
		Error       string     `json:"error"`
		Since       time.Time  `json:"since"`
		CheckedAt   *time.Time `json:"checked_at"`
		LastError   string     `json:"last_error"`
		LastErrorAt *time.Time `json:"last_error_at"`
	} `json:"checks"`
}

func (f *fixture) probe(t *testing.T) (int, readyBody) {
	t.Helper()
	rec := f.do("GET", "/health/ready", nil, nil)
	jsonBody(t, rec)
	var b readyBody
	if err := decodeJSON(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if want := map[int]string{200: "ready", 503: "not ready"}[rec.Code]; b.Status != want {
		t.Errorf("status %d with body status %q", rec.Code, b.Status)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("readiness answer may be cached")
	}
	return rec.Code, b
}

// TestReadinessFollowsADependency is the acceptance test: a failing
// dependency turns readiness 503 by its next check (so within two check
// intervals), the body naming it and its error, and recovery turns it
// back to 200.
func TestReadinessFollowsADependency(t *testing.T) {
	f := newFixture(t, testConfig(), nil)
	kafka, neo4j := newControlledCheck(), newControlledCheck()
	f.ready.AddCheck("kafka", kafka.fn, time.Second)
	f.ready.AddCheck("neo4j", neo4j.fn, time.Second)

	if code, b := f.probe(t); code != 503 || b.Checks["neo4j"].Error != "not checked yet" {
		t.Errorf("before the first check: %d %+v", code, b)
	}
	const interval = 20 * time.Millisecond
	runReadiness(t, f, interval)
	neo4j.waitRounds(t, 2)
	kafka.waitRounds(t, 2)
	code, b := f.probe(t)
	if code != 200 || !b.Checks["neo4j"].OK || b.Checks["neo4j"].CheckedAt == nil {
		t.Fatalf("healthy: %d %+v", code, b)
	}

	neo4j.set(errors.New("connection refused"))
	neo4j.waitRounds(t, 2)
	code, b = f.probe(t)
	if code != 503 {
		t.Fatalf("two rounds after neo4j failed readiness is %d", code)
	}
	n := b.Checks["neo4j"]
	if n.OK || n.Error != "connection refused" || !n.Gating || n.LastError != "connection refused" {
		t.Errorf("neo4j entry: %+v", n)
	}
	if !b.Checks["kafka"].OK {
		t.Errorf("kafka entry: %+v", b.Checks["kafka"])
	}
	downSince := n.Since

	neo4j.set(nil)
	neo4j.waitRounds(t, 2)
	code, b = f.probe(t)
	if code != 200 {
		t.Fatalf("two rounds after neo4j recovered readiness is %d: %+v", code, b)
	}
	n = b.Checks["neo4j"]
	if !n.OK || n.Error != "" || n.LastError != "connection refused" || n.LastErrorAt == nil || !n.Since.After(downSince) {
		t.Errorf("recovered neo4j entry: %+v", n)
	}

	fams := f.scrape(t)
	if v, _ := fams.Value("ragstream_ready", nil); v != 1 {
		t.Errorf("ragstream_ready = %v", v)
	}
	if v, ok := fams.Value("ragstream_dependency_up", map[string]string{"dependency": "neo4j"}); !ok || v != 1 {
		t.Errorf("ragstream_dependency_up{neo4j} = %v (present %v)", v, ok)
	}
	if ls := f.logs.find(t, "readiness: dependency down"); len(ls) != 1 || ls[0]["dependency"] != "neo4j" || ls[0]["error"] != "connection refused" {
		t.Errorf("down lines: %v", ls)
	}
}

func TestReadinessCheckTimeout(t *testing.T) {
	f := newFixture(t, testConfig(), nil)
	var calls atomic.Int32
	release := make(chan struct{})
	f.ready.AddCheck("qdrant", func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			return nil
		}
		<-release // ignores ctx: the timeout must still mark it down
		return nil
	}, 30*time.Millisecond)
	f.ready.CheckNow(context.Background())
	if code, _ := f.probe(t); code != 200 {
		t.Fatalf("first check passed, readiness %d", code)
	}
	done := make(chan struct{})
	go func() { f.ready.CheckNow(context.Background()); close(done) }()
	deadline := time.After(30 * time.Second)
	for {
		code, b := f.probe(t)
		if code == 503 {
			if got := b.Checks["qdrant"].Error; got != "no answer within 30ms" {
				t.Errorf("error %q", got)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatal("a hung check never turned readiness 503")
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(release)
	<-done
}

func TestReadinessInputs(t *testing.T) {
	type step struct {
		do       func(r *Readiness)
		code     int
		name     string // entry to inspect
		ok       bool
		errText  string
		stopping bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"no components: ready", []step{
			{func(*Readiness) {}, 200, "", true, "", false},
		}},
		{"group condition", []step{
			{func(r *Readiness) { r.SetCondition("kafka_group", false, "not joined") }, 503, "kafka_group", false, "not joined", false},
			{func(r *Readiness) { r.SetCondition("kafka_group", true, "") }, 200, "kafka_group", true, "", false},
		}},
		{"sink reports itself down and up", []step{
			{func(r *Readiness) { r.ReportDown("neo4j", errors.New("breaker open")) }, 503, "neo4j", false, "breaker open", false},
			{func(r *Readiness) { r.ReportDown("qdrant", nil) }, 503, "qdrant", false, "reported down", false},
			{func(r *Readiness) { r.ReportUp("neo4j") }, 503, "neo4j", true, "", false},
			{func(r *Readiness) { r.ReportUp("qdrant") }, 200, "qdrant", true, "", false},
		}},
		{"report down overrides a passing check", []step{
			{func(r *Readiness) {
				r.AddCheck("neo4j", func(context.Context) error { return nil }, time.Second)
				r.CheckNow(context.Background())
			}, 200, "neo4j", true, "", false},
			{func(r *Readiness) { r.ReportDown("neo4j", errors.New("authentication refused")) }, 503, "neo4j", false, "authentication refused", false},
			{func(r *Readiness) { r.CheckNow(context.Background()) }, 503, "neo4j", false, "authentication refused", false},
			{func(r *Readiness) { r.ReportUp("neo4j") }, 200, "neo4j", true, "", false},
		}},
		{"non-gating check is reported, not gating", []step{
			{func(r *Readiness) {
				r.AddCheck("redis", func(context.Context) error { return errors.New("dial tcp: refused") }, time.Second, NonGating())
				r.CheckNow(context.Background())
			}, 200, "redis", false, "dial tcp: refused", false},
			{func(r *Readiness) { r.ReportDown("redis", errors.New("still down")) }, 200, "redis", false, "dial tcp: refused", false},
		}},
		{"panicking check is an error", []step{
			{func(r *Readiness) {
				r.AddCheck("kafka", func(context.Context) error { panic("nil client") }, time.Second)
				r.CheckNow(context.Background())
			}, 503, "kafka", false, "check panicked: nil client", false},
		}},
		{"stopping", []step{
			{func(r *Readiness) { r.SetCondition("kafka_group", true, "") }, 200, "kafka_group", true, "", false},
			{func(r *Readiness) { r.SetStopping() }, 503, "kafka_group", true, "", true},
			{func(r *Readiness) { r.SetCondition("kafka_group", true, "") }, 503, "kafka_group", true, "", true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testConfig(), nil)
			for i, s := range tc.steps {
				s.do(f.ready)
				code, b := f.probe(t)
				if code != s.code || b.Stopping != s.stopping {
					t.Fatalf("step %d: %d stopping=%v, want %d stopping=%v: %+v", i, code, b.Stopping, s.code, s.stopping, b)
				}
				if s.name == "" {
					continue
				}
				e, ok := b.Checks[s.name]
				if !ok || e.OK != s.ok || e.Error != s.errText {
					t.Errorf("step %d: %s = %+v (present %v), want ok=%v error=%q", i, s.name, e, ok, s.ok, s.errText)
				}
				if s.name == "redis" && e.Gating {
					t.Errorf("redis is gating")
				}
			}
			if rec := f.do("GET", "/health/live", nil, nil); rec.Code != 200 || jsonBody(t, rec)["status"] != "alive" {
				t.Errorf("liveness %d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestStatusReporterIsReadiness(t *testing.T) {
	var _ StatusReporter = (*Readiness)(nil)
	f := newFixture(t, testConfig(), nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sr StatusReporter = f.ready
			for j := 0; j < 100; j++ {
				sr.ReportDown("neo4j", errors.New("x"))
				sr.ReportUp("neo4j")
				f.ready.Report()
			}
		}()
	}
	wg.Wait()
	if code, _ := f.probe(t); code != 200 {
		t.Errorf("after balanced reports readiness is %d", code)
	}
}

func TestAddCheckRejectsWiringMistakes(t *testing.T) {
	r := NewReadiness(nopLogger(), nil)
	r.AddCheck("kafka", func(context.Context) error { return nil }, time.Second)
	for name, fn := range map[string]func(){
		"empty name":   func() { r.AddCheck("", func(context.Context) error { return nil }, time.Second) },
		"nil function": func() { r.AddCheck("x", nil, time.Second) },
		"zero timeout": func() { r.AddCheck("y", func(context.Context) error { return nil }, 0) },
		"duplicate":    func() { r.AddCheck("kafka", func(context.Context) error { return nil }, time.Second) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn()
		})
	}
	if err := r.Run(context.Background(), 0); err == nil {
		t.Error("Run accepted a zero interval")
	}
}
