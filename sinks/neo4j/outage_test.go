package neo4j

import (
	"context"
	"testing"
	"time"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
)

// TestOutageClasses runs the sink against a private Neo4j with
// authentication, then freezes and stops it: refused credentials are sink
// down, a hung or stopped server is transient, a hung one is given up on
// within the timeout, and what timed out was not committed.
func TestOutageClasses(t *testing.T) {
	t.Parallel()
	const password = "outage-test-pw"
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{Auth: true, Password: password})
	if srv == nil {
		return // skipped: no private instance outside CI
	}
	ctx := context.Background()
	open := func(pw string, timeout time.Duration) *Sink {
		t.Helper()
		s, err := New(Config{URI: srv.URI(), User: "neo4j", Password: pw, Timeout: timeout})
		if err != nil {
			t.Fatalf("new sink: %v", err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	var bt batcher
	write := func(s *Sink, id string) error {
		return s.Apply(ctx, bt.batch(upsert("outage", id, 1, ts(0), []event.Entity{ent("x", "Person", "X", nil)}, nil)),
			func(context.Context, []pipeline.Write) error { return nil })
	}
	// A healthy write may still time out on a machine this loaded (a fresh
	// server compiles its first queries): retry transient errors a few times.
	writeOK := func(s *Sink, id string) error {
		var err error
		for range 5 {
			if err = write(s, id); err == nil || pipeline.ClassOf(err) != pipeline.ClassTransient {
				return err
			}
			time.Sleep(time.Second)
		}
		return err
	}
	wantClass := func(what string, err error, want pipeline.Class) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error, want a %s error", what, want)
		}
		if got := pipeline.ClassOf(err); got != want {
			t.Fatalf("%s: %v is %s, want %s", what, err, got, want)
		}
	}

	s := open(password, 3*time.Second)
	if err := s.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if err := writeOK(s, "b"); err != nil {
		t.Fatalf("apply: %v", err)
	}

	srv.Freeze()
	start := time.Now()
	err := write(s, "c")
	took := time.Since(start)
	srv.Thaw()
	wantClass("apply to a frozen server", err, pipeline.ClassTransient)
	if took > 30*time.Second {
		t.Errorf("apply to a frozen server took %s with a 3 s timeout", took)
	}
	if err := writeOK(s, "d"); err != nil {
		t.Fatalf("apply after the thaw: %v", err)
	}
	drv := srv.Connect(t)
	if n := count(t, drv, `MATCH (c:Chunk {tenant: 'outage'}) RETURN count(c)`, nil); n != 2 {
		t.Errorf("%d chunks, want 2 (b and d; c timed out and must not be committed)", n)
	}

	// After three failed logins Neo4j refuses the user for a while, right
	// password or not, so these come after the writes.
	wrong := open("not-the-password", 10*time.Second)
	wantClass("setup with a wrong password", wrong.Setup(ctx), pipeline.ClassSinkDown)
	wantClass("ping with a wrong password", wrong.Ping(ctx), pipeline.ClassSinkDown)
	wantClass("apply with a wrong password", write(wrong, "a"), pipeline.ClassSinkDown)

	srv.Stop()
	wantClass("ping of a stopped server", s.Ping(ctx), pipeline.ClassTransient)
	wantClass("apply to a stopped server", write(s, "e"), pipeline.ClassTransient)
}
