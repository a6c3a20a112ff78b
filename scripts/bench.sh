#!/usr/bin/env bash
# shellcheck disable=SC2317 # finish and stop_run are called from traps
# make bench: ragstream's benchmarks, with every figure written to
# .cache/bench-<UTC time>.txt as well. docs/benchmarks.md explains them.
#
#   scripts/bench.sh [BENCH] [BENCHTIME]     (make bench BENCH=regex BENCHTIME=1s)
#
# 1. In-process Go benchmarks (go test -bench BENCH -benchtime BENCHTIME
#    -benchmem): the event decoder and the pipeline with null sinks (both
#    -cpu 1: figures per core), the Qdrant stand-in's upserts and queries, and
#    the Neo4j sink's own Cypher against the plain reference (needs Neo4j).
# 2. End to end (`ragstream bench e2e`): real Kafka + Neo4j + the Qdrant
#    stand-in, the worker as a separate process, at batch 100, 1000 and 5000;
#    then the same with the Neo4j sink swapped for a null authority. Runs when
#    BENCH matches "E2E" (the default "." does).
# 3. The ratios the issue asks for, from figures of this one run: end to end
#    against the sink's own Cypher ceiling and the reference ceiling. When the
#    end-to-end part runs, each batch size's ceilings are measured right
#    before its end-to-end run, so that both see about the same load.
#
# Kafka and Neo4j come from scripts/services.sh: when they already run (in
# RAGSTREAM_TEST_STATE_DIR, default .services) they are used and left
# running; when none of the services runs, this script starts them and stops
# them at the end, with RAGSTREAM_TEST_JIT=full (C1 and C2 compilers: the
# steady state of a long-running server, where tests use C1 only for a fast
# start). The machine may be shared: each section prints the load average,
# and only ratios measured in one run are comparable.
#
# Settings (environment):
#   BENCH_GO=0                 skip the go test benchmarks
#   BENCH_E2E=0                skip the end-to-end benchmark
#   BENCH_E2E_BATCHES          batch sizes, default "100,1000,5000"
#   BENCH_E2E_EVENTS           events per end-to-end run, default the bench's
#                              own: max(20000, 6 × partitions × batch)
#   BENCH_E2E_LATENCY          length of each latency phase, default 20s
#   BENCH_NULL_BATCH           batch size of the null-Neo4j run, default 1000
#   BENCH_NULL_EVENTS          events of the null-Neo4j run, default 100000
#   BENCH_PIPELINE_BENCHTIME   -benchtime of the pipeline package when BENCHTIME
#                              is not given, default 5x: one op is 20,000
#                              records (~0.5 s), and 1s gave two ops, whose
#                              figure moved by a fifth from run to run
#   BENCH_NEO4J_BENCHTIME      -benchtime of the Neo4j sink benchmark; default
#                              10000/batch iterations, at least 5x (100x at batch
#                              100, 10x at 1000, 5x at 5000), so that each ceiling
#                              covers about as many events (one op is a whole
#                              batch of each writer: at batch 5000, seconds; a
#                              duration would give b.N = 1)
#   and those of scripts/services.sh (state dir, ports, timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH=${1:-.}
BENCHTIME=${2:-1s}
BENCH_GO=${BENCH_GO:-1}
BENCH_E2E=${BENCH_E2E:-1}
E2E_BATCHES=${BENCH_E2E_BATCHES:-100,1000,5000}
E2E_EVENTS=${BENCH_E2E_EVENTS:-0}
E2E_LATENCY=${BENCH_E2E_LATENCY:-20s}
NULL_BATCH=${BENCH_NULL_BATCH:-1000}
NULL_EVENTS=${BENCH_NULL_EVENTS:-100000}
NEO4J_BENCHTIME=${BENCH_NEO4J_BENCHTIME:-5x}
PIPELINE_BENCHTIME=${BENCH_PIPELINE_BENCHTIME:-5x}
[[ -n ${2:-} ]] && PIPELINE_BENCHTIME=$BENCHTIME

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p .cache
OUT=$ROOT/.cache/bench-$STAMP.txt
RAW=$ROOT/.cache/bench-$STAMP
mkdir -p "$RAW"
BIN=$RAW/ragstream

say() { printf '%s\n' "$*" | tee -a "$OUT"; }
die() {
	printf 'bench.sh: error: %s\n' "$*" | tee -a "$OUT" >&2
	exit 1
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }
section() { say "" "== $1 (load average $(loadavg))"; }

# Which parts run: a Go benchmark package when BENCH can match one of its
# benchmarks is decided by go test itself; the end-to-end part by its name.
wants_e2e() { [[ $BENCH_E2E != 0 ]] && grep -qE -- "$BENCH" <<<"BenchmarkE2E"; }
has_benchmarks() { grep -qsE '^func Benchmark' "$1"/*_test.go; }

# --- processes ---------------------------------------------------------------

CHILD=
RUN_PGID_FILE=$(mktemp)
STARTED_SERVICES=0
FAILED=()

finish() {
	local rc=$?
	trap - EXIT INT TERM HUP
	stop_run
	[[ -z $TAIL_PID ]] || kill "$TAIL_PID" 2>/dev/null || true
	rm -f "$RUN_PGID_FILE"
	if [[ $STARTED_SERVICES == 1 ]]; then
		echo "bench.sh: stopping the services this run started"
		scripts/services.sh down || echo "bench.sh: warning: scripts/services.sh down failed" >&2
	fi
	if ((rc == 0 && ${#FAILED[@]})); then
		rc=1
	fi
	echo "bench.sh: results in ${OUT#"$ROOT"/} (raw outputs in ${RAW#"$ROOT"/}/); exit $rc"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# run and stop_run: a command in a process group of its own.
# shellcheck source=scripts/lib/rungroup.sh
source "$ROOT/scripts/lib/rungroup.sh"

# capture NAME CMD... runs CMD with its output in $RAW/NAME.txt (parsed for
# the ratios), shown as it comes and added to the results file. A failure is
# recorded and the next part runs.
TAIL_PID=
capture() {
	local name=$1 rc=0 file=$RAW/$1.txt
	shift
	: >"$file"
	tail -s 0.2 -n +1 -f "$file" &
	TAIL_PID=$!
	run "$@" >"$file" 2>&1 || rc=$?
	sleep 0.5 # tail shows the last lines
	kill "$TAIL_PID" 2>/dev/null || true
	wait "$TAIL_PID" 2>/dev/null || true
	TAIL_PID=
	cat "$file" >>"$OUT"
	if ((rc != 0)); then
		say "bench.sh: $name failed (exit $rc)"
		FAILED+=("$name")
	fi
}

# --- services ----------------------------------------------------------------

SERVICES_READY=0
ensure_services() {
	((SERVICES_READY)) && return 0
	local status
	status=$(scripts/services.sh status 2>/dev/null || true)
	if grep -q 'kafka running' <<<"$status" && grep -q 'neo4j running' <<<"$status"; then
		say "bench.sh: using the running services ($(scripts/services.sh env | sed -n 's/^export RAGSTREAM_TEST_\(KAFKA_BROKERS\|NEO4J_URI\)=/\1=/p' | tr '\n' ' '))"
	elif ! grep -qE '(kafka|neo4j|redis) running' <<<"$status"; then
		say "bench.sh: starting the services (scripts/services.sh up); they are stopped at the end"
		STARTED_SERVICES=1
		RAGSTREAM_TEST_JIT=${RAGSTREAM_TEST_JIT:-full} scripts/services.sh up
	else
		# Some run, started by someone else: start what is missing and
		# leave everything running, since down would stop theirs too.
		say "bench.sh: some services run already; starting the missing ones and leaving all running"
		scripts/services.sh up
	fi
	eval "$(scripts/services.sh env)"
	SERVICES_READY=1
}

# --- 1. Go benchmarks --------------------------------------------------------

command -v go >/dev/null || die "go is not on PATH"
say "ragstream benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
say "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-); BENCH=$BENCH BENCHTIME=$BENCHTIME"

if [[ $BENCH_GO != 0 ]]; then
	# package, -cpu flag (empty: GOMAXPROCS), needs services, raw name
	for spec in \
		"./pipeline/event|1|0|decoder" \
		"./pipeline|1|0|pipeline" \
		"./sinks/qdrant/qdranttest||0|qdrant" \
		"./sinks/neo4j||1|neo4j"; do
		IFS='|' read -r pkg cpu needs name <<<"$spec"
		if ! has_benchmarks "$pkg"; then
			say "" "== $pkg: no benchmarks yet (skipped)"
			continue
		fi
		if [[ $name == neo4j ]] && wants_e2e; then
			say "" "== $pkg: run beside each end-to-end batch size below"
			continue
		fi
		((needs)) && ensure_services
		bt=$BENCHTIME
		[[ $name == neo4j ]] && bt=$NEO4J_BENCHTIME
		[[ $name == pipeline ]] && bt=$PIPELINE_BENCHTIME
		section "go test -bench '$BENCH' -benchtime $bt${cpu:+ -cpu $cpu} $pkg"
		capture "$name" go test -run '^$' -bench "$BENCH" -benchtime "$bt" -benchmem ${cpu:+-cpu "$cpu"} -timeout 60m "$pkg"
	done
fi

# --- 2. End to end -----------------------------------------------------------

if wants_e2e; then
	ensure_services
	say "" "bench.sh: building $BIN"
	CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/ragstream
	if ! "$BIN" bench -h >/dev/null 2>&1; then
		die "ragstream has no bench command: register runBench in cmd/ragstream/main.go's command table"
	fi
	common=(--brokers "$RAGSTREAM_TEST_KAFKA_BROKERS" --neo4j-uri "$RAGSTREAM_TEST_NEO4J_URI"
		--latency-duration "$E2E_LATENCY" --log-dir "$RAW/logs")
	# The Neo4j ceilings of a batch size are measured right before its
	# end-to-end run, so that the two see about the same machine. First one
	# untimed round of the sink benchmark, so that the server's JIT has
	# compiled the write path before anything is measured.
	IFS=',' read -ra batches <<<"$E2E_BATCHES"
	if has_benchmarks ./sinks/neo4j; then
		say "bench.sh: warming Neo4j up (BenchmarkWrite/batch=1000, 10x, not reported)"
		go test -run '^$' -bench '^BenchmarkWrite$/^batch=1000$' -benchtime 10x -timeout 30m ./sinks/neo4j >"$RAW/neo4j-warmup.log" 2>&1 ||
			say "bench.sh: warning: the warm-up failed; see $RAW/neo4j-warmup.log"
	fi
	for b in "${batches[@]}"; do
		b=${b// /}
		if has_benchmarks ./sinks/neo4j; then
			# Five transactions of 100 events are a fifth of a second of
			# Neo4j work, which one load spike on a shared machine moves
			# by half: small batches get more iterations.
			bt=${BENCH_NEO4J_BENCHTIME:-$((b >= 2000 ? 5 : 10000 / b))x}
			section "go test -bench '^BenchmarkWrite\$/^batch=$b\$' -benchtime $bt ./sinks/neo4j (Neo4j ceilings)"
			capture "neo4j-$b" go test -run '^$' -bench "^BenchmarkWrite\$/^batch=$b\$" -benchtime "$bt" \
				-benchmem -timeout 60m ./sinks/neo4j
		fi
		section "ragstream bench e2e --batch $b (real Kafka + Neo4j + Qdrant stand-in)"
		capture "e2e-$b" "$BIN" bench e2e "${common[@]}" --batch "$b" --events "$E2E_EVENTS"
	done
	section "ragstream bench e2e --null-neo4j --batch $NULL_BATCH (real Kafka + stand-in, null authority)"
	capture e2e-null "$BIN" bench e2e "${common[@]}" --null-neo4j --batch "$NULL_BATCH" --events "$NULL_EVENTS"
fi

# --- 3. Ratios ---------------------------------------------------------------

section "summary: ratios from this run"
# Figures from go test lines ("<value> <unit>" pairs after the name) and
# from bench e2e's JSON lines.
awk '
function metric(unit,   i) {
	for (i = 3; i < NF; i++) if ($(i + 1) == unit) return $i + 0
	return ""
}
function jnum(key) {
	if (match($0, "\"" key "\":[-0-9.eE+]+")) return substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
	return ""
}
function jstr(key) {
	if (match($0, "\"" key "\":\"[^\"]*\"")) return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
	return ""
}
function name(   s) { s = $1; sub(/-[0-9]+$/, "", s); return s }
FILENAME ~ /\/neo4j(-[0-9]+)?\.txt$/ && /^BenchmarkWrite\/batch=/ {
	b = name(); sub(/^BenchmarkWrite\/batch=/, "", b)
	if (!(b in own)) ceil[++nc] = b
	own[b] = metric("own_events/s"); ref[b] = metric("ref_events/s")
}
FILENAME ~ /\/pipeline\.txt$/ && /^BenchmarkPipelineNullSinks/ {
	# The target is for kfake; a sub-benchmark on real Kafka is shown beside it.
	if (name() ~ /\/kafka$/) { pipe_kafka = metric("records/cpu-s"); next }
	pipe_cpu = metric("records/cpu-s"); pipe_wall = metric("records/s")
}
FILENAME ~ /\/decoder\.txt$/ && /^Benchmark/ && metric("records/cpu-s") != "" {
	dec[++nd] = sprintf("%s %.0f records/cpu-s", name(), metric("records/cpu-s"))
}
/^\{"bench":"e2e"/ {
	b = jnum("batch")
	if (jstr("authority") == "null") {
		null_rate = jnum("events_per_s"); null_cpu = jnum("cpu_us_per_event"); null_rss = jnum("rss_peak_end_mib"); null_batch = b
	} else {
		e2e[b] = jnum("events_per_s"); cpu[b] = jnum("cpu_us_per_event"); rss[b] = jnum("rss_peak_end_mib")
		p50[b] = jnum("latency_p50_ms"); p99[b] = jnum("latency_p99_ms"); lrate[b] = jnum("latency_rate")
		serr[b] = jnum("store_errors"); batches[++n] = b
	}
}
function ok(cond) { return cond ? "ok" : "BELOW TARGET" }
function num(v) { return v == "" ? "-" : sprintf("%.0f", v) }
function ratio(a, b) { return (a == "" || b == "" || b <= 0) ? "-" : sprintf("%.2f", a / b) }
END {
	if (pipe_cpu != "") printf "pipeline, null sinks (kfake, -cpu 1): %.0f records/cpu-s, %.0f records/s wall; target >= 40000 per core: %s\n", pipe_cpu, pipe_wall, ok(pipe_cpu >= 40000)
	if (pipe_kafka != "") printf "pipeline, null sinks (real Kafka, -cpu 1): %.0f records/cpu-s\n", pipe_kafka
	for (i = 1; i <= nd; i++) print "decoder (-cpu 1): " dec[i]
	for (i = 1; i <= nc; i++) {
		b = ceil[i]
		printf "Neo4j ceilings, batch %s: own Cypher %s events/s, reference %s events/s (own/ref %s)\n", b, num(own[b]), num(ref[b]), ratio(own[b], ref[b])
	}
	if (n) {
		printf "\n%-6s %10s %12s %12s %8s %8s %11s %10s %8s %11s %8s %8s\n", "batch", "e2e ev/s", "own ceiling", "ref ceiling", "e2e/own", "e2e/ref", "store errs", "CPU us/ev", "RSS MiB", "lat. ev/s", "p50 ms", "p99 ms"
		for (i = 1; i <= n; i++) {
			b = batches[i]
			printf "%-6s %10.0f %12s %12s %8s %8s %11s %10.1f %8.0f %11s %8s %8s\n", b, e2e[b], num(own[b]), num(ref[b]), ratio(e2e[b], own[b]), ratio(e2e[b], ref[b]), num(serr[b]), cpu[b], rss[b], num(lrate[b]), num(p50[b]), num(p99[b])
		}
		print "targets: e2e/own >= 0.90, e2e/ref >= 0.85, CPU <= 60 us/event, RSS <= 200 MiB"
		for (i = 1; i <= n; i++) {
			b = batches[i]
			printf "  batch %s: e2e/own %s, e2e/ref %s, CPU %s, RSS %s\n", b,
				(own[b] == "" ? "not measured" : ok(e2e[b] >= 0.9 * own[b])),
				(ref[b] == "" ? "not measured" : ok(e2e[b] >= 0.85 * ref[b])), ok(cpu[b] <= 60), ok(rss[b] <= 200)
		}
	}
	if (null_rate != "") printf "\nnull Neo4j (real Kafka + stand-in), batch %s: %.0f events/s, %.1f us CPU/event, %.0f MiB peak RSS; target >= 25000 events/s: %s\n", null_batch, null_rate, null_cpu, null_rss, ok(null_rate >= 25000)
}' "$RAW"/*.txt | tee -a "$OUT"
say "load average at the end: $(loadavg)"
