package qdrant_test

// Fault-injection cases. They need the stand-in's injector, so they start a
// stand-in themselves (qdranttest.Start) instead of taking the target: they
// never run against a real Qdrant, by construction.

import (
	"context"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"

	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

func faultServer(t *testing.T) (*qdranttest.Server, *qdrant.Client, string) {
	t.Helper()
	srv := qdranttest.Start(t)
	host, port := srv.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, PoolSize: 1, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c, confNewCollection(t, c, 2, qdrant.Distance_Dot)
}

func TestConformanceFaultFailNext(t *testing.T) {
	srv, c, name := faultServer(t)
	srv.Faults().FailNext("Upsert", codes.Unavailable, 2)
	for i := 0; i < 2; i++ {
		_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: []*qdrant.PointStruct{confPt(1, []float32{1, 0}, nil)}})
		confWantStatus(t, err, codes.Unavailable, "qdranttest: injected fault")
	}
	// Other methods are untouched, and the third upsert goes through.
	if n := confCount(t, c, name, nil); n != 0 {
		t.Fatalf("failed upserts stored %d points", n)
	}
	confUpsertWait(t, c, name, confPt(1, []float32{1, 0}, nil))
	if n := confCount(t, c, name, nil); n != 1 {
		t.Fatalf("count %d", n)
	}
}

func TestConformanceFaultFailFor(t *testing.T) {
	srv, c, name := faultServer(t)
	srv.Faults().FailFor("/qdrant.Points/Query", codes.DeadlineExceeded, 300*time.Millisecond)
	_, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0)})
	confWantStatus(t, err, codes.DeadlineExceeded, "qdranttest: injected fault")
	confEventually(t, "query works after the period", func() bool {
		_, err := c.Query(confCtx(t), &qdrant.QueryPoints{CollectionName: name, Query: qdrant.NewQuery(1, 0)})
		return err == nil
	})
}

func TestConformanceFaultAllMethods(t *testing.T) {
	srv, c, _ := faultServer(t)
	srv.Faults().FailNext("", codes.Internal, 1)
	_, err := c.ListCollections(confCtx(t))
	confWantStatus(t, err, codes.Internal, "qdranttest: injected fault")
	if _, err := c.ListCollections(confCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// A rejected id fails the upsert holding it with InvalidArgument naming the
// id, as a record Qdrant refuses would.
func TestConformanceFaultRejectPoints(t *testing.T) {
	srv, c, name := faultServer(t)
	srv.Faults().RejectPoints(7, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26")
	for _, bad := range []any{7, "5C56C793-69F3-4FBF-87E6-C4BF54C28C26"} {
		_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true),
			Points: []*qdrant.PointStruct{confPt(1, []float32{1, 0}, nil), confPt(bad, []float32{1, 0}, nil)}})
		confWantStatus(t, err, codes.InvalidArgument, "Wrong input: point ")
	}
	// Refused synchronously even with wait=false.
	_, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Points: []*qdrant.PointStruct{confPt(7, []float32{1, 0}, nil)}})
	confWantStatus(t, err, codes.InvalidArgument, "Wrong input: point 7 ")
	confUpsertWait(t, c, name, confPt(1, []float32{1, 0}, nil), confPt(8, []float32{1, 0}, nil))
	if n := confCount(t, c, name, nil); n != 2 {
		t.Fatalf("count %d", n)
	}
	srv.Faults().Reset()
	confUpsertWait(t, c, name, confPt(7, []float32{1, 0}, nil))
}

func TestConformanceFaultLatency(t *testing.T) {
	srv, c, _ := faultServer(t)
	srv.Faults().SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.ListCollections(ctx)
	confWantStatus(t, err, codes.DeadlineExceeded, "")
	srv.Faults().SetLatency(0)
	if _, err := c.ListCollections(confCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// With an apply delay, wait=false writes are acknowledged but invisible; a
// simulated restart loses them.
func TestConformanceFaultApplyDelayAndRestart(t *testing.T) {
	srv, c, name := faultServer(t)
	srv.Faults().SetApplyDelay(time.Hour)
	res, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Points: []*qdrant.PointStruct{confPt(1, []float32{1, 0}, nil)}})
	if err != nil || res.GetStatus() != qdrant.UpdateStatus_Acknowledged {
		t.Fatalf("upsert: %v, %v", res, err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := confCount(t, c, name, nil); n != 0 {
		t.Fatalf("a delayed write is visible: count %d", n)
	}
	// A wait=true write queued behind it waits for it; the restart fails it.
	done := make(chan error, 1)
	go func() {
		_, err := c.Upsert(context.Background(), &qdrant.UpsertPoints{CollectionName: name, Wait: qdrant.PtrOf(true), Points: []*qdrant.PointStruct{confPt(2, []float32{1, 0}, nil)}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("wait=true write returned %v before the write queued ahead of it applied", err)
	case <-time.After(100 * time.Millisecond):
	}
	if dropped := srv.Faults().Restart(); dropped != 1 {
		t.Fatalf("Restart dropped %d wait=false writes, want 1", dropped)
	}
	confWantStatus(t, <-done, codes.Unavailable, "qdranttest: server restarted")
	srv.Faults().SetApplyDelay(0)
	if n := confCount(t, c, name, nil); n != 0 {
		t.Fatalf("count %d after restart", n)
	}
	confUpsertWait(t, c, name, confPt(3, []float32{1, 0}, nil))
	if n := confCount(t, c, name, nil); n != 1 {
		t.Fatalf("count %d", n)
	}
}

// A short apply delay: the write shows up once it has passed.
func TestConformanceFaultApplyDelayShowsUpLater(t *testing.T) {
	srv, c, name := faultServer(t)
	srv.Faults().SetApplyDelay(200 * time.Millisecond)
	if _, err := c.Upsert(confCtx(t), &qdrant.UpsertPoints{CollectionName: name, Points: []*qdrant.PointStruct{confPt(1, []float32{1, 0}, nil)}}); err != nil {
		t.Fatal(err)
	}
	if n := confCount(t, c, name, nil); n != 0 {
		t.Fatalf("visible before the delay: %d", n)
	}
	confEventually(t, "delayed write applied", func() bool { return confCount(t, c, name, nil) == 1 })
}
