#!/usr/bin/env bash
# Real services for ragstream's integration tests: Apache Kafka (single-node
# KRaft, jars from Maven Central), Neo4j 5.26 Community (embedded with Bolt
# through scripts/services/neo4j/Launcher.java, jars from Maven Central) and
# Redis (Debian's redis-server). No Docker needed.
#
#   scripts/services.sh up       fetch what is missing, start, wait until ready,
#                                write <state>/env (idempotent)
#   scripts/services.sh down     stop every started process group, remove data
#   scripts/services.sh status   what runs, with pids and addresses
#   scripts/services.sh env      print <state>/env (source it for go test)
#
# Settings (environment; every name has the RAGSTREAM_TEST_ prefix, which the
# worker's config loader ignores):
#   RAGSTREAM_TEST_SERVICES                 services to run, default "kafka neo4j redis"
#   RAGSTREAM_TEST_KAFKA_PORT               broker listener, default 19092
#   RAGSTREAM_TEST_KAFKA_CONTROLLER_PORT    KRaft controller listener, default 19093
#   RAGSTREAM_TEST_NEO4J_PORT               Bolt, default 17687
#   RAGSTREAM_TEST_REDIS_PORT               default 16379
#   RAGSTREAM_TEST_STATE_DIR                logs, pids, data, env; default <repo>/.services
#   RAGSTREAM_TEST_CACHE_DIR                resolved jars; default ${XDG_CACHE_HOME:-~/.cache}/ragstream
#   RAGSTREAM_TEST_MAVEN_REPO               Maven local repository; default Maven's (~/.m2/repository)
#   RAGSTREAM_TEST_JAVA                     java binary (17 or 21); default: found
#   RAGSTREAM_TEST_SERVICES_TIMEOUT         seconds to wait for readiness, default 180
#   RAGSTREAM_TEST_JIT                      c1 (default: fast start, for tests) or full
#                                           (C1+C2, for benchmarks: slower start, faster steady state)
#
# The defaults stay clear of dev mode's ports (9092, 6334, 7687, 6379, 8080).
# Every server runs in its own process group (setsid); `down` signals the
# recorded group, never a process name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC=$ROOT/scripts/services
# Absolute, because process ownership is recognised by the state dir in the
# servers' command lines.
STATE=$(realpath -m -- "${RAGSTREAM_TEST_STATE_DIR:-$ROOT/.services}")
CACHE=$(realpath -m -- "${RAGSTREAM_TEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ragstream}")
SERVICES=${RAGSTREAM_TEST_SERVICES:-kafka neo4j redis}
KAFKA_PORT=${RAGSTREAM_TEST_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${RAGSTREAM_TEST_KAFKA_CONTROLLER_PORT:-19093}
NEO4J_PORT=${RAGSTREAM_TEST_NEO4J_PORT:-17687}
REDIS_PORT=${RAGSTREAM_TEST_REDIS_PORT:-16379}
TIMEOUT=${RAGSTREAM_TEST_SERVICES_TIMEOUT:-180}
MAVEN_REPO=${RAGSTREAM_TEST_MAVEN_REPO:-}
case ${RAGSTREAM_TEST_JIT:-c1} in
c1) JIT_FLAGS=(-XX:TieredStopAtLevel=1) ;;
full) JIT_FLAGS=() ;;
*)
	printf 'services: error: RAGSTREAM_TEST_JIT must be c1 or full, not %q\n' "$RAGSTREAM_TEST_JIT" >&2
	exit 2
	;;
esac
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

LOGS=$STATE/logs
PIDS=$STATE/pids
ENV_FILE=$STATE/env
JAVA=
STARTED=()

log() { printf 'services: %s\n' "$*"; }
die() {
	printf 'services: error: %s\n' "$*" >&2
	exit 1
}

# Prints the last lines of a log file to stderr, framed, for failure reports.
tail_log() {
	local file=$1 lines=${2:-40}
	if [[ -s $file ]]; then
		printf -- '----- last %d lines of %s -----\n' "$lines" "$file" >&2
		tail -n "$lines" "$file" >&2
		printf -- '----- end of %s -----\n' "$file" >&2
	else
		printf 'services: (%s is empty or missing)\n' "$file" >&2
	fi
}

# Prints a service's output and, for Neo4j, the tail of its own debug.log,
# which says more than the launcher's output while it boots.
service_log_tail() {
	tail_log "$LOGS/$1.log"
	if [[ $1 == neo4j && -f $STATE/neo4j/logs/debug.log ]]; then
		tail_log "$STATE/neo4j/logs/debug.log" 20
	fi
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

check_port() {
	if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
		die "$1: want a port 1-65535, got '$2'"
	fi
}

check_settings() {
	check_port RAGSTREAM_TEST_KAFKA_PORT "$KAFKA_PORT"
	check_port RAGSTREAM_TEST_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
	check_port RAGSTREAM_TEST_NEO4J_PORT "$NEO4J_PORT"
	check_port RAGSTREAM_TEST_REDIS_PORT "$REDIS_PORT"
	[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "RAGSTREAM_TEST_SERVICES_TIMEOUT: want whole seconds, got '$TIMEOUT'"
	local s
	for s in $SERVICES; do
		case $s in
		kafka | neo4j | redis) ;;
		*) die "RAGSTREAM_TEST_SERVICES: unknown service '$s' (known: kafka neo4j redis)" ;;
		esac
	done
}

wants() { [[ " $SERVICES " == *" $1 "* ]]; }

# --- tools -----------------------------------------------------------------

APT_UPDATED=
apt_install() {
	command -v apt-get >/dev/null ||
		die "need the Debian packages '$*' but apt-get is not available: install them by hand and re-run"
	local sudo=
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || die "need the Debian packages '$*': run as root or install sudo"
		sudo="sudo -n"
	fi
	# Without a policy-rc.d, installing redis-server would also start the
	# system's own redis on 6379, which is dev mode's port.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0
	{
		# The package lists of a fresh machine may be old or missing.
		if [[ -z $APT_UPDATED ]]; then
			$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq && APT_UPDATED=1
		fi &&
			$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
				install -y -qq --no-install-recommends "$@"
	} >"$LOGS/apt.log" 2>&1 || rc=$?
	[[ -n $made_policy ]] && $sudo rm -f "$policy"
	if ((rc != 0)); then
		tail_log "$LOGS/apt.log"
		die "apt-get install $* failed (exit $rc)"
	fi
}

# Prints the feature version of a java binary (17 for 17.0.15), or nothing.
java_major() {
	"$1" -version 2>&1 | awk -F'"' '/version "/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

# Neo4j 5.26 supports Java 17 and 21 only; Kafka 4.x runs on 17+. The machine
# may have a newer JDK first on PATH, so pick 17 (or 21) explicitly.
find_java() {
	local c major
	if [[ -n ${RAGSTREAM_TEST_JAVA:-} ]]; then
		[[ -x $RAGSTREAM_TEST_JAVA ]] || die "RAGSTREAM_TEST_JAVA: '$RAGSTREAM_TEST_JAVA' is not an executable"
		major=$(java_major "$RAGSTREAM_TEST_JAVA")
		[[ $major == 17 || $major == 21 ]] ||
			die "RAGSTREAM_TEST_JAVA: '$RAGSTREAM_TEST_JAVA' is Java '${major:-unknown}'; Neo4j 5.26 needs 17 or 21"
		JAVA=$RAGSTREAM_TEST_JAVA
		return 0
	fi
	local candidates=()
	[[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
	command -v java >/dev/null && candidates+=("$(command -v java)")
	candidates+=(/usr/lib/jvm/*17*/bin/java /usr/lib/jvm/*21*/bin/java)
	for want in 17 21; do
		for c in "${candidates[@]}"; do
			[[ -x $c ]] || continue
			# Single-file source mode needs a JDK, not only a runtime.
			[[ -x $(dirname "$(readlink -f "$c")")/javac ]] || continue
			if [[ $(java_major "$c") == "$want" ]]; then
				JAVA=$(readlink -f "$c")
				return 0
			fi
		done
	done
	return 1
}

# ensure_tools installs what is missing with apt-get. Java and Maven are needed
# at once; redis-server alone is installed in the background (APT_PID) while
# Maven fetches jars, and finish_redis_install waits for it.
APT_PID=
ensure_tools() {
	local missing=() jvm=
	if wants kafka || wants neo4j; then
		jvm=1
		find_java || missing+=(openjdk-17-jdk-headless)
		command -v mvn >/dev/null || missing+=(maven)
	fi
	command -v setsid >/dev/null || die "setsid (util-linux) is missing"
	if wants redis && ! command -v redis-server >/dev/null; then
		if ((${#missing[@]})); then
			missing+=(redis-server)
		else
			log "installing redis-server with apt-get in the background (log: $LOGS/apt.log)"
			apt_install redis-server &
			APT_PID=$!
		fi
	fi
	if ((${#missing[@]})); then
		log "installing ${missing[*]} with apt-get (log: $LOGS/apt.log)"
		apt_install "${missing[@]}"
	fi
	if [[ -n $jvm ]]; then
		[[ -n $JAVA ]] || find_java || die "installed openjdk-17-jdk-headless but found no Java 17 JDK under /usr/lib/jvm"
		command -v mvn >/dev/null || die "installed maven but mvn is not on PATH"
		log "java $JAVA (Java $(java_major "$JAVA"))"
	fi
}

finish_redis_install() {
	if [[ -n $APT_PID ]]; then
		local pid=$APT_PID
		APT_PID=
		wait "$pid" || die "installing redis-server failed (log: $LOGS/apt.log)"
	fi
	wants redis || return 0
	command -v redis-server >/dev/null || die "redis-server is not on PATH after installing it"
	command -v redis-cli >/dev/null || die "redis-cli (package redis-tools) is not on PATH"
}

# --- jars --------------------------------------------------------------------

# Resolves the jars of scripts/services/<name>/pom.xml into the cache and prints
# the directory. A directory is reused only if its stamp matches the pom, so an
# interrupted or outdated fetch is redone; Maven's own repository (~/.m2 by
# default) makes a second fetch cheap but is never required to exist.
fetch_jars() {
	local name=$1 pom=$SVC/$1/pom.xml version want dir tmp
	version=$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$pom" | head -n 1)
	want=$(sha256sum "$pom" | cut -c1-64)
	dir=$CACHE/jars/$name-$version
	if [[ -f $dir/.complete && $(<"$dir/.complete") == "$want" ]]; then
		printf '%s\n' "$dir"
		return 0
	fi
	mkdir -p "$CACHE/jars"
	tmp=$(mktemp -d "$CACHE/jars/.$name-$version.XXXXXX")
	chmod 755 "$tmp"
	local start mvnlog=$LOGS/maven-$name.log
	start=$(now)
	# JAVA_HOME pins Maven's own JVM too, so a newer default JDK cannot break
	# it. A second try rides out a dropped connection.
	local try ok=
	for try in 1 2; do
		if JAVA_HOME=$(dirname "$(dirname "$JAVA")") mvn -B -q -Dstyle.color=never \
			${MAVEN_REPO:+"-Dmaven.repo.local=$MAVEN_REPO"} -f "$pom" \
			"$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
			-DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
			ok=1
			break
		fi
		((try == 1)) && log "maven failed for $name $version; trying once more" >&2
	done
	if [[ -z $ok ]]; then
		rm -rf "$tmp"
		tail_log "$mvnlog"
		die "could not resolve the $name $version jars from Maven Central (log: $mvnlog)"
	fi
	compgen -G "$tmp/*.jar" >/dev/null || die "maven resolved no jars for $name $version (log: $mvnlog)"
	printf '%s\n' "$want" >"$tmp/.complete"
	rm -rf "$dir"
	# Another checkout may have finished the same fetch meanwhile; keep either.
	mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
	log "$name $version: $(find "$dir" -name '*.jar' | wc -l) jars resolved in $(since "$start")s into $dir" >&2
	printf '%s\n' "$dir"
}

# Compiles scripts/services/kafka/KafkaReady.java once per source and jar set
# into the cache and prints the class dir; a readiness check then costs one
# JVM start rather than a compile on every `up`.
KAFKA_READY_CLASSES=
compile_kafka_ready() {
	local src=$SVC/kafka/KafkaReady.java key dir tmp
	key=$(cat "$src" "$KAFKA_JARS/.complete" | sha256sum | cut -c1-16)
	dir=$CACHE/classes/kafka-ready-$key
	if [[ ! -f $dir/KafkaReady.class ]]; then
		mkdir -p "$CACHE/classes"
		tmp=$(mktemp -d "$CACHE/classes/.kafka-ready.XXXXXX")
		chmod 755 "$tmp"
		if ! "$(dirname "$JAVA")/javac" -nowarn -d "$tmp" -cp "$KAFKA_JARS/*" "$src" >"$LOGS/javac-kafka-ready.log" 2>&1; then
			rm -rf "$tmp"
			tail_log "$LOGS/javac-kafka-ready.log"
			die "could not compile $src"
		fi
		mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
	fi
	KAFKA_READY_CLASSES=$dir
}

# --- processes -------------------------------------------------------------

# Prints a process's start time (clock ticks since boot), which with its pid
# identifies it: a pid reused after a reboot or a crash has another.
start_time() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Fields after "pid (comm) ": state is the first, starttime the 20th.
	local fields
	read -ra fields <<<"${stat##*) }"
	printf '%s\n' "${fields[19]}"
}

# Prints the group id of a service's server while the recorded process still
# runs, so a reused pid is never signalled.
running() {
	local pidf=$PIDS/$1.pid pid started now
	[[ -s $pidf ]] || return 1
	read -r pid started <"$pidf" || true
	[[ -n $pid && -n $started ]] || return 1
	now=$(start_time "$pid") || return 1
	[[ $now == "$started" ]] || return 1
	printf '%s\n' "$pid"
}

# spawn NAME CMD... starts CMD in a new session (so its own process group),
# output to <state>/logs/NAME.log; the group id lands in <state>/pids/NAME.pid.
spawn() {
	local name=$1 pidf=$PIDS/$1.pid
	shift
	rm -f "$pidf"
	# The inner shell records its own pid, which exec hands to the server:
	# that pid leads the new session whether or not setsid had to fork.
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidf" "$@" \
		>"$LOGS/$name.log" 2>&1 </dev/null &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $pidf ]] && break
		sleep 0.05
	done
	[[ -s $pidf ]] || die "$name did not start (log: $LOGS/$name.log)"
	local pid started
	pid=$(<"$pidf")
	started=$(start_time "$pid") || {
		tail_log "$LOGS/$name.log"
		die "$name exited at once (log: $LOGS/$name.log)"
	}
	printf '%s %s\n' "$pid" "$started" >"$pidf"
	STARTED+=("$name")
}

# stop_groups NAME... sends SIGTERM to every named server's group at once,
# waits up to 10 s for all of them, then SIGKILLs what is left.
stop_groups() {
	local name pid i left
	local -A groups=()
	for name in "$@"; do
		if pid=$(running "$name"); then
			groups[$name]=$pid
			kill -TERM -- "-$pid" 2>/dev/null || true
		fi
		rm -f "$PIDS/$name.pid"
	done
	for ((i = 0; i < 100; i++)); do
		left=
		for name in "${!groups[@]}"; do
			kill -0 -- "-${groups[$name]}" 2>/dev/null && left+=" $name"
		done
		[[ -z $left ]] && break
		sleep 0.1
	done
	for name in "${!groups[@]}"; do
		pid=${groups[$name]}
		if kill -0 -- "-$pid" 2>/dev/null; then
			log "$name (group $pid) still running after 10s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
		log "$name stopped (group $pid)"
	done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_port_free() {
	local name=$1 port=$2 var=$3
	if port_in_use "$port"; then
		die "$name: 127.0.0.1:$port is already in use by a process these scripts did not start; stop it or set $var"
	fi
}

# --- services ----------------------------------------------------------------

KAFKA_JARS=
NEO4J_JARS=

start_kafka() {
	local dir=$STATE/kafka cid
	ensure_port_free kafka "$KAFKA_PORT" RAGSTREAM_TEST_KAFKA_PORT
	ensure_port_free "kafka controller" "$KAFKA_CONTROLLER_PORT" RAGSTREAM_TEST_KAFKA_CONTROLLER_PORT
	rm -rf "$dir"
	mkdir -p "$dir/data"
	sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
		-e "s|@LOG_DIR@|$dir/data|g" "$SVC/kafka/server.properties.tmpl" >"$dir/server.properties"
	# A cluster id is 16 random bytes in unpadded base64url; one starting with
	# '-' would read as an option.
	while :; do
		cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $cid != -* ]] && break
	done
	if ! "$JAVA" -Dlog4j2.configurationFile="$SVC/kafka/log4j2.properties" -cp "$KAFKA_JARS/*" \
		kafka.tools.StorageTool format --standalone -t "$cid" -c "$dir/server.properties" \
		>"$LOGS/kafka-format.log" 2>&1; then
		tail_log "$LOGS/kafka-format.log"
		die "kafka: formatting the log dir $dir/data failed"
	fi
	spawn kafka "$JAVA" -Xms512m -Xmx512m "${JIT_FLAGS[@]}" -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$SVC/kafka/log4j2.properties" \
		-cp "$KAFKA_JARS/*" kafka.Kafka "$dir/server.properties"
}

start_neo4j() {
	local home=$STATE/neo4j
	ensure_port_free neo4j "$NEO4J_PORT" RAGSTREAM_TEST_NEO4J_PORT
	rm -rf "$home"
	mkdir -p "$home"
	# JVM flags as upstream's neo4j.conf; C1 only by default, because it halves
	# start-up on two cores and tests never run long enough for C2 to pay off
	# (RAGSTREAM_TEST_JIT=full for benchmarks).
	spawn neo4j "$JAVA" -Xms1g -Xmx1g "${JIT_FLAGS[@]}" -Djava.awt.headless=true \
		--add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
		--add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Dio.netty.tryReflectionSetAccessible=true \
		-cp "$NEO4J_JARS/*" "$SVC/neo4j/Launcher.java" "$home" "$NEO4J_PORT" off
}

start_redis() {
	local dir=$STATE/redis
	ensure_port_free redis "$REDIS_PORT" RAGSTREAM_TEST_REDIS_PORT
	rm -rf "$dir"
	mkdir -p "$dir"
	spawn redis "$(command -v redis-server)" --port "$REDIS_PORT" --bind 127.0.0.1 \
		--save "" --appendonly no --dir "$dir" --daemonize no
}

# ready NAME: 0 when ready, 1 when not yet; dies when the process is gone.
KAFKA_STARTED_SEEN=
ready() {
	local name=$1
	running "$name" >/dev/null || {
		service_log_tail "$name"
		return 2
	}
	case $name in
	kafka)
		[[ -n $KAFKA_STARTED_SEEN ]] || grep -q 'Kafka Server started' "$LOGS/kafka.log" || return 1
		KAFKA_STARTED_SEEN=1
		# The log line comes before the listener serves metadata: confirm with a client.
		if "$JAVA" -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$SVC/kafka/log4j2.properties" \
			-cp "$KAFKA_READY_CLASSES:$KAFKA_JARS/*" KafkaReady "127.0.0.1:$KAFKA_PORT" 30 \
			>"$LOGS/kafka-ready.log" 2>&1; then
			return 0
		fi
		tail_log "$LOGS/kafka-ready.log"
		return 2
		;;
	neo4j) grep -q '^READY ' "$LOGS/neo4j.log" ;;
	redis) [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] ;;
	esac
}

write_env() {
	local tmp=$ENV_FILE.tmp
	{
		echo "# Written by scripts/services.sh up; source it before go test."
		if wants kafka; then
			printf 'export RAGSTREAM_TEST_KAFKA_BROKERS=%q\n' "127.0.0.1:$KAFKA_PORT"
		fi
		if wants neo4j; then
			printf 'export RAGSTREAM_TEST_NEO4J_URI=%q\n' "bolt://127.0.0.1:$NEO4J_PORT"
			# What neo4jtest.StartPrivate needs to launch a private Neo4j.
			printf 'export RAGSTREAM_TEST_NEO4J_LIBS=%q\n' "$NEO4J_JARS"
			printf 'export RAGSTREAM_TEST_NEO4J_LAUNCHER=%q\n' "$SVC/neo4j/Launcher.java"
			printf 'export RAGSTREAM_TEST_JAVA=%q\n' "$JAVA"
		fi
		if wants redis; then
			printf 'export RAGSTREAM_TEST_REDIS_ADDR=%q\n' "127.0.0.1:$REDIS_PORT"
		fi
	} >"$tmp"
	mv "$tmp" "$ENV_FILE"
}

# On any failure during `up`, stop what this invocation started.
cleanup_failed_up() {
	local rc=$?
	((rc == 0)) && return 0
	[[ -z $APT_PID ]] || wait "$APT_PID" 2>/dev/null || true
	local name
	if ((${#STARTED[@]})); then
		stop_groups "${STARTED[@]}" >&2
		for name in "${STARTED[@]}"; do rm -rf "${STATE:?}/$name"; done
	fi
	rm -f "$ENV_FILE"
	exit "$rc"
}

cmd_up() {
	local t0 name
	t0=$(now)
	check_settings
	mkdir -p "$LOGS" "$PIDS"
	trap cleanup_failed_up EXIT
	ensure_tools

	# Everything is fetched first (Maven runs while apt installs Redis), then
	# the servers start together and boot in parallel.
	if wants kafka; then
		KAFKA_JARS=$(fetch_jars kafka)
		compile_kafka_ready
	fi
	if wants neo4j; then
		NEO4J_JARS=$(fetch_jars neo4j)
	fi
	finish_redis_install

	local -A began=()
	# Slowest first: Neo4j boots while Kafka's log dir is formatted.
	for name in neo4j kafka redis; do
		wants "$name" || continue
		if running "$name" >/dev/null; then
			log "$name already running"
		else
			"start_$name"
			began[$name]=$(now)
		fi
	done

	# Wait for all of them at once.
	local pending=() deadline rc
	for name in $SERVICES; do pending+=("$name"); done
	deadline=$(($(date +%s) + TIMEOUT))
	while ((${#pending[@]})); do
		local still=()
		for name in "${pending[@]}"; do
			rc=0
			ready "$name" || rc=$?
			case $rc in
			0) log "$name ready${began[$name]:+ in $(since "${began[$name]}")s}" ;;
			1) still+=("$name") ;;
			*) die "$name failed to start (log: $LOGS/$name.log)" ;;
			esac
		done
		pending=("${still[@]+"${still[@]}"}")
		((${#pending[@]})) || break
		if (($(date +%s) >= deadline)); then
			for name in "${pending[@]}"; do service_log_tail "$name"; done
			die "not ready after ${TIMEOUT}s: ${pending[*]} (raise RAGSTREAM_TEST_SERVICES_TIMEOUT if the machine is slow)"
		fi
		sleep 0.2
	done
	write_env
	trap - EXIT
	log "up in $(since "$t0")s; env in $ENV_FILE:"
	sed -n 's/^export /  /p' "$ENV_FILE"
}

cmd_down() {
	stop_groups kafka neo4j redis
	rm -rf "${STATE:?}/kafka" "$STATE/neo4j" "$STATE/redis" "$ENV_FILE"
}

cmd_status() {
	local name pid any=1
	for name in kafka neo4j redis; do
		if pid=$(running "$name"); then
			log "$name running (process group $pid, log $LOGS/$name.log)"
			any=0
		else
			log "$name not running"
		fi
	done
	[[ -f $ENV_FILE ]] && sed -n 's/^export /  /p' "$ENV_FILE"
	return $any
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "no $ENV_FILE: run scripts/services.sh up (make up) first"
	cat "$ENV_FILE"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*)
	echo "usage: $0 up|down|status|env" >&2
	exit 2
	;;
esac
