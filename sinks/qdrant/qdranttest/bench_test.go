//go:build unix

package qdranttest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"

	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// The figures of the issue: go-client over TCP, 384-dim Cosine.
//
//	go test -run '^$' -bench . -benchtime 100x ./sinks/qdrant/qdranttest/

const benchDim = 384

func benchClient(b *testing.B) *qdrant.Client {
	b.Helper()
	s := qdranttest.Start(b)
	host, port := s.HostPort()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, SkipCompatibilityCheck: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if err := c.CreateCollection(context.Background(), &qdrant.CreateCollection{CollectionName: "bench",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: benchDim, Distance: qdrant.Distance_Cosine})}); err != nil {
		b.Fatal(err)
	}
	return c
}

var benchText = strings.Repeat("lorem ipsum ", 25) // ~300 bytes, a typical chunk is longer; vectors dominate

func benchPoints(r *rand.Rand, from, n int) []*qdrant.PointStruct {
	pts := make([]*qdrant.PointStruct, n)
	for i := range pts {
		v := make([]float32, benchDim)
		for j := range v {
			v[j] = r.Float32() - 0.5
		}
		id := from + i
		pts[i] = &qdrant.PointStruct{Id: qdrant.NewIDNum(uint64(id)), Vectors: qdrant.NewVectorsDense(v),
			Payload: qdrant.NewValueMap(map[string]any{"tenant": fmt.Sprint("t", id%10), "doc_id": fmt.Sprint("doc-", id/10), "version": 1, "text": benchText})}
	}
	return pts
}

func load(b *testing.B, c *qdrant.Client, n int) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for from := 0; from < n; from += 1000 {
		if _, err := c.Upsert(context.Background(), &qdrant.UpsertPoints{CollectionName: "bench", Wait: qdrant.PtrOf(true), Points: benchPoints(r, from, min(1000, n-from))}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpsert reports points/s for wait=true upserts of one batch size.
func BenchmarkUpsert(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			c := benchClient(b)
			r := rand.New(rand.NewPCG(3, 4))
			// A few prepared batches, reused with fresh ids, keep the
			// benchmark's own heap small (a live copy of every point sent
			// would double the garbage collector's work).
			batches := make([][]*qdrant.PointStruct, 8)
			for i := range batches {
				batches[i] = benchPoints(r, 0, batch)
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pts := batches[i%len(batches)]
				for j, p := range pts {
					p.Id = qdrant.NewIDNum(uint64(i*batch + j))
				}
				if _, err := c.Upsert(context.Background(), &qdrant.UpsertPoints{CollectionName: "bench", Wait: qdrant.PtrOf(true), Points: pts}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "points/s")
			// CPU time of the whole process (go-client and stand-in) per
			// point: unlike points/s it does not depend on what else the
			// machine is running.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*batch), "cpu-us/point")
		})
	}
}

// BenchmarkUpsertParallel: wait=true batches of 1000 from 4 goroutines,
// as a sink with several partition workers sends them.
func BenchmarkUpsertParallel(b *testing.B) {
	c := benchClient(b)
	const batch = 1000
	var next atomic.Int64
	b.SetParallelism(2) // 2 x GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(next.Add(1)), 7))
		pts := benchPoints(r, 0, batch) // reused with fresh ids, as in BenchmarkUpsert
		for pb.Next() {
			from := next.Add(batch)
			for j, p := range pts {
				p.Id = qdrant.NewIDNum(uint64(from) + uint64(j))
			}
			if _, err := c.Upsert(context.Background(), &qdrant.UpsertPoints{CollectionName: "bench", Wait: qdrant.PtrOf(true), Points: pts}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkQuery reports the p50 and p99 latency of a top-10 query.
func BenchmarkQuery(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint("points=", n), func(b *testing.B) {
			c := benchClient(b)
			load(b, c, n)
			r := rand.New(rand.NewPCG(5, 6))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				q := make([]float32, benchDim)
				for j := range q {
					q[j] = r.Float32() - 0.5
				}
				start := time.Now()
				if _, err := c.Query(context.Background(), &qdrant.QueryPoints{CollectionName: "bench", Query: qdrant.NewQueryDense(q), WithPayload: qdrant.NewWithPayload(true)}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkMemoryPerPoint reports the heap the stand-in keeps per stored
// point (384 floats plus a four-field payload with ~300 bytes of text),
// measured once on 100k points whatever b.N is.
func BenchmarkMemoryPerPoint(b *testing.B) {
	const n = 100_000
	c := benchClient(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	load(b, c, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/point")
	for range b.N {
	}
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
