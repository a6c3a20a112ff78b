package pipeline_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// BenchmarkPipelineNullSinks measures the pipeline's own cost: records
// pre-produced (about 4.5 KB sample events of 384 dimensions, uncompressed),
// consumed by a group member through fetch, decode and validate, batching,
// the fold, null stores and the offset commit. Each iteration consumes the
// whole topic with a fresh group.
//
// records/s is wall-clock; records/cpu-s divides by the process's CPU time
// (user+system) over the same span, so a machine shared with other work does
// not distort it. Against kfake that CPU includes the in-process broker, a
// conservative figure; against the real Kafka of
// RAGSTREAM_TEST_KAFKA_BROKERS (a separate process) it is the consumer's
// alone. Run it with -cpu 1:
//
//	go test ./pipeline -run '^$' -bench PipelineNullSinks -cpu 1 -benchtime 5x
func BenchmarkPipelineNullSinks(b *testing.B) {
	b.Run("kfake", func(b *testing.B) {
		topic := uniq("bench")
		benchConsume(b, newKfake(b, topic, benchParts), topic)
	})
	b.Run("kafka", func(b *testing.B) {
		topic := uniq("ragstream-bench")
		benchConsume(b, newRealKafka(b, topic, benchParts), topic)
	})
}

const benchParts = 4

func benchConsume(b *testing.B, cl *cluster, topic string) {
	const (
		n     = 20_000
		parts = benchParts
		dims  = 384
	)
	gen := sample.Generate(n, sample.DefaultOptions())
	recs := make([]*kgo.Record, len(gen))
	var bytes int
	for i, g := range gen {
		// Keyed records of one chunk must share a partition for the fold
		// to mean anything; the sample keys are tenant/id, so route by key.
		r := &kgo.Record{Topic: topic, Key: g.Key, Value: g.Value, Partition: int32(i % parts)}
		if r.Key != nil {
			r.Partition = int32(fnv32(r.Key) % parts)
		}
		for _, h := range g.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader(h))
		}
		recs[i] = r
		bytes += len(g.Key) + len(g.Value)
	}
	cl.produceUncompressed(b, recs...)
	want := ends(recs)

	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		total += consumeAll(b, cl, topic, want, dims)
		cpu += cpuTime() - c0
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(bytes/n), "B/record")
}

// consumeAll runs one consumer in a fresh group until every partition is
// committed to its end, and returns how long that took.
func consumeAll(b *testing.B, cl *cluster, topic string, want map[int32]int64, dims int) time.Duration {
	var mu sync.Mutex
	left := len(want)
	done := make(chan struct{})
	hooks := pipeline.Hooks{Committed: func(s pipeline.CommitStats) {
		mu.Lock()
		defer mu.Unlock()
		if s.Offset == want[s.Partition] {
			if left--; left == 0 {
				close(done)
			}
		}
	}}
	o := pipeline.Options{
		Group:  uniq("bench"),
		Topics: []string{topic},
		Limits: event.DefaultLimits(dims),
	}
	c, err := pipeline.New(o, []kgo.Opt{kgo.SeedBrokers(cl.addrs...)},
		pipelinetest.NullAuthority{}, pipelinetest.NullSink{}, nil, zerolog.Nop(), hooks)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	began := time.Now()
	go func() { runErr <- c.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("topic not consumed within 5 minutes")
	}
	took := time.Since(began)
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	return took
}

// produceUncompressed is produce without compression, so that the
// benchmark measures the pipeline rather than snappy.
func (c *cluster) produceUncompressed(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
