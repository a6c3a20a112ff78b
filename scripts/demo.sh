#!/usr/bin/env bash
# make demo: the main job on the embedded default. Starts a local Neo4j
# (Maven Central jars, no Docker), runs `ragstream dev` (in-process Kafka and
# Qdrant stand-in), publishes sample events, waits until they are committed in
# both stores, and prints what landed. Everything it started is stopped at the
# end (DEMO_KEEP=1 leaves the worker and Neo4j running to explore them).
#
#   DEMO_EVENTS   how many sample events (default 3000)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${DEMO_EVENTS:-3000}
STATE=$ROOT/.services/demo
BIN=$ROOT/bin/ragstream
mkdir -p "$STATE"

# Neo4j on dev mode's default Bolt port, in its own state dir, so the test
# services (other ports, .services/) are left alone.
svc() {
	RAGSTREAM_TEST_SERVICES=neo4j RAGSTREAM_TEST_NEO4J_PORT=7687 \
		RAGSTREAM_TEST_STATE_DIR=$STATE "$ROOT/scripts/services.sh" "$@"
}

worker_pid=
cleanup() {
	local rc=$?
	if [[ ${DEMO_KEEP:-} == 1 && $rc == 0 ]]; then
		echo "demo: left running: ragstream dev (pid $worker_pid, log $STATE/ragstream.log) and Neo4j."
		echo "demo: stop them with: kill $worker_pid; RAGSTREAM_TEST_SERVICES=neo4j RAGSTREAM_TEST_STATE_DIR=$STATE scripts/services.sh down"
		return
	fi
	if [[ -n $worker_pid ]] && kill -0 "$worker_pid" 2>/dev/null; then
		kill -TERM "$worker_pid" 2>/dev/null || true
		wait "$worker_pid" 2>/dev/null || true
	fi
	svc down >/dev/null 2>&1 || true
	if [[ $rc != 0 && -s $STATE/ragstream.log ]]; then
		echo "demo: failed; last lines of the worker's log:" >&2
		tail -n 20 "$STATE/ragstream.log" >&2
	fi
}
trap cleanup EXIT

echo "demo: building bin/ragstream"
make -s build

for port in 9092 6334 8080; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: port $port is in use; dev mode needs 9092 (Kafka), 6334 (Qdrant) and 8080 (admin)" >&2
		exit 1
	fi
done

echo "demo: starting Neo4j (first run fetches its jars from Maven Central)"
svc down >/dev/null 2>&1 || true # a fresh graph each time
svc up

echo "demo: starting ragstream dev (log: $STATE/ragstream.log)"
"$BIN" dev >"$STATE/ragstream.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 120); do
	if "$BIN" probe --timeout 1s http://127.0.0.1:8080/health/ready >/dev/null 2>&1; then
		break
	fi
	kill -0 "$worker_pid" 2>/dev/null || {
		echo "demo: ragstream dev exited" >&2
		exit 1
	}
	sleep 0.5
done
"$BIN" probe http://127.0.0.1:8080/health/ready >/dev/null

echo "demo: publishing $EVENTS sample events (mixed tenants, updates, deletes, tombstones)"
"$BIN" produce --brokers 127.0.0.1:9092 --topic events --sample "$EVENTS"

echo "demo: waiting until every event is committed in both stores"
"$BIN" verify --wait 300s

echo "demo: metrics: curl -s http://127.0.0.1:8080/metrics | grep ^ragstream_records"
curl -s http://127.0.0.1:8080/metrics 2>/dev/null | grep -E '^ragstream_records_(consumed|processed)_total' || true
