package breaker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/breaker"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// changes records a breaker's transitions.
type changes struct {
	mu  sync.Mutex
	all []breaker.Change
}

func (c *changes) add(ch breaker.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, ch)
}

func (c *changes) states() []breaker.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []breaker.State
	for _, ch := range c.all {
		out = append(out, ch.To)
	}
	return out
}

func (c *changes) last() breaker.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.all) == 0 {
		return breaker.Change{}
	}
	return c.all[len(c.all)-1]
}

func newBreaker(t *testing.T, s breaker.Settings) (*breaker.Breaker, *changes) {
	t.Helper()
	var ch changes
	b, err := breaker.New("qdrant", s, ch.add)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Stop)
	return b, &ch
}

var (
	errTransient = pipeline.Transient(errors.New("qdrant upsert: Unavailable"))
	errDown      = pipeline.SinkDown(errors.New("qdrant upsert: collection missing"))
	errRecord    = pipeline.Permanent(errors.New("qdrant upsert: wrong vector size"))
)

// write calls s.Write with one empty write list and returns its error.
func write(ctx context.Context, s pipeline.Sink) error { return s.Write(ctx, nil) }

// TestCounting checks what opens a breaker and what does not: transient
// failures in a row (threshold), a sink-down answer at once, Trip at once;
// permanent record errors and cancelled calls never, and a permanent error
// breaks a run of transient ones.
func TestCounting(t *testing.T) {
	const threshold = 3
	tests := []struct {
		name     string
		run      func(t *testing.T, b *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink)
		wantOpen bool
	}{
		{"transient below threshold", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			st.FailNext(threshold-1, errTransient)
			for range threshold - 1 {
				_ = write(context.Background(), s)
			}
		}, false},
		{"transient at threshold", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			st.FailNext(threshold, errTransient)
			for range threshold {
				_ = write(context.Background(), s)
			}
		}, true},
		{"sink down trips at once", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			st.FailNext(1, errDown)
			_ = write(context.Background(), s)
		}, true},
		{"trip", func(t *testing.T, b *breaker.Breaker, _ *pipelinetest.Store, _ pipeline.Sink) {
			b.Trip(errors.New("retries exhausted"))
		}, true},
		{"permanent never", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			st.FailNext(3*threshold, errRecord)
			for range 3 * threshold {
				_ = write(context.Background(), s)
			}
		}, false},
		{"permanent breaks a run", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			for range 3 {
				st.FailNext(threshold-1, errTransient)
				st.FailNext(1, errRecord)
			}
			for range 3 * threshold {
				_ = write(context.Background(), s)
			}
		}, false},
		{"cancelled calls never", func(t *testing.T, _ *breaker.Breaker, st *pipelinetest.Store, s pipeline.Sink) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for range 3 * threshold {
				if err := write(ctx, s); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled write: %v, want context.Canceled", err)
				}
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, ch := newBreaker(t, breaker.Settings{FailureThreshold: threshold, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
			st := pipelinetest.NewStore("qdrant")
			s := b.Sink(st)
			tc.run(t, b, st, s)
			if got := b.State() == breaker.Open; got != tc.wantOpen {
				t.Fatalf("open = %v, want %v (transitions %v)", got, tc.wantOpen, ch.states())
			}
			if !tc.wantOpen {
				return
			}
			// Open: calls fail at once with a sink-down OpenError, and the
			// store is not called.
			calls := st.Calls()
			err := write(context.Background(), s)
			var oe *breaker.OpenError
			if pipeline.ClassOf(err) != pipeline.ClassSinkDown || !errors.As(err, &oe) {
				t.Fatalf("write through an open breaker: %v (class %v), want a sink-down OpenError", err, pipeline.ClassOf(err))
			}
			if oe.Store != "qdrant" || oe.State != breaker.Open || oe.Cause == nil {
				t.Errorf("OpenError %+v: want store qdrant, state open and the cause", oe)
			}
			if st.Calls() != calls {
				t.Errorf("the store was called through an open breaker")
			}
			if c := ch.last(); c.To != breaker.Open || c.From != breaker.Closed || c.Err == nil || c.Store != "qdrant" {
				t.Errorf("last change %+v, want closed → open with the cause", c)
			}
		})
	}
}

// TestFollowerFailuresAreNotTheAuthoritys: the authority's breaker does not
// count a failure of the follower inside its transaction, while the
// follower's breaker does.
func TestFollowerFailuresAreNotTheAuthoritys(t *testing.T) {
	s := breaker.Settings{FailureThreshold: 2, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1}
	ab, _ := newBreaker(t, s)
	sb, _ := newBreaker(t, s)
	authStore, sinkStore := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
	auth, sink := ab.Authority(authStore), sb.Sink(sinkStore)
	sinkStore.FailNext(10, errTransient)
	for range 5 {
		err := auth.Apply(context.Background(), &pipeline.Batch{}, sink.Write)
		if err == nil {
			t.Fatal("Apply succeeded with a failing follower")
		}
	}
	if ab.State() != breaker.Closed {
		t.Errorf("authority breaker %v after follower failures, want closed", ab.State())
	}
	if sb.State() != breaker.Open {
		t.Errorf("follower breaker %v after 5 failures, want open", sb.State())
	}
	authStore.FailNext(2, errTransient)
	for range 2 {
		_ = auth.Apply(context.Background(), &pipeline.Batch{}, func(context.Context, []pipeline.Write) error { return nil })
	}
	if ab.State() != breaker.Open {
		t.Errorf("authority breaker %v after two failures of its own, want open", ab.State())
	}
}

// TestHalfOpen: an open breaker half-opens by itself after OpenTimeout
// (waking whoever waits on an OpenError), lets HalfOpenMaxRequests probes
// through, closes on their success and re-opens on a failure.
func TestHalfOpen(t *testing.T) {
	const openFor = 100 * time.Millisecond
	for _, tc := range []struct {
		name      string
		probeErr  error
		wantAfter breaker.State
	}{
		{"probe succeeds", nil, breaker.Closed},
		{"probe fails", errTransient, breaker.Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ch := newBreaker(t, breaker.Settings{FailureThreshold: 1, OpenTimeout: openFor, HalfOpenMaxRequests: 1})
			st := pipelinetest.NewStore("qdrant")
			s := b.Sink(st)
			st.FailNext(1, errTransient)
			_ = write(context.Background(), s)
			err := write(context.Background(), s)
			var oe *breaker.OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("second write: %v, want an OpenError", err)
			}
			var w pipeline.Waiter
			if !errors.As(err, &w) {
				t.Fatal("the OpenError is not a pipeline.Waiter")
			}
			select {
			case <-w.Wait():
			case <-time.After(30 * time.Second):
				t.Fatalf("Wait not closed 30 s after an OpenTimeout of %s", openFor)
			}
			// The change notice may reach the listener just after Wait
			// closes: give it a moment.
			for deadline := time.Now().Add(5 * time.Second); ch.last().To != breaker.HalfOpen && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if got := ch.last(); got.To != breaker.HalfOpen {
				t.Fatalf("after OpenTimeout the last transition is to %v, want half-open", got.To)
			}

			// One probe at a time: hold it in the store while a second call
			// is refused as half-open.
			unblock := st.Block()
			if tc.probeErr != nil {
				st.FailNext(1, tc.probeErr)
			}
			probe := make(chan error, 1)
			go func() { probe <- write(context.Background(), s) }()
			waitUntil(t, "the probe reaches the store", func() bool { return st.Calls() >= 2 })
			err = write(context.Background(), s)
			if !errors.As(err, &oe) || oe.State != breaker.HalfOpen {
				t.Errorf("call during the probe: %v, want an OpenError in state half-open", err)
			}
			unblock()
			if err := <-probe; !errors.Is(err, tc.probeErr) {
				t.Fatalf("probe: %v, want %v", err, tc.probeErr)
			}
			if got := b.State(); got != tc.wantAfter {
				t.Fatalf("after the probe: %v, want %v (transitions %v)", got, tc.wantAfter, ch.states())
			}
			if tc.wantAfter == breaker.Closed && ch.last().Err != nil {
				t.Errorf("closed change carries error %v", ch.last().Err)
			}
		})
	}
}

// TestSettings: bad settings are refused naming the configuration key;
// SettingsFrom maps the config section.
func TestSettings(t *testing.T) {
	_, err := breaker.New("neo4j", breaker.Settings{}, nil)
	for _, key := range []string{"failure_threshold", "open_timeout", "half_open_max_requests"} {
		if err == nil || !strings.Contains(err.Error(), "pipeline.breaker."+key) {
			t.Errorf("New with zero settings: %v, want a problem naming pipeline.breaker.%s", err, key)
		}
	}
	if _, err := breaker.New("", breaker.Settings{FailureThreshold: 1, OpenTimeout: time.Second, HalfOpenMaxRequests: 1}, nil); err == nil {
		t.Error("New accepted an empty store name")
	}
	got := breaker.SettingsFrom(config.Default().Pipeline.Breaker)
	want := breaker.Settings{FailureThreshold: 5, OpenTimeout: 10 * time.Second, HalfOpenMaxRequests: 1}
	if got != want {
		t.Errorf("SettingsFrom(defaults) = %+v, want %+v", got, want)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
