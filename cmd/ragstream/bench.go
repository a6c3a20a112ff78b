package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// `ragstream bench e2e` measures the whole worker against real services:
// events are produced to a fresh topic before the worker starts, a
// `ragstream run` child process (the same binary) consumes them into Neo4j
// and Qdrant, and the bench watches the group's committed offsets. The
// worker is a separate process so that its CPU time and peak RSS are its
// own: the Qdrant stand-in, the producer and the offset polling live in the
// bench process. docs/benchmarks.md explains every figure.

const benchUsage = `usage: ragstream bench e2e [flags]      end-to-end events/s, latency, CPU and RSS of a worker
       ragstream bench worker [run flags]  the worker with a null Neo4j authority (started by e2e --null-neo4j)`

func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, benchUsage)
		return usagef("want a mode: e2e or worker")
	}
	switch args[0] {
	case "e2e":
		return runBenchE2E(args[1:], stdout, stderr, nil)
	case "worker":
		return runBenchWorker(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, benchUsage)
		return errHelp
	default:
		fmt.Fprintln(stderr, benchUsage)
		return usagef("unknown mode %q (want e2e or worker)", args[0])
	}
}

// e2eOptions are the flags of `ragstream bench e2e`.
type e2eOptions struct {
	brokers     []string
	neo4jURI    string
	neo4jTO     time.Duration
	qdrantAddr  string
	batches     []int
	events      int
	partitions  int
	dims        int
	tenants     int
	latencyFor  time.Duration
	latencyRate float64
	nullNeo4j   bool
	workerProcs int
	timeout     time.Duration
	keep        bool
	logDir      string
	configFile  string
	sets        []string
	seed        uint64
}

func parseBenchE2E(args []string, stderr io.Writer) (e2eOptions, error) {
	fs := flag.NewFlagSet("bench e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o e2eOptions
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&o.neo4jURI, "neo4j-uri", "bolt://127.0.0.1:7687", "Neo4j Bolt URI (user and password come from RAGSTREAM_NEO4J__* as for run); --null-neo4j needs it too, for start-up")
	fs.DurationVar(&o.neo4jTO, "neo4j-timeout", time.Minute, "neo4j.timeout of the worker, and a fifth of its pipeline.retry.max_elapsed (at least 30s):\nthe ceilings write without a timeout, and a batch of thousands of events on a busy machine\noutlasts the defaults (5s, 30s)")
	fs.StringVar(&o.qdrantAddr, "qdrant-addr", "", "Qdrant gRPC host:port; empty starts the in-process stand-in in the bench process (never in the worker's)")
	batches := fs.String("batch", "1000", "comma-separated batch sizes (pipeline.batch.max_records); one run each")
	fs.IntVar(&o.events, "events", 0, "events pre-produced per run; 0 means max(20000, 6 × partitions × batch)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of each run's fresh topic")
	fs.IntVar(&o.dims, "dims", 384, "vector length (qdrant.vector_size of the worker)")
	fs.IntVar(&o.tenants, "tenants", 4, "tenants per 20000 events: each tenant holds about 20000/tenants chunks")
	fs.DurationVar(&o.latencyFor, "latency-duration", 20*time.Second, "how long the latency phase produces; 0 skips it")
	fs.Float64Var(&o.latencyRate, "latency-rate", 0, "events/s of the latency phase; 0 means half the measured rate")
	fs.BoolVar(&o.nullNeo4j, "null-neo4j", false, "run the worker with a null authority instead of the Neo4j sink (ragstream bench worker)")
	fs.IntVar(&o.workerProcs, "worker-procs", 1, "GOMAXPROCS of the worker: 1 measures a replica with one core of its own, as\ncompose.yaml deploys it (GOMAXPROCS=1); 0 leaves it to Go (every core, or a container's\nCPU limit but at least 2, which spends more CPU per event)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a run whose events are not all committed by then")
	fs.BoolVar(&o.keep, "keep", false, "keep each run's topic, group, collection and Neo4j tenants")
	fs.StringVar(&o.logDir, "log-dir", "", "directory for the workers' logs; empty means a temporary one")
	fs.StringVar(&o.configFile, "config", "", "YAML configuration file passed to the worker")
	fs.Var((*setFlags)(&o.sets), "set", "key=value passed to the worker (repeatable); wins over what the bench sets")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the sample events")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ragstream bench e2e --brokers B --neo4j-uri U [--batch 100,1000,5000] [flags]")
		fmt.Fprintln(stderr, "pre-produces sample events (1 chunk, 3 entities, 2 relations each) to a fresh topic, runs")
		fmt.Fprintln(stderr, "`ragstream run` as a child process until every event is committed, then produces at half")
		fmt.Fprintln(stderr, "that rate to measure latency; prints a table and one JSON line per run")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	var problems []string
	o.brokers = splitComma(*brokers)
	if len(o.brokers) == 0 {
		problems = append(problems, "--brokers: empty")
	}
	if o.neo4jURI == "" {
		problems = append(problems, "--neo4j-uri: empty")
	}
	if o.qdrantAddr != "" {
		if _, _, err := net.SplitHostPort(o.qdrantAddr); err != nil {
			problems = append(problems, fmt.Sprintf("--qdrant-addr: %v", err))
		}
	}
	for _, s := range splitComma(*batches) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			problems = append(problems, fmt.Sprintf("--batch: %q is not a positive whole number", s))
			continue
		}
		o.batches = append(o.batches, n)
	}
	if len(o.batches) == 0 && !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, "--batch") }) {
		problems = append(problems, "--batch: empty")
	}
	if o.events < 0 {
		problems = append(problems, fmt.Sprintf("--events: must not be negative, got %d", o.events))
	}
	if o.partitions < 1 {
		problems = append(problems, fmt.Sprintf("--partitions: must be at least 1, got %d", o.partitions))
	}
	if o.dims < 1 || o.dims > 65536 {
		problems = append(problems, fmt.Sprintf("--dims: must be in [1, 65536], got %d", o.dims))
	}
	if o.tenants < 1 || o.tenants > 1000 {
		problems = append(problems, fmt.Sprintf("--tenants: must be in [1, 1000], got %d", o.tenants))
	}
	if o.latencyFor < 0 {
		problems = append(problems, fmt.Sprintf("--latency-duration: must not be negative, got %s", o.latencyFor))
	}
	if o.latencyRate < 0 {
		problems = append(problems, fmt.Sprintf("--latency-rate: must not be negative, got %g", o.latencyRate))
	}
	if o.workerProcs < 0 {
		problems = append(problems, fmt.Sprintf("--worker-procs: must not be negative, got %d", o.workerProcs))
	}
	if o.neo4jTO <= 0 {
		problems = append(problems, fmt.Sprintf("--neo4j-timeout: must be positive, got %s", o.neo4jTO))
	}
	if o.timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout: must be positive, got %s", o.timeout))
	}
	if len(problems) > 0 {
		return o, usagef("%s", strings.Join(problems, "\n  "))
	}
	return o, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// e2eResult is one run's figures: the JSON line `bench e2e` prints.
type e2eResult struct {
	Bench      string `json:"bench"`
	Authority  string `json:"authority"`
	Batch      int    `json:"batch"`
	Events     int    `json:"events"`
	Partitions int    `json:"partitions"`
	// WorkerProcs is the worker's GOMAXPROCS; 0 means Go's default.
	WorkerProcs int `json:"worker_procs"`
	// Seconds runs from the worker's group assignment to the last event
	// committed; EventsPerSec is Events over it.
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	// StartupSec is from the worker's exec to its group assignment.
	StartupSec float64 `json:"startup_s"`
	// CPUMicros is the worker's user+system CPU time over Seconds, per event.
	CPUMicros float64 `json:"cpu_us_per_event"`
	// RSSPeakMiB is the worker's VmHWM after the throughput phase, and
	// RSSPeakEndMiB after the latency phase.
	RSSPeakMiB    float64 `json:"rss_peak_mib"`
	RSSPeakEndMiB float64 `json:"rss_peak_end_mib"`
	// The latency phase: events produced at LatencyRate, each timed from
	// the Produce call to the first poll that saw its offset committed.
	LatencyRate   float64 `json:"latency_rate"`
	LatencyEvents int     `json:"latency_events"`
	LatencyP50ms  float64 `json:"latency_p50_ms"`
	LatencyP99ms  float64 `json:"latency_p99_ms"`
	LatencyMaxms  float64 `json:"latency_max_ms"`
	// StoreCalls counts the worker's store calls during the throughput
	// phase (ragstream_sink_duration_seconds observations), StoreErrors
	// those that failed (a result other than ok), and Retries the retried
	// ones (ragstream_sink_retries_total): timeouts, deadlocks.
	StoreCalls  int `json:"store_calls"`
	StoreErrors int `json:"store_errors"`
	Retries     int `json:"retries"`
	// LatencyCPUMicros is the worker's CPU per event during the latency phase.
	LatencyCPUMicros float64 `json:"latency_cpu_us_per_event"`
	// LoadAvg is the machine's 1, 5 and 15 minute load average at the end of
	// the throughput phase: the machine may be shared.
	LoadAvg      [3]float64 `json:"loadavg"`
	Topic        string     `json:"topic"`
	Collection   string     `json:"collection"`
	TenantPrefix string     `json:"tenant_prefix"`
	WorkerLog    string     `json:"worker_log"`
}

// benchEnv is what one `bench e2e` invocation shares between its runs.
type benchEnv struct {
	o      e2eOptions
	stdout io.Writer
	prog   io.Writer // progress lines
	kcl    *kgo.Client
	adm    *kadm.Client
	qdrant string // the Qdrant address the workers use
	qcl    *qc.Client
	// workerCmd starts a worker: the executable and the arguments before
	// its subcommand.
	workerCmd []string
	logDir    string
}

// runBenchE2E runs `bench e2e`. workerCmd nil means this executable; tests
// pass their own binary's helper-process command line.
func runBenchE2E(args []string, stdout, stderr io.Writer, workerCmd []string) error {
	o, err := parseBenchE2E(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return fmt.Errorf("bench e2e reads the worker's CPU time and RSS from /proc (Linux): %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := &benchEnv{o: o, stdout: stdout, prog: stderr, workerCmd: workerCmd, logDir: o.logDir}
	// Check every run's worker configuration before touching a service;
	// the Qdrant address is a placeholder until the stand-in listens.
	env.qdrant = cmp.Or(o.qdrantAddr, "127.0.0.1:6334")
	for _, b := range o.batches {
		if _, err := env.workerEnviron("ragstream-bench", "bench", b, "127.0.0.1:0"); err != nil {
			return err
		}
	}
	if env.workerCmd == nil {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this executable to start the worker: %w", err)
		}
		env.workerCmd = []string{exe}
	}
	if env.logDir == "" {
		env.logDir, err = os.MkdirTemp("", "ragstream-bench-")
		if err != nil {
			return err
		}
	} else if err := os.MkdirAll(env.logDir, 0o755); err != nil {
		return fmt.Errorf("--log-dir: %w", err)
	}
	env.kcl, err = kgo.NewClient(kgo.SeedBrokers(o.brokers...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer env.kcl.Close()
	env.adm = kadm.NewClient(env.kcl)

	env.qdrant = o.qdrantAddr
	where := "Qdrant " + o.qdrantAddr
	if env.qdrant == "" {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("qdrant stand-in: %w", err)
		}
		srv := qdranttest.New()
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
		env.qdrant = lis.Addr().String()
		where = "Qdrant stand-in " + env.qdrant + " (in the bench process)"
	}
	host, portStr, _ := net.SplitHostPort(env.qdrant)
	port, _ := strconv.Atoi(portStr)
	env.qcl, err = qc.NewClient(&qc.Config{Host: host, Port: port, SkipCompatibilityCheck: true})
	if err != nil {
		return fmt.Errorf("qdrant client: %w", err)
	}
	defer env.qcl.Close()

	authority := "Neo4j " + o.neo4jURI
	if o.nullNeo4j {
		authority = "null authority (Neo4j sink swapped out)"
	}
	procs := "GOMAXPROCS left to Go"
	if o.workerProcs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS %d", o.workerProcs)
	}
	fmt.Fprintf(stdout, "ragstream bench e2e: Kafka %s, %s, %s; %d partitions, %d dims; worker %s, logs in %s\n",
		strings.Join(o.brokers, ","), authority, where, o.partitions, o.dims, procs, env.logDir)

	var results []e2eResult
	var errs []error
	for _, batch := range o.batches {
		r, err := env.run(ctx, batch)
		if err != nil {
			errs = append(errs, fmt.Errorf("batch %d: %w", batch, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, r)
	}
	printE2E(stdout, results)
	return errors.Join(errs...)
}

// printE2E prints the table and then one JSON line per run.
func printE2E(w io.Writer, results []e2eResult) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "authority\tbatch\tevents\tevents/s\tstore calls\tfailed\tretried\tstartup s\tCPU µs/event\tpeak RSS MiB\tlatency at events/s\tp50 ms\tp99 ms\tmax ms\tload avg\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%d\t%d\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t\n",
			r.Authority, r.Batch, r.Events, r.EventsPerSec, r.StoreCalls, r.StoreErrors, r.Retries, r.StartupSec, r.CPUMicros, r.RSSPeakEndMiB,
			r.LatencyRate, r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms, r.LoadAvg[0])
	}
	_ = tw.Flush()
	for _, r := range results {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
	}
}

// tenantGroup is how many events share one group of tenants: the Neo4j
// sink benchmark writes its batches for 4 tenants per run, so each tenant
// holds a few thousand chunks there too, and relationship sources lists
// (which grow with the chunks per tenant) stay of comparable length.
const tenantGroup = 20000

// run is one batch size: fresh topic, group, collection and tenants.
func (e *benchEnv) run(ctx context.Context, batch int) (res e2eResult, err error) {
	o := e.o
	n := o.events
	if n == 0 {
		// Six batches per partition at least: the last batch of each
		// partition is a partial one, and with two or three per partition
		// those tails, not the steady state, set the rate.
		n = max(20000, 6*o.partitions*batch)
	}
	id := fmt.Sprintf("%08x", rand.Uint32())
	topic := fmt.Sprintf("ragstream-bench-%s-b%d", id, batch)
	coll := fmt.Sprintf("bench_%s_b%d", id, batch)
	prefix := "bench-" + id
	res = e2eResult{Bench: "e2e", Authority: "neo4j", Batch: batch, Events: n, Partitions: o.partitions, WorkerProcs: o.workerProcs,
		Topic: topic, Collection: coll, TenantPrefix: prefix}
	if o.nullNeo4j {
		res.Authority = "null"
	}
	fmt.Fprintf(e.prog, "bench: batch %d: topic %s, %d events\n", batch, topic, n)

	if err := ensureTopic(ctx, e.adm, topic, o.partitions); err != nil {
		return res, err
	}
	if !o.keep {
		defer e.cleanup(topic, coll, prefix)
	}

	// The backlog: produced before the worker starts, so the producer's
	// work does not overlap the measurement.
	p0 := time.Now()
	if err := e.produceBacklog(ctx, topic, prefix, n); err != nil {
		return res, err
	}
	fmt.Fprintf(e.prog, "bench: produced %d events in %.1fs\n", n, time.Since(p0).Seconds())
	ends, err := e.endOffsets(ctx, topic)
	if err != nil {
		return res, err
	}

	w, err := e.startWorker(topic, coll, batch)
	if err != nil {
		return res, err
	}
	res.WorkerLog = w.logPath
	defer func() {
		if serr := w.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	t0, err := e.waitAssigned(ctx, w, topic, o.partitions)
	if err != nil {
		return res, err
	}
	res.StartupSec = t0.Sub(w.started).Seconds()
	cpu0, err := procCPU(w.pid())
	if err != nil {
		return res, err
	}
	tEnd, err := e.waitCommitted(ctx, w, topic, func() map[int32]int64 { return ends }, 20*time.Millisecond, nil)
	if err != nil {
		return res, err
	}
	cpu1, err := procCPU(w.pid())
	if err != nil {
		return res, err
	}
	res.Seconds = tEnd.Sub(t0).Seconds()
	res.EventsPerSec = float64(n) / res.Seconds
	res.CPUMicros = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	hwm, err := procHWM(w.pid())
	if err != nil {
		return res, err
	}
	res.RSSPeakMiB, res.RSSPeakEndMiB = hwm, hwm
	if res.StoreCalls, res.StoreErrors, res.Retries, err = w.storeCalls(ctx); err != nil {
		fmt.Fprintf(e.prog, "bench: warning: %v\n", err)
	}
	res.LoadAvg = loadAvg()
	fmt.Fprintf(e.prog, "bench: %d events committed in %.2fs: %.0f events/s, %.1f µs CPU/event, peak RSS %.0f MiB, %d store calls, %d failed, %d retried\n",
		n, res.Seconds, res.EventsPerSec, res.CPUMicros, hwm, res.StoreCalls, res.StoreErrors, res.Retries)

	if o.latencyFor > 0 {
		rate := o.latencyRate
		if rate == 0 {
			rate = res.EventsPerSec / 2
		}
		if err := e.latency(ctx, w, topic, prefix, rate, &res); err != nil {
			return res, err
		}
		// VmHWM is kept from lazily synced per-thread counters and may read
		// a little lower later; a peak only grows.
		end, err := procHWM(w.pid())
		if err != nil {
			return res, err
		}
		res.RSSPeakEndMiB = max(end, hwm)
	}
	return res, nil
}

// produceBacklog produces n sample events, clean new chunks, in groups of
// tenantGroup events with tenants of their own.
func (e *benchEnv) produceBacklog(ctx context.Context, topic, prefix string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.o.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(20000))
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer cl.Close()
	for g := 0; g*tenantGroup < n; g++ {
		recs := sample.Generate(min(tenantGroup, n-g*tenantGroup), sample.Options{
			Seed: e.o.seed + uint64(g), Dims: e.o.dims, Tenants: tenants(fmt.Sprintf("%s-g%d", prefix, g), e.o.tenants)})
		var firstErr error
		var mu sync.Mutex
		for i := range recs {
			cl.Produce(ctx, benchRecord(&recs[i]), func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		if firstErr != nil {
			return fmt.Errorf("produce: %w", firstErr)
		}
	}
	return nil
}

func tenants(prefix string, n int) []string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ts
}

func benchRecord(r *sample.Record) *kgo.Record {
	kr := &kgo.Record{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader(h))
	}
	return kr
}

func (e *benchEnv) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	lo, err := e.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	lo.Each(func(l kadm.ListedOffset) { ends[l.Partition] = l.Offset })
	return ends, nil
}

// waitAssigned waits until the worker's group is stable with every
// partition of the topic assigned, and returns when it saw that.
func (e *benchEnv) waitAssigned(ctx context.Context, w *benchWorker, topic string, partitions int) (time.Time, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("worker did not join group %s: %w", topic, ctx.Err())
		case <-w.exited:
			return time.Time{}, w.exitError()
		case <-t.C:
		}
		ds, err := e.adm.DescribeGroups(ctx, topic)
		if err != nil {
			continue
		}
		g := ds[topic]
		if g.Err == nil && g.State == "Stable" && len(g.AssignedPartitions()[topic]) == partitions {
			return time.Now(), nil
		}
	}
}

// commitObs is the committed offset of a partition as first seen at a time.
type commitObs struct {
	at     time.Time
	offset int64
}

// waitCommitted polls the group's committed offsets every interval until
// every partition is committed up to the offsets target returns (nil: not
// known yet, keep polling), and returns when it saw that. When obs is not
// nil, every change of a partition's committed offset is appended to
// obs[partition].
func (e *benchEnv) waitCommitted(ctx context.Context, w *benchWorker, topic string, target func() map[int32]int64,
	interval time.Duration, obs map[int32][]commitObs) (time.Time, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last kadm.OffsetResponses
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("group %s: waiting for commits: %w (last committed %s)", topic, ctx.Err(), describeOffsets(last, topic))
		case <-w.exited:
			return time.Time{}, w.exitError()
		case <-t.C:
		}
		resp, err := e.adm.FetchOffsets(ctx, topic)
		now := time.Now()
		if err != nil {
			continue
		}
		last = resp
		committed := func(p int32) int64 {
			if r, ok := resp.Lookup(topic, p); ok && r.Err == nil && r.At > 0 {
				return r.At
			}
			return 0
		}
		for p, l := range obs {
			if at := committed(p); len(l) == 0 || l[len(l)-1].offset != at {
				obs[p] = append(l, commitObs{now, at})
			}
		}
		ends := target()
		if ends == nil {
			continue
		}
		done := true
		for p, end := range ends {
			if committed(p) < end {
				done = false
				break
			}
		}
		if done {
			return now, nil
		}
	}
}

func describeOffsets(r kadm.OffsetResponses, topic string) string {
	var parts []string
	for _, o := range r.Sorted() {
		if o.Topic == topic {
			parts = append(parts, fmt.Sprintf("%d:%d", o.Partition, o.At))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " ")
}

// stopPoller ends the latency phase's poller after a failure: it is given
// end offsets that are already committed, so its next poll returns.
func stopPoller(final *atomic.Pointer[map[int32]int64], wait func() error) error {
	none := map[int32]int64{}
	final.Store(&none)
	if err := wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// produced is one latency-phase record: when it was handed to the producer
// and where it landed.
type produced struct {
	at        time.Time
	partition int32
	offset    int64
}

// latency produces at rate for the configured duration while the worker
// runs, and times each record from its Produce call to the first poll of
// the committed offsets (every 5 ms) that covers it.
func (e *benchEnv) latency(ctx context.Context, w *benchWorker, topic, prefix string, rate float64, res *e2eResult) error {
	o := e.o
	n := max(1, int(math.Round(rate*o.latencyFor.Seconds())))
	res.LatencyRate = rate
	fmt.Fprintf(e.prog, "bench: latency phase: %d events at %.0f events/s\n", n, rate)
	before, err := e.endOffsets(ctx, topic)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(max(20000, int(rate))))
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer cl.Close()

	// The poller records every change of the committed offsets from
	// before the first record until the final end offsets, known once the
	// producer has flushed, are committed.
	obs := map[int32][]commitObs{}
	for p := range before {
		obs[p] = nil
	}
	var final atomic.Pointer[map[int32]int64]
	target := func() map[int32]int64 {
		if m := final.Load(); m != nil {
			return *m
		}
		return nil
	}
	pollDone := make(chan error, 1)
	var tDone time.Time
	go func() {
		var err error
		tDone, err = e.waitCommitted(ctx, w, topic, target, 5*time.Millisecond, obs)
		pollDone <- err
	}()
	waitPoller := func() error { return <-pollDone }

	recs := make([]produced, n)
	var mu sync.Mutex
	var firstErr error
	cpu0, err := procCPU(w.pid())
	if err != nil {
		return errors.Join(err, stopPoller(&final, waitPoller))
	}
	start := time.Now()
	for g := 0; g*tenantGroup < n; g++ {
		base := g * tenantGroup
		gen := sample.Generate(min(tenantGroup, n-base), sample.Options{
			Seed: o.seed + 1000 + uint64(g), Dims: o.dims, Tenants: tenants(fmt.Sprintf("%s-l%d", prefix, g), o.tenants)})
		for j := range gen {
			i := base + j
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return errors.Join(ctx.Err(), stopPoller(&final, waitPoller))
				}
			}
			recs[i].at = time.Now()
			cl.Produce(ctx, benchRecord(&gen[j]), func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = cmp.Or(firstErr, err)
					return
				}
				recs[i].partition, recs[i].offset = r.Partition, r.Offset
			})
		}
	}
	ferr := cl.Flush(ctx)
	mu.Lock()
	ferr = cmp.Or(ferr, firstErr)
	mu.Unlock()
	if ferr != nil {
		return errors.Join(fmt.Errorf("produce: %w", ferr), stopPoller(&final, waitPoller))
	}
	ends, err := e.endOffsets(ctx, topic)
	if err != nil {
		return errors.Join(err, stopPoller(&final, waitPoller))
	}
	final.Store(&ends)
	if err := waitPoller(); err != nil {
		return err
	}
	cpu1, err := procCPU(w.pid())
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, n)
	for _, r := range recs {
		l := obs[r.partition]
		k, _ := slices.BinarySearchFunc(l, r.offset+1, func(c commitObs, off int64) int {
			switch {
			case c.offset < off:
				return -1
			case c.offset > off:
				return 1
			}
			return 0
		})
		if k == len(l) {
			return fmt.Errorf("latency: record %d/%d never seen committed", r.partition, r.offset)
		}
		lat = append(lat, l[k].at.Sub(r.at))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.LatencyEvents = len(lat)
	res.LatencyP50ms = ms(lat[len(lat)/2])
	res.LatencyP99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	res.LatencyMaxms = ms(lat[len(lat)-1])
	res.LatencyCPUMicros = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	fmt.Fprintf(e.prog, "bench: latency at %.0f events/s over %.1fs: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		rate, tDone.Sub(start).Seconds(), res.LatencyP50ms, res.LatencyP99ms, res.LatencyMaxms)
	return nil
}

// cleanup removes what a run created, so a shared Kafka, Neo4j or Qdrant
// does not grow with every bench. Failures are reported, not fatal.
func (e *benchEnv) cleanup(topic, coll, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := e.adm.DeleteGroup(ctx, topic); err != nil {
		fmt.Fprintf(e.prog, "bench: warning: delete group %s: %v\n", topic, err)
	}
	if _, err := e.adm.DeleteTopic(ctx, topic); err != nil {
		fmt.Fprintf(e.prog, "bench: warning: delete topic %s: %v\n", topic, err)
	}
	if err := e.qcl.DeleteCollection(ctx, coll); err != nil {
		fmt.Fprintf(e.prog, "bench: warning: delete collection %s: %v\n", coll, err)
	}
	if e.o.nullNeo4j {
		return
	}
	if err := e.dropTenants(ctx, prefix); err != nil {
		fmt.Fprintf(e.prog, "bench: warning: delete Neo4j tenants %s-*: %v\n", prefix, err)
	}
}

// dropTenants deletes the run's graph in bounded transactions, with the
// worker's credentials.
func (e *benchEnv) dropTenants(ctx context.Context, prefix string) error {
	cfg, _, err := config.Load(config.LoadOptions{File: e.o.configFile, Sets: append([]string{"neo4j.uri=" + e.o.neo4jURI}, e.o.sets...), Environ: os.Environ()})
	if err != nil {
		return err
	}
	auth := neo4jdrv.NoAuth()
	if pw := cfg.Neo4j.Password.Reveal(); pw != "" {
		auth = neo4jdrv.BasicAuth(cfg.Neo4j.User, pw, "")
	}
	drv, err := neo4jdrv.NewDriverWithContext(cfg.Neo4j.URI, auth)
	if err != nil {
		return err
	}
	defer drv.Close(ctx)
	sess := drv.NewSession(ctx, neo4jdrv.SessionConfig{DatabaseName: cfg.Neo4j.Database})
	defer sess.Close(ctx)
	res, err := sess.Run(ctx, `
		MATCH (n:Chunk|Entity|ChunkTombstone) WHERE n.tenant STARTS WITH $p
		CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS`, map[string]any{"p": prefix + "-"})
	if err == nil {
		_, err = res.Consume(ctx)
	}
	return err
}

// benchWorker is a worker child process.
type benchWorker struct {
	cmd     *exec.Cmd
	admin   string // the admin port's host:port
	started time.Time
	logPath string
	log     *os.File
	exited  chan struct{}
	waitErr error // set before exited is closed
}

func (w *benchWorker) pid() int { return w.cmd.Process.Pid }

// startWorker starts `ragstream run` (or `ragstream bench worker` for
// --null-neo4j) on the run's topic, group and collection. The worker's
// configuration comes from this process's environment and --config, then
// the bench's own RAGSTREAM_* settings, then --set: it is validated here
// first, so a mistake is reported before anything starts.
func (e *benchEnv) startWorker(topic, coll string, batch int) (*benchWorker, error) {
	o := e.o
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	environ, err := e.workerEnviron(topic, coll, batch, admin)
	if err != nil {
		return nil, err
	}
	args := slices.Clone(e.workerCmd[1:])
	if o.nullNeo4j {
		args = append(args, "bench", "worker")
	} else {
		args = append(args, "run")
	}
	if o.configFile != "" {
		args = append(args, "--config", o.configFile)
	}
	for _, s := range o.sets {
		args = append(args, "--set", s)
	}
	logPath := filepath.Join(e.logDir, topic+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.workerCmd[0], args...)
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = logf, logf
	w := &benchWorker{cmd: cmd, admin: admin, logPath: logPath, log: logf, exited: make(chan struct{})}
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start worker %s: %w", e.workerCmd[0], err)
	}
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// workerEnviron returns the environment of a worker child: this process's,
// then the bench's RAGSTREAM_* settings for the run. It loads the
// configuration the child will load (with --config and --set), so that a
// mistake is reported before anything starts.
func (e *benchEnv) workerEnviron(topic, coll string, batch int, admin string) ([]string, error) {
	o := e.o
	// A batch must be able to hold max_records sample events (~4.8 KB each
	// at 384 dims): otherwise the byte limit, not the batch size under
	// test, closes the batches.
	maxBytes := max(8<<20, batch*sampleRecordBytes(o))
	settings := map[string]string{
		"KAFKA__BROKERS":               strings.Join(o.brokers, ","),
		"KAFKA__TOPICS":                topic,
		"KAFKA__GROUP":                 topic,
		"KAFKA__START_OFFSET":          "earliest",
		"QDRANT__ADDR":                 e.qdrant,
		"QDRANT__COLLECTION":           coll,
		"QDRANT__VECTOR_SIZE":          strconv.Itoa(o.dims),
		"NEO4J__URI":                   o.neo4jURI,
		"NEO4J__TIMEOUT":               o.neo4jTO.String(),
		"PIPELINE__RETRY__MAX_ELAPSED": max(30*time.Second, 5*o.neo4jTO).String(),
		"PIPELINE__BATCH__MAX_RECORDS": strconv.Itoa(batch),
		"PIPELINE__BATCH__MAX_BYTES":   strconv.Itoa(maxBytes),
		// The budget of all partitions: the default, or two such batches
		// when they are larger (one written, one ready).
		"PIPELINE__MAX_INFLIGHT_BYTES": strconv.Itoa(max(int(config.Default().Pipeline.MaxInflightBytes), 2*maxBytes)),
		"ADMIN__ADDR":                  admin,
		"LOG__LEVEL":                   "warn",
	}
	environ := os.Environ()
	for k, v := range settings {
		environ = append(environ, config.EnvPrefix+k+"="+v)
	}
	if o.workerProcs > 0 {
		environ = append(environ, "GOMAXPROCS="+strconv.Itoa(o.workerProcs))
	}
	environ = dedupEnv(environ)
	if _, _, err := config.Load(config.LoadOptions{File: o.configFile, Sets: o.sets, Environ: environ}); err != nil {
		return nil, usageError{fmt.Errorf("worker configuration:\n%w", err)}
	}
	return environ, nil
}

// sampleRecordBytes is what one sample event of the bench takes in a batch's
// byte count (key and value), at its largest: measured on a generated sample
// with tenant names as long as the bench's, plus a tenth to spare for ids
// and tenant numbers that run longer.
func sampleRecordBytes(o e2eOptions) int {
	recs := sample.Generate(2000, sample.Options{Seed: o.seed, Dims: o.dims,
		Tenants: tenants("bench-00000000-g0000", max(o.tenants, 1))})
	largest := 0
	for _, r := range recs {
		largest = max(largest, len(r.Key)+len(r.Value))
	}
	return largest + largest/10
}

// dedupEnv keeps the last value of each variable, as exec does, so that
// config.Load sees what the child will.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// exitError describes a worker that ended by itself, with its last log lines.
func (w *benchWorker) exitError() error {
	return fmt.Errorf("worker exited early (%v); last lines of %s:\n%s", w.waitErr, w.logPath, tailFile(w.logPath, 15))
}

// stop ends the worker as Kubernetes would (SIGTERM, then SIGKILL after a
// grace period) and reports a worker that did not stop cleanly.
func (w *benchWorker) stop() error {
	defer w.log.Close()
	select {
	case <-w.exited:
		return w.exitError()
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
		return fmt.Errorf("worker did not stop within 60s of SIGTERM; log %s", w.logPath)
	}
	if w.waitErr != nil {
		return fmt.Errorf("worker stopped with %v; last lines of %s:\n%s", w.waitErr, w.logPath, tailFile(w.logPath, 15))
	}
	return nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a 127.0.0.1 address no one listens on just now, for the
// worker's admin port, which the bench reads metrics from.
func freePort() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port for the worker's admin port: %w", err)
	}
	addr := lis.Addr().String()
	return addr, lis.Close()
}

// storeCalls reads from the worker's /metrics how many store calls it made
// and how many of them failed (ragstream_sink_duration_seconds observations,
// all and those whose result is not ok), and how many were retried
// (ragstream_sink_retries_total).
func (w *benchWorker) storeCalls(ctx context.Context) (calls, failed, retries int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.admin+"/metrics", nil)
	if err != nil {
		return 0, 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("worker metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("worker metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("worker metrics: %w", err)
	}
	const duration = "ragstream_sink_duration_seconds_count"
	calls, err1 := sumMetric(bytes.NewReader(body), duration, nil)
	failed, err2 := sumMetric(bytes.NewReader(body), duration, func(labels string) bool {
		return !strings.Contains(labels, `result="ok"`)
	})
	retries, err3 := sumMetric(bytes.NewReader(body), "ragstream_sink_retries_total", nil)
	return calls, failed, retries, errors.Join(err1, err2, err3)
}

// sumMetric sums the samples of one metric in the Prometheus text format
// whose label set (the text between the braces) keep accepts; nil keeps all.
func sumMetric(r io.Reader, name string, keep func(labels string) bool) (int, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, value := "", rest
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			labels, value = rest[1:max(1, end)], rest[end+1:]
		}
		if keep != nil && !keep(labels) {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("worker metrics: %q: %w", line, err)
		}
		sum += v
	}
	return int(sum), sc.Err()
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's own tick rate.
const userHZ = 100

// procCPU returns a process's user+system CPU time, all threads, from
// /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("worker CPU time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime, fields 14 and 15 of /proc/<pid>/stat;
// the command name (field 2) may hold spaces, so fields count from its
// closing parenthesis.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("worker CPU time: /proc stat without a command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("worker CPU time: /proc stat has %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("worker CPU time: %w", err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procHWM returns a process's peak resident set size (VmHWM) in MiB.
func procHWM(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("worker RSS: %w", err)
	}
	defer f.Close()
	return parseHWM(f)
}

func parseHWM(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("worker RSS: VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("worker RSS: no VmHWM in /proc status")
}

// loadAvg returns the 1, 5 and 15 minute load averages, zero when unknown.
func loadAvg() [3]float64 {
	var la [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return la
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 3 {
			break
		}
		la[i], _ = strconv.ParseFloat(f, 64)
	}
	return la
}

// runBenchWorker is `ragstream run` with the Neo4j sink swapped for a null
// authority (it folds every batch against an empty store and keeps
// nothing): the same configuration, clients, admin port, metrics and
// readiness, so `bench e2e --null-neo4j` shows what ragstream itself costs
// with real Kafka and Qdrant. Neo4j must still answer at start-up, as for
// run, since the rest of the wiring is run's.
func runBenchWorker(args []string, stdout, stderr io.Writer) error {
	cfg, log, err := workerCommand("bench worker", "ragstream bench worker --config FILE [--set key=value ...]",
		[]string{"runs the worker as `run` does, with a null authority instead of the Neo4j sink (for benchmarks)"},
		false, args, stdout, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w, err := newWorker(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return err
	}
	kopts, err := pipeline.KafkaOpts(cfg.Kafka)
	if err != nil {
		w.close()
		return err
	}
	hooks := pipelineHooks(w.metrics, func(ok bool) {
		if ok {
			w.ready.SetCondition("kafka_group", true, "")
		}
	})
	opts := pipeline.OptionsFromConfig(cfg)
	if cfg.Pipeline.MaxActiveBatches == 0 {
		// The default bound is one batch per Neo4j transaction turn plus
		// one ready; without Neo4j there is no turn to wait for, and the
		// partitions decode and write to Qdrant side by side.
		opts.MaxActiveBatches = -1
	}
	w.consumer, err = pipeline.New(opts, kopts,
		timedAuthority{pipelinetest.NullAuthority{}, w.metrics}, timedSink{w.qdrant, w.metrics}, nil, log, hooks)
	if err != nil {
		w.close()
		return err
	}
	log.Warn().Msg("bench worker: the Neo4j sink is replaced by a null authority; nothing is written to Neo4j")
	return w.run(ctx)
}
