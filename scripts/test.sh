#!/usr/bin/env bash
# shellcheck disable=SC2317 # finish and stop_run are called from traps
# Runs every test against real services: starts Kafka, Neo4j and Redis
# (scripts/services.sh up), runs `go test -race` on the packages given
# (default ./...), fuzzes the event decoder for a bounded time when its fuzz
# target exists, and always stops the services, also when tests fail or the
# run is interrupted. Exits with the status of the tests.
#
#   scripts/test.sh [packages...]
#
# Settings (environment):
#   RAGSTREAM_TEST_FUZZTIME   fuzzing time of FuzzDecode, default 20s; 0 skips it
#   RAGSTREAM_TEST_KEEP       1 leaves the services running afterwards
#   and those of scripts/services.sh (ports, state and cache dirs, timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FUZZTIME=${RAGSTREAM_TEST_FUZZTIME:-20s}
KEEP=${RAGSTREAM_TEST_KEEP:-0}
T0=$(date +%s.%N)
PKGS=("$@")
((${#PKGS[@]})) || PKGS=(./...)

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }

CHILD=
RUN_PGID_FILE=$(mktemp)
finish() {
	local rc=$?
	trap - EXIT INT TERM HUP
	stop_run
	rm -f "$RUN_PGID_FILE"
	if [[ $KEEP == 1 ]]; then
		echo "test.sh: services left running (RAGSTREAM_TEST_KEEP=1); stop them with scripts/services.sh down"
	else
		scripts/services.sh down || echo "test.sh: warning: scripts/services.sh down failed" >&2
	fi
	echo "test.sh: exit $rc, total wall time $(elapsed)s"
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# run and stop_run: a command in a process group of its own.
# shellcheck source=scripts/lib/rungroup.sh
source "$ROOT/scripts/lib/rungroup.sh"

command -v go >/dev/null || {
	echo "test.sh: error: go is not on PATH" >&2
	exit 1
}
# The race detector needs cgo and a C compiler.
if [[ $(go env CGO_ENABLED) != 1 ]] || ! command -v "$(go env CC)" >/dev/null; then
	echo "test.sh: error: go test -race needs cgo and a C compiler ($(go env CC)); install gcc (apt-get install -y gcc) and keep CGO_ENABLED=1" >&2
	exit 1
fi

# Fresh services each run, even after a run that could not clean up.
scripts/services.sh down
scripts/services.sh up
eval "$(scripts/services.sh env)"

# go test -json through testsummary: a line per package, the whole output
# of each failed test, and a closing "N passed, N failed, N skipped" line.
SUMMARY=$(mktemp -d)/testsummary
go build -o "$SUMMARY" ./internal/tools/testsummary

rc=0
echo "test.sh: go test -race -count=1 -timeout 25m ${PKGS[*]}"
# shellcheck disable=SC2016 # expanded by the inner shell
run bash -o pipefail -c 'go test -json -race -count=1 -timeout 25m "$@" 2>&1 | "$0"' "$SUMMARY" "${PKGS[@]}" || rc=$?

# Bounded fuzzing of the event decoder, once its fuzz target exists.
if ((rc == 0)) && [[ $FUZZTIME != 0 ]] && [[ ${PKGS[*]} == ./... ]] &&
	grep -qsE '^func FuzzDecode\(' pipeline/event/*_test.go; then
	echo "test.sh: go test -fuzz '^FuzzDecode\$' -fuzztime $FUZZTIME ./pipeline/event"
	run go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$FUZZTIME" ./pipeline/event || rc=$?
fi
exit "$rc"
