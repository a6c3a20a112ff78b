package qdranttest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// TestConcurrentClients runs upserts (wait true and false), queries,
// scrolls, counts, gets and deletes from many goroutines; run with -race.
// Every answer must be well formed, and the final state must be what the
// writes say.
func TestConcurrentClients(t *testing.T) {
	s := qdranttest.Start(t)
	host, port := s.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, PoolSize: 4, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const dim = 16
	if err := c.CreateCollection(cx, &qdrant.CreateCollection{CollectionName: "race",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: dim, Distance: qdrant.Distance_Cosine})}); err != nil {
		t.Fatal(err)
	}
	vec := func(r *rand.Rand) []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = r.Float32() - 0.5
		}
		return v
	}
	const writers, readers, rounds = 6, 6, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < rounds; i++ {
				var pts []*qdrant.PointStruct
				for j := 0; j < 20; j++ {
					id := uint64(w*100000 + i*20 + j)
					pts = append(pts, &qdrant.PointStruct{Id: qdrant.NewIDNum(id), Vectors: qdrant.NewVectorsDense(vec(r)),
						Payload: qdrant.NewValueMap(map[string]any{"w": w, "i": i})})
				}
				if _, err := c.Upsert(cx, &qdrant.UpsertPoints{CollectionName: "race", Wait: qdrant.PtrOf(i%2 == 0), Points: pts}); err != nil {
					errs <- fmt.Errorf("upsert: %w", err)
					return
				}
				if i%5 == 4 { // delete the batch written two rounds ago
					_, err := c.Delete(cx, &qdrant.DeletePoints{CollectionName: "race", Wait: qdrant.PtrOf(true),
						Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: []*qdrant.Condition{
							qdrant.NewMatchInt("w", int64(w)), qdrant.NewMatchInt("i", int64(i-2))}})})
					if err != nil {
						errs <- fmt.Errorf("delete: %w", err)
						return
					}
				}
			}
		}(w)
	}
	for q := 0; q < readers; q++ {
		wg.Add(1)
		go func(q int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(q), 2))
			for i := 0; i < rounds; i++ {
				res, err := c.Query(cx, &qdrant.QueryPoints{CollectionName: "race", Query: qdrant.NewQueryDense(vec(r)),
					Filter: &qdrant.Filter{MustNot: []*qdrant.Condition{qdrant.NewMatchInt("w", int64(q))}}, WithPayload: qdrant.NewWithPayload(true)})
				if err != nil {
					errs <- fmt.Errorf("query: %w", err)
					return
				}
				for k := 1; k < len(res); k++ {
					if res[k].GetScore() > res[k-1].GetScore() {
						errs <- fmt.Errorf("query results out of order: %v", res)
						return
					}
				}
				if _, err := c.Scroll(cx, &qdrant.ScrollPoints{CollectionName: "race", Limit: qdrant.PtrOf(uint32(50))}); err != nil {
					errs <- fmt.Errorf("scroll: %w", err)
					return
				}
				if _, err := c.Count(cx, &qdrant.CountPoints{CollectionName: "race"}); err != nil {
					errs <- fmt.Errorf("count: %w", err)
					return
				}
				if _, err := c.Get(cx, &qdrant.GetPoints{CollectionName: "race", Ids: []*qdrant.PointId{qdrant.NewIDNum(uint64(i))}, WithVectors: qdrant.NewWithVectors(true)}); err != nil {
					errs <- fmt.Errorf("get: %w", err)
					return
				}
			}
		}(q)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A wait=true write is ordered after every earlier write, so once one
	// returns the whole history is applied: each writer keeps rounds less
	// the deleted ones (i = 2, 7, 12, ...).
	if _, err := c.Upsert(cx, &qdrant.UpsertPoints{CollectionName: "race", Wait: qdrant.PtrOf(true),
		Points: []*qdrant.PointStruct{{Id: qdrant.NewIDNum(999999999), Vectors: qdrant.NewVectorsDense(make([]float32, dim))}}}); err != nil {
		t.Fatal(err)
	}
	n, err := c.Count(cx, &qdrant.CountPoints{CollectionName: "race"})
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(writers*(rounds-rounds/5)*20 + 1)
	if n != want {
		t.Fatalf("count %d, want %d", n, want)
	}
}

// TestLargeMessages: requests and responses far over gRPC's 4 MiB default
// go through, as they do with Qdrant.
func TestLargeMessages(t *testing.T) {
	s := qdranttest.Start(t)
	host, port := s.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, PoolSize: 1, SkipCompatibilityCheck: true,
		GrpcOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cx := ctx(t)
	if err := c.CreateCollection(cx, &qdrant.CreateCollection{CollectionName: "big",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 1024, Distance: qdrant.Distance_Dot})}); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", 4096)
	var pts []*qdrant.PointStruct
	for i := 0; i < 2000; i++ { // ~8 MiB of vectors and ~8 MiB of text
		pts = append(pts, &qdrant.PointStruct{Id: qdrant.NewIDNum(uint64(i)), Vectors: qdrant.NewVectorsDense(make([]float32, 1024)),
			Payload: qdrant.NewValueMap(map[string]any{"text": text})})
	}
	if _, err := c.Upsert(cx, &qdrant.UpsertPoints{CollectionName: "big", Wait: qdrant.PtrOf(true), Points: pts}); err != nil {
		t.Fatalf("16 MiB upsert: %v", err)
	}
	got, err := c.Scroll(cx, &qdrant.ScrollPoints{CollectionName: "big", Limit: qdrant.PtrOf(uint32(2000)), WithVectors: qdrant.NewWithVectors(true)})
	if err != nil || len(got) != 2000 {
		t.Fatalf("16 MiB scroll: %d points, %v", len(got), err)
	}
}

// TestKeepalivePolicy: the go-client pings an idle connection every 10 s;
// a server with gRPC's default policy would close it with GOAWAY
// too_many_pings after a few pings. The connection must survive.
func TestKeepalivePolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 35s")
	}
	t.Parallel()
	s := qdranttest.Start(t)
	host, port := s.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, PoolSize: 1, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListCollections(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// A GOAWAY would move the connection out of READY (the client would
	// reconnect quietly on the next call, so a later call proves nothing).
	// gRPC hands the balancer's picker to RPCs before it publishes the
	// channel's state, so right after a call the state may still read
	// CONNECTING for a moment: wait (bounded) for READY.
	conn := c.GetConnection()
	ready, cancelReady := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelReady()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ready, st) {
			t.Fatalf("connection %s 5 s after a successful call, before idling", st)
		}
	}
	idle, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	if conn.WaitForStateChange(idle, connectivity.Ready) {
		t.Fatalf("connection went %s while idle with keepalive pings: the server closed it (GOAWAY too_many_pings)", conn.GetState())
	}
}
