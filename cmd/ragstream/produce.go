package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
)

// produceOptions are the flags of `ragstream produce`.
type produceOptions struct {
	brokers    []string
	topic      string
	n          int
	rate       float64
	seed       uint64
	dims       int
	partitions int
	clean      bool
}

func parseProduce(args []string, stderr io.Writer) (produceOptions, error) {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	o := produceOptions{}
	fs.StringVar(&o.topic, "topic", "events", "topic to produce to (created if absent)")
	fs.IntVar(&o.n, "sample", 1000, "number of sample events to publish")
	fs.Float64Var(&o.rate, "rate", 0, "events per second; 0 publishes as fast as the broker takes them")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the sample stream: the same seed gives the same events")
	fs.IntVar(&o.dims, "dims", 384, "vector length (must equal the worker's qdrant.vector_size)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the topic when it has to be created")
	fs.BoolVar(&o.clean, "clean", false, "only new chunks: no updates, stale re-sends, deletes or tombstones")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ragstream produce --brokers B --topic T --sample N [--rate R]")
		fmt.Fprintln(stderr, "publishes realistic sample events (mixed tenants, unicode text, entities, relations)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	var problems []string
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.brokers = append(o.brokers, b)
		}
	}
	if len(o.brokers) == 0 {
		problems = append(problems, "--brokers: empty")
	}
	if o.topic == "" {
		problems = append(problems, "--topic: empty")
	}
	if o.n < 1 {
		problems = append(problems, fmt.Sprintf("--sample: must be at least 1, got %d", o.n))
	}
	if o.rate < 0 {
		problems = append(problems, fmt.Sprintf("--rate: must not be negative, got %g", o.rate))
	}
	if o.dims < 1 || o.dims > 65536 {
		problems = append(problems, fmt.Sprintf("--dims: must be in [1, 65536], got %d", o.dims))
	}
	if o.partitions < 1 {
		problems = append(problems, fmt.Sprintf("--partitions: must be at least 1, got %d", o.partitions))
	}
	if len(problems) > 0 {
		return o, usagef("%s", strings.Join(problems, "\n  "))
	}
	return o, nil
}

func runProduce(args []string, stdout, stderr io.Writer) error {
	o, err := parseProduce(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := produce(ctx, o, stderr)
	fmt.Fprintf(stdout, "produced %d events to %s\n", n, o.topic)
	return err
}

// produce publishes o.n sample events and returns how many the broker
// acknowledged. It prints a progress line to progress about once a second.
func produce(ctx context.Context, o produceOptions, progress io.Writer) (int64, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.brokers...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(20000),
	)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := ensureTopic(ctx, kadm.NewClient(cl), o.topic, o.partitions); err != nil {
		return 0, err
	}

	opt := sample.DefaultOptions()
	if o.clean {
		opt = sample.Options{}
	}
	opt.Seed, opt.Dims = o.seed, o.dims
	recs := sample.Generate(o.n, opt)

	var acked atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	lastReport := start
	report := func(final bool) {
		el := time.Since(start).Seconds()
		fmt.Fprintf(progress, "\rproduce: %d/%d acknowledged (%.0f events/s)", acked.Load(), o.n, float64(acked.Load())/max(el, 1e-9))
		if final {
			fmt.Fprintln(progress)
		}
	}
	for i := range recs {
		if o.rate > 0 {
			due := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil || firstErr.Load() != nil {
			break
		}
		r := &recs[i]
		kr := &kgo.Record{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		cl.Produce(ctx, kr, func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			acked.Add(1)
		})
		if time.Since(lastReport) > time.Second {
			lastReport = time.Now()
			report(false)
		}
	}
	flushErr := cl.Flush(ctx)
	report(true)
	if p := firstErr.Load(); p != nil {
		return acked.Load(), fmt.Errorf("produce: %w", *p)
	}
	if flushErr != nil {
		return acked.Load(), fmt.Errorf("produce: flush: %w", flushErr)
	}
	return acked.Load(), ctx.Err()
}

// ensureTopic creates the topic with the given partitions when it does not
// exist; brokers without auto-creation (kfake, many production clusters)
// would otherwise refuse the records.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int) error {
	resp, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
