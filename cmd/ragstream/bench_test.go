package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// benchChildVar marks the process started by bench e2e in these tests: the
// test binary itself, running TestBenchHelperProcess, stands in for the
// ragstream binary, which go test does not build.
const benchChildVar = "RAGSTREAM_TEST_BENCH_CHILD"

// TestBenchHelperProcess is the worker child of the bench e2e tests, not a
// test of its own: it runs the subcommand after "--" and exits.
func TestBenchHelperProcess(t *testing.T) {
	if os.Getenv(benchChildVar) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	cmds := commands()
	code := exitOK
	if c, ok := cmds[args[0]]; !ok {
		fmt.Fprintf(os.Stderr, "bench helper: unknown command %q\n", args[0])
		code = exitUsage
	} else if err := c.run(args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench helper %s: %v\n", args[0], err)
		code = exitRuntime
	}
	os.Exit(code)
}

// benchWorkerCmd starts TestBenchHelperProcess; the child finds
// benchChildVar in the environment the bench passes on.
func benchWorkerCmd(t *testing.T) []string {
	t.Helper()
	t.Setenv(benchChildVar, "1")
	return []string{os.Args[0], "-test.run=^TestBenchHelperProcess$", "--"}
}

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", nil, "want a mode: e2e or worker"},
		{"unknown mode", []string{"frob"}, `unknown mode "frob"`},
		{"bad batch", []string{"e2e", "--batch", "100,x"}, `--batch: "x" is not a positive whole number`},
		{"zero batch", []string{"e2e", "--batch", "0"}, `--batch: "0" is not a positive whole number`},
		{"empty batch", []string{"e2e", "--batch", ","}, "--batch: empty"},
		{"negative events", []string{"e2e", "--events", "-1"}, "--events: must not be negative"},
		{"no brokers", []string{"e2e", "--brokers", " "}, "--brokers: empty"},
		{"no neo4j", []string{"e2e", "--neo4j-uri", ""}, "--neo4j-uri: empty"},
		{"bad qdrant", []string{"e2e", "--qdrant-addr", "nohost"}, "--qdrant-addr:"},
		{"partitions", []string{"e2e", "--partitions", "0"}, "--partitions: must be at least 1"},
		{"timeout", []string{"e2e", "--timeout", "0s"}, "--timeout: must be positive"},
		{"neo4j timeout", []string{"e2e", "--neo4j-timeout", "-1s"}, "--neo4j-timeout: must be positive"},
		{"rate", []string{"e2e", "--latency-rate", "-5"}, "--latency-rate: must not be negative"},
		{"worker procs", []string{"e2e", "--worker-procs", "-1"}, "--worker-procs: must not be negative"},
		{"extra argument", []string{"e2e", "now"}, `unexpected argument "now"`},
		// The worker's configuration is checked before any service is
		// touched: the brokers here do not exist.
		{"bad worker setting", []string{"e2e", "--brokers", "127.0.0.1:1", "--set", "pipeline.batch.linger=soon"}, "pipeline.batch.linger"},
		{"worker flag", []string{"worker", "--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := runBench(tt.args, &out, &errb)
			if !errors.As(err, new(usageError)) {
				t.Fatalf("got %v, want a usage error (exit 2)", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestWorkerProcs checks that --worker-procs reaches the worker's
// environment as GOMAXPROCS, after any GOMAXPROCS of the bench's own, and
// that 0 leaves the environment alone.
func TestWorkerProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "7")
	tests := []struct {
		name  string
		procs int
		want  string
	}{
		{"one core", 1, "1"},
		{"two cores", 2, "2"},
		{"left to Go", 0, "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseBenchE2E([]string{"--worker-procs", strconv.Itoa(tt.procs)}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			e := &benchEnv{o: o, qdrant: "127.0.0.1:6334"}
			env, err := e.workerEnviron("t", "c", 100, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("GOMAXPROCS in the worker's environment: %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
		wantErr    string
	}{
		{"plain", "4242 (ragstream) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0",
			3 * time.Second, ""},
		// The command name may hold spaces and parentheses.
		{"odd name", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0", 30 * time.Millisecond, ""},
		{"truncated", "7 (x) R 1 7", 0, "fields after the name"},
		{"no name", "garbage", 0, "without a command name"},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, "invalid syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseHWM(t *testing.T) {
	got, err := parseHWM(strings.NewReader("Name:\tragstream\nVmPeak:\t 900000 kB\nVmHWM:\t   102400 kB\nVmRSS:\t 51200 kB\n"))
	if err != nil || got != 100 {
		t.Fatalf("got %v MiB, %v; want 100", got, err)
	}
	if _, err := parseHWM(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("a status without VmHWM gave no error")
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP ragstream_sink_retries_total Retries of transient errors.
# TYPE ragstream_sink_retries_total counter
ragstream_sink_retries_total{sink="neo4j"} 12
ragstream_sink_retries_total{sink="qdrant",note="a } brace"} 3
ragstream_sink_retries_totally_else 100
ragstream_sink_up{sink="neo4j"} 1
ragstream_sink_duration_seconds_count{op="apply",result="ok",sink="neo4j"} 40
ragstream_sink_duration_seconds_count{op="apply",result="transient",sink="neo4j"} 2
ragstream_sink_duration_seconds_count{op="write",result="down",sink="qdrant"} 1
ragstream_plain 7
`
	notOK := func(l string) bool { return !strings.Contains(l, `result="ok"`) }
	tests := []struct {
		name string
		keep func(string) bool
		want int
	}{
		{"ragstream_sink_retries_total", nil, 15},
		{"ragstream_sink_duration_seconds_count", notOK, 3},
		{"ragstream_sink_duration_seconds_count", nil, 43},
		{"ragstream_plain", nil, 7},
		{"ragstream_absent_total", nil, 0},
	}
	for _, tt := range tests {
		got, err := sumMetric(strings.NewReader(text), tt.name, tt.keep)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := sumMetric(strings.NewReader("ragstream_x{a=\"b\"} NaNish\n"), "ragstream_x", nil); err == nil {
		t.Error("a sample that is not a number gave no error")
	}
}

// The procfs readers agree with what this process knows about itself.
func TestProcReadersOnSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no /proc (CI runs on Linux, where the bench reads it): %v", err)
		}
		t.Skip("no /proc")
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 0 || cpu > time.Hour {
		t.Fatalf("CPU time %v of this test process is implausible", cpu)
	}
	hwm, err := procHWM(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if hwm < 1 || hwm > 64<<10 {
		t.Fatalf("peak RSS %v MiB of this test process is implausible", hwm)
	}
}

// TestBenchE2E runs the bench against a worker child process for real:
// Neo4j (and, with the null authority, kfake) with the stand-in in the
// test process, and checks the figures it prints and that the stores hold
// every event it produced.
func TestBenchE2E(t *testing.T) {
	neo4jURI := testenv.Neo4jURI(t)
	tests := []struct {
		name      string
		null      bool
		brokers   func(t testing.TB) []string
		authority string
	}{
		{"neo4j authority, real Kafka", false, testenv.KafkaBrokers, "neo4j"},
		{"null authority, kfake", true, kfakeBrokers, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			brokers := tt.brokers(t)
			q := qdranttest.Start(t)
			args := []string{"e2e", "--brokers", strings.Join(brokers, ","), "--neo4j-uri", neo4jURI,
				"--qdrant-addr", q.Addr(), "--batch", "50,200", "--events", "1200", "--partitions", "3",
				"--dims", "16", "--latency-duration", "2s", "--timeout", "2m", "--keep", "--log-dir", t.TempDir()}
			if tt.null {
				args = append(args, "--null-neo4j")
			}
			var out, errb bytes.Buffer
			err := runBenchE2E(args[1:], &out, &errb, benchWorkerCmd(t))
			results := benchResults(t, out.String())
			for _, r := range results {
				t.Cleanup(func() { benchCleanup(t, brokers, neo4jURI, r) })
			}
			if err != nil {
				t.Fatalf("bench e2e: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
			}
			if strings.Contains(errb.String(), "warning") {
				t.Errorf("the bench warned:\n%s", errb.String())
			}
			if !strings.Contains(out.String(), "events/s") {
				t.Errorf("no table in the output:\n%s", out.String())
			}
			if len(results) != 2 {
				t.Fatalf("got %d JSON result lines, want 2:\n%s", len(results), out.String())
			}
			for i, r := range results {
				if want := []int{50, 200}[i]; r.Batch != want || r.Events != 1200 || r.Authority != tt.authority {
					t.Errorf("result %d: batch %d, events %d, authority %q; want %d, 1200, %q", i, r.Batch, r.Events, r.Authority, want, tt.authority)
				}
				if r.EventsPerSec <= 0 || r.Seconds <= 0 || r.CPUMicros <= 0 {
					t.Errorf("batch %d: rate %v over %vs, CPU %v µs/event: want positive figures", r.Batch, r.EventsPerSec, r.Seconds, r.CPUMicros)
				}
				// Each batch is at least one call of each store (the
				// null authority is timed too).
				if r.StoreCalls < 2*r.Events/r.Batch || r.StoreErrors != 0 {
					t.Errorf("batch %d: %d store calls, %d failed: want at least %d, none failed", r.Batch, r.StoreCalls, r.StoreErrors, 2*r.Events/r.Batch)
				}
				if r.RSSPeakMiB < 5 || r.RSSPeakEndMiB < r.RSSPeakMiB {
					t.Errorf("batch %d: peak RSS %v then %v MiB: implausible", r.Batch, r.RSSPeakMiB, r.RSSPeakEndMiB)
				}
				if r.LatencyEvents < 1 || r.LatencyP50ms <= 0 || r.LatencyP50ms > r.LatencyP99ms || r.LatencyP99ms > r.LatencyMaxms {
					t.Errorf("batch %d: latency %d events, p50 %v p99 %v max %v ms: want ordered positive figures",
						r.Batch, r.LatencyEvents, r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
				}
				want := r.Events + r.LatencyEvents
				if got := benchQdrantCount(t, q, r.Collection); got != want {
					t.Errorf("batch %d: collection %s holds %d points, want %d (every event produced)", r.Batch, r.Collection, got, want)
				}
				if tt.null {
					want = 0
				}
				if got := benchNeo4jChunks(t, neo4jURI, r.TenantPrefix); got != want {
					t.Errorf("batch %d: Neo4j holds %d chunks of tenants %s-*, want %d", r.Batch, got, r.TenantPrefix, want)
				}
			}
		})
	}
}

// Without --keep the bench removes what it created.
func TestBenchE2ECleansUp(t *testing.T) {
	neo4jURI := testenv.Neo4jURI(t)
	brokers := kfakeBrokers(t)
	q := qdranttest.Start(t)
	var out, errb bytes.Buffer
	err := runBenchE2E([]string{"--brokers", strings.Join(brokers, ","), "--neo4j-uri", neo4jURI,
		"--qdrant-addr", q.Addr(), "--batch", "100", "--events", "300", "--dims", "16",
		"--latency-duration", "0s", "--timeout", "2m"}, &out, &errb, benchWorkerCmd(t))
	results := benchResults(t, out.String())
	if err != nil || len(results) != 1 {
		t.Fatalf("bench e2e: %v, %d results\nstdout:\n%s\nstderr:\n%s", err, len(results), out.String(), errb.String())
	}
	r := results[0]
	if r.LatencyEvents != 0 {
		t.Errorf("latency phase ran with --latency-duration 0s: %d events", r.LatencyEvents)
	}
	if got := benchNeo4jChunks(t, neo4jURI, r.TenantPrefix); got != 0 {
		t.Errorf("Neo4j still holds %d chunks of tenants %s-*", got, r.TenantPrefix)
	}
	c := benchQdrantClient(t, q)
	if ok, err := c.CollectionExists(context.Background(), r.Collection); err != nil || ok {
		t.Errorf("collection %s still exists (%v)", r.Collection, err)
	}
	adm := benchAdmin(t, brokers)
	td, err := adm.ListTopics(context.Background(), r.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has(r.Topic) {
		t.Errorf("topic %s still exists", r.Topic)
	}
}

func kfakeBrokers(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func benchResults(t *testing.T, out string) []e2eResult {
	t.Helper()
	var rs []e2eResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, `{"bench":"e2e"`) {
			continue
		}
		var r e2eResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

func benchAdmin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func benchQdrantClient(t *testing.T, s *qdranttest.Server) *qc.Client {
	t.Helper()
	host, port := s.HostPort()
	c, err := qc.NewClient(&qc.Config{Host: host, Port: port, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func benchQdrantCount(t *testing.T, s *qdranttest.Server, coll string) int {
	t.Helper()
	n, err := benchQdrantClient(t, s).Count(context.Background(), &qc.CountPoints{CollectionName: coll, Exact: qc.PtrOf(true)})
	if err != nil {
		t.Fatalf("count points of %s: %v", coll, err)
	}
	return int(n)
}

func benchNeo4j(t *testing.T, uri string) neo4jdrv.DriverWithContext {
	t.Helper()
	drv, err := neo4jdrv.NewDriverWithContext(uri, neo4jdrv.NoAuth())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close(context.Background()) })
	return drv
}

func benchNeo4jChunks(t *testing.T, uri, prefix string) int {
	t.Helper()
	res, err := neo4jdrv.ExecuteQuery(context.Background(), benchNeo4j(t, uri),
		`MATCH (c:Chunk) WHERE c.tenant STARTS WITH $p RETURN count(c) AS n`,
		map[string]any{"p": prefix + "-"}, neo4jdrv.EagerResultTransformer)
	if err != nil {
		t.Fatalf("count chunks of %s-*: %v", prefix, err)
	}
	n, _ := res.Records[0].Get("n")
	return int(n.(int64))
}

// benchCleanup removes what a --keep run left: its topic, group and graph.
func benchCleanup(t *testing.T, brokers []string, neo4jURI string, r e2eResult) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := benchAdmin(t, brokers)
	_, _ = adm.DeleteGroup(ctx, r.Topic)
	if _, err := adm.DeleteTopic(ctx, r.Topic); err != nil {
		t.Logf("delete topic %s: %v", r.Topic, err)
	}
	_, err := neo4jdrv.ExecuteQuery(ctx, benchNeo4j(t, neo4jURI),
		`MATCH (n:Chunk|Entity|ChunkTombstone) WHERE n.tenant STARTS WITH $p DETACH DELETE n`,
		map[string]any{"p": r.TenantPrefix + "-"}, neo4jdrv.EagerResultTransformer)
	if err != nil {
		t.Errorf("delete Neo4j tenants %s-*: %v", r.TenantPrefix, err)
	}
}

// TestSampleRecordBytes: every event the bench produces fits the per-event
// size its batch byte limit is made of, so batches close on max_records (the
// size under test), not on bytes; and the estimate is not so loose that the
// in-flight budget (two batches) holds far more than two batches' records.
func TestSampleRecordBytes(t *testing.T) {
	for _, dims := range []int{8, 384, 1536} {
		o, err := parseBenchE2E([]string{"--dims", strconv.Itoa(dims)}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		per := sampleRecordBytes(o)
		total, n := 0, 0
		for g := range 3 {
			recs := sample.Generate(tenantGroup, sample.Options{Seed: o.seed + uint64(g), Dims: dims,
				Tenants: tenants(fmt.Sprintf("bench-1234abcd-g%d", g), o.tenants)})
			for _, r := range recs {
				size := len(r.Key) + len(r.Value)
				if size > per {
					t.Fatalf("dims %d: a sample event of %d bytes is over the %d the batch limit allows per event", dims, size, per)
				}
				total += size
				n++
			}
		}
		if avg := total / n; per > avg*3/2 {
			t.Fatalf("dims %d: %d bytes per event allowed against %d on average: the budget would hold far more than two batches", dims, per, avg)
		}
	}
}
