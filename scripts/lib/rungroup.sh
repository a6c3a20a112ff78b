# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/bench.sh: run a command in a process
# group of its own, and end that group. The caller sets RUN_PGID_FILE (a file
# for the group id) and CHILD= before use.

# run CMD... runs CMD in a process group of its own, in the background, and
# waits: a signal to the calling script is then handled at once, and its exit
# trap can end CMD with everything it started (go test does not pass SIGTERM
# on to test binaries).
run() {
	: >"$RUN_PGID_FILE"
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid -w bash -c 'echo $$ >"$0" && exec "$@"' "$RUN_PGID_FILE" "$@" &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=
	return "$rc"
}

# stop_run ends the group of a command still running under run: SIGTERM,
# up to 10 s to exit, then SIGKILL.
stop_run() {
	[[ -n $CHILD ]] || return 0
	local pgid i
	pgid=$(cat "$RUN_PGID_FILE" 2>/dev/null || true)
	if [[ -n $pgid ]]; then
		kill -TERM -- "-$pgid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 -- "-$pgid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pgid" 2>/dev/null || true
	fi
	wait "$CHILD" 2>/dev/null || true
	CHILD=
}
