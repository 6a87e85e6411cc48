#!/usr/bin/env bash
# deploy/services.sh — the real Redis and Kafka that visrec's tests and local runs use.
#
#   deploy/services.sh up       install if missing, start, wait until both answer (idempotent)
#   deploy/services.sh down     stop what this script started (a reused server is left alone)
#   deploy/services.sh status   one line per service; exit 0 only if both answer
#   deploy/services.sh env      print the export lines for the client side:
#                                 eval "$(deploy/services.sh env)"
#   deploy/services.sh topics   list Kafka topics and their partition counts
#   deploy/services.sh logs     tail the Kafka broker log
#   deploy/services.sh clean    down, then delete Kafka data and all state under deploy/.state
#
# Redis:  Debian's redis-server on 127.0.0.1:$VISREC_REDIS_PORT (default 6379), no persistence.
#         If something already answers PING on that port it is reused, not restarted.
# Kafka:  Apache Kafka 4.x (org.apache.kafka:kafka_2.13, version in deploy/kafka/pom.xml) fetched
#         with mvn into .cache/kafka/libs, single-node KRaft (broker+controller) on
#         127.0.0.1:$VISREC_KAFKA_PORT (default 9092), controller on
#         127.0.0.1:$VISREC_KAFKA_CONTROLLER_PORT (default Kafka port + 1).
#
# Other knobs: KAFKA_HEAP (default "-Xms1g -Xmx1g -Xmn256m"), VISREC_SERVICES_TIMEOUT (seconds to
# wait for a service to answer, default 180).
#
# Broker JVM (docs/benchmarks.md, "Kafka delivery tail"): a broker's GC pause stops every
# produce and fetch, and on a busy 2-core machine a young pause takes 20-140 ms however small
# the young generation, because the GC threads wait for a core. So the heap is sized for few
# pauses rather than short ones: a fixed 1 GiB (Kafka's own default; with -Xms256m G1 kept
# ~390 MB around a ~220 MB live set and ran a concurrent mark every few seconds) and a fixed
# 256 MB young generation (G1's pause target of 20 ms cannot be met here, so it shrank the young
# generation to its 5% floor: a young pause every ~3 s under a 10,000 msgs/s load, instead of
# one every ~20 s). GC log: deploy/.state/kafka-<port>/logs/gc.log.
# State (pid files, logs, Kafka data) lives in deploy/.state/, downloads in .cache/; both are
# git-ignored.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$ROOT/deploy
STATE=$DEPLOY/.state
CACHE=$ROOT/.cache/kafka
LIBS=$CACHE/libs
CLASSES=$CACHE/classes

HOST=127.0.0.1
REDIS_PORT=${VISREC_REDIS_PORT:-6379}
KAFKA_PORT=${VISREC_KAFKA_PORT:-9092}
CONTROLLER_PORT=${VISREC_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP=${KAFKA_HEAP:--Xms1g -Xmx1g -Xmn256m}
WAIT_S=${VISREC_SERVICES_TIMEOUT:-180}

REDIS_DIR=$STATE/redis-$REDIS_PORT
KAFKA_DIR=$STATE/kafka-$KAFKA_PORT

say() { printf 'services: %s\n' "$*" >&2; }
die() {
	printf 'services: ERROR: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- helpers

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# pid_is PIDFILE PATTERN: prints the pid if the file names a live process whose command line
# contains PATTERN (guards against a recycled pid).
pid_is() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	pid_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
	echo "$pid"
}

# stop_pid PID NAME: SIGTERM, wait up to 60 s, then SIGKILL.
stop_pid() {
	local pid=$1 name=$2 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 600; i++)); do
		pid_alive "$pid" || {
			say "$name stopped (pid $pid)"
			return 0
		}
		sleep 0.1
	done
	say "$name did not stop in 60 s; killing pid $pid"
	kill -KILL "$pid" 2>/dev/null || true
}

APT_UPDATED=0
apt_install() {
	local sudo=() i
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null || die "apt-get not found; install $* yourself"
	export DEBIAN_FRONTEND=noninteractive
	# Another apt may hold the lock: wait for it (DPkg::Lock::Timeout) and retry a few times.
	local apt=("${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=600)
	if [ "$APT_UPDATED" = 0 ]; then
		say "apt-get update"
		for ((i = 1; ; i++)); do
			"${apt[@]}" update -qq >"$STATE/apt.log" 2>&1 && break
			[ "$i" -ge 5 ] && { tail -20 "$STATE/apt.log" >&2; die "apt-get update failed"; }
			sleep 10
		done
		APT_UPDATED=1
	fi
	say "apt-get install $*"
	for ((i = 1; ; i++)); do
		"${apt[@]}" install -y -qq --no-install-recommends "$@" >>"$STATE/apt.log" 2>&1 && break
		[ "$i" -ge 5 ] && { tail -20 "$STATE/apt.log" >&2; die "apt-get install $* failed"; }
		sleep 10
	done
}

# ---------------------------------------------------------------- redis

redis_ping() {
	timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

redis_install() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		apt_install redis-server redis-tools
	fi
}

redis_up() {
	local pid i
	mkdir -p "$REDIS_DIR"
	if pid=$(pid_is "$REDIS_DIR/redis.pid" redis-server); then
		:
	elif redis_ping; then
		say "redis: reusing the server that already answers on $HOST:$REDIS_PORT (not started by this script)"
		return 0
	elif port_open "$REDIS_PORT"; then
		die "redis: port $REDIS_PORT is taken by something that does not answer PING; set VISREC_REDIS_PORT"
	else
		rm -f "$REDIS_DIR/redis.pid"
		# No config file: everything on the command line, no persistence, loopback only.
		(cd "$REDIS_DIR" && exec redis-server --bind "$HOST" --port "$REDIS_PORT" \
			--save '' --appendonly no --dir "$REDIS_DIR" \
			--daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
			--maxclients 4096 --tcp-backlog 511 </dev/null 9>&-) ||
			die "redis-server failed to start; see $REDIS_DIR/redis.log"
		say "redis: started on $HOST:$REDIS_PORT"
	fi
	for ((i = 0; i < WAIT_S * 10; i++)); do
		redis_ping && return 0
		sleep 0.1
	done
	tail -30 "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
	die "redis: no PONG from $HOST:$REDIS_PORT after ${WAIT_S}s (log above: $REDIS_DIR/redis.log)"
}

redis_down() {
	local pid
	if pid=$(pid_is "$REDIS_DIR/redis.pid" redis-server); then
		timeout 10 redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
		stop_pid "$pid" redis
	else
		redis_ping && say "redis: $HOST:$REDIS_PORT was not started by this script; leaving it running"
	fi
	rm -f "$REDIS_DIR/redis.pid"
}

redis_status() {
	local pid who="not started by this script"
	pid=$(pid_is "$REDIS_DIR/redis.pid" redis-server) && who="pid $pid, started by services.sh"
	if redis_ping; then
		echo "redis  $HOST:$REDIS_PORT  up ($who)"
	else
		echo "redis  $HOST:$REDIS_PORT  down"
		return 1
	fi
}

# ---------------------------------------------------------------- kafka

java_ok() {
	command -v java >/dev/null || return 1
	local v
	v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	[ -n "$v" ] && [ "${v%%.*}" -ge 17 ] 2>/dev/null
}

kafka_install() {
	mkdir -p "$CACHE"
	java_ok || apt_install openjdk-17-jdk-headless
	java_ok || die "Kafka 4 needs Java 17 or newer; 'java' is $(command -v java || echo missing)"

	local want have=""
	want=$(cat "$DEPLOY/kafka/pom.xml" | sha256sum | cut -d' ' -f1)
	[ -f "$CACHE/pom.sha256" ] && have=$(cat "$CACHE/pom.sha256")
	if [ "$want" != "$have" ] || ! compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
		command -v mvn >/dev/null || apt_install maven
		local ver
		ver=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$DEPLOY/kafka/pom.xml")
		say "kafka: fetching Apache Kafka $ver jars from Maven Central with mvn into .cache/kafka/libs (first time only; may take a few minutes)..."
		rm -rf "$LIBS.tmp"
		if ! mvn -q -B -Dstyle.color=never -f "$DEPLOY/kafka/pom.xml" \
			dependency:copy-dependencies -DoutputDirectory="$LIBS.tmp" >"$CACHE/mvn.log" 2>&1; then
			tail -40 "$CACHE/mvn.log" >&2
			die "kafka: mvn could not fetch the broker (full log: $CACHE/mvn.log)"
		fi
		rm -rf "$LIBS" "$CLASSES"
		mv "$LIBS.tmp" "$LIBS"
		echo "$want" >"$CACHE/pom.sha256"
		say "kafka: $(ls "$LIBS" | wc -l) jars in .cache/kafka/libs"
	fi

	# The admin check, compiled once (and again when its source changes).
	local src=$DEPLOY/kafka/KafkaCheck.java srcsum=""
	srcsum=$(sha256sum <"$src" | cut -d' ' -f1)
	if [ ! -f "$CLASSES/KafkaCheck.class" ] || [ "$(cat "$CLASSES/src.sha256" 2>/dev/null)" != "$srcsum" ]; then
		if command -v javac >/dev/null; then
			rm -rf "$CLASSES" && mkdir -p "$CLASSES"
			javac -nowarn -d "$CLASSES" -cp "$LIBS/*" "$src" >"$CACHE/javac.log" 2>&1 ||
				{ cat "$CACHE/javac.log" >&2; die "kafka: could not compile $src"; }
			echo "$srcsum" >"$CLASSES/src.sha256"
		fi
	fi
}

# kafka_check ready|topics TIMEOUT_S: ask the broker for metadata through the Java admin client.
# Without javac (a JRE only) 'ready' falls back to the port plus the "Kafka Server started" log line.
kafka_check() {
	if [ ! -f "$CLASSES/KafkaCheck.class" ]; then
		[ "$1" = ready ] || die "kafka: no javac, so no admin client to list topics"
		port_open "$KAFKA_PORT" && grep -qs 'Kafka Server started' "$KAFKA_DIR"/logs/server.log*
		return
	fi
	timeout $(($2 + 15)) java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="$DEPLOY/kafka/tools-log4j2.xml" \
		-cp "$CLASSES:$LIBS/*" KafkaCheck "$1" "$HOST:$KAFKA_PORT" $(($2 * 1000))
}

kafka_log_tail() {
	local f
	for f in "$KAFKA_DIR/logs/stdout.log" "$KAFKA_DIR/logs/server.log"; do
		[ -s "$f" ] || continue
		printf -- '----- last lines of %s -----\n' "$f" >&2
		tail -40 "$f" >&2
	done
}

kafka_write_config() {
	sed -e "s|@HOST@|$HOST|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
		-e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" \
		"$DEPLOY/kafka/server.properties.in" >"$KAFKA_DIR/server.properties.new"
	mv "$KAFKA_DIR/server.properties.new" "$KAFKA_DIR/server.properties"
}

kafka_format() {
	[ -f "$KAFKA_DIR/data/meta.properties" ] && return 0
	local cid
	if [ -s "$KAFKA_DIR/cluster.id" ]; then
		cid=$(cat "$KAFKA_DIR/cluster.id")
	else
		cid=$(java -cp "$LIBS/*" -Dlog4j2.configurationFile="$DEPLOY/kafka/tools-log4j2.xml" \
			kafka.tools.StorageTool random-uuid 2>"$KAFKA_DIR/format.log") ||
			{ cat "$KAFKA_DIR/format.log" >&2; die "kafka: StorageTool random-uuid failed"; }
		echo "$cid" >"$KAFKA_DIR/cluster.id"
	fi
	say "kafka: formatting storage in deploy/.state/kafka-$KAFKA_PORT/data (cluster id $cid)"
	java -cp "$LIBS/*" -Dlog4j2.configurationFile="$DEPLOY/kafka/tools-log4j2.xml" \
		kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" --ignore-formatted \
		>"$KAFKA_DIR/format.log" 2>&1 ||
		{ cat "$KAFKA_DIR/format.log" >&2; die "kafka: formatting storage failed"; }
}

kafka_up() {
	local pid i started=0
	mkdir -p "$KAFKA_DIR/logs"
	if pid=$(pid_is "$KAFKA_DIR/kafka.pid" kafka.Kafka); then
		:
	elif port_open "$KAFKA_PORT"; then
		if kafka_check ready 20 >/dev/null; then
			say "kafka: reusing the broker that already answers on $HOST:$KAFKA_PORT (not started by this script)"
			return 0
		fi
		die "kafka: port $KAFKA_PORT is taken by something that does not answer as Kafka; set VISREC_KAFKA_PORT"
	else
		port_open "$CONTROLLER_PORT" &&
			die "kafka: controller port $CONTROLLER_PORT is taken; set VISREC_KAFKA_CONTROLLER_PORT"
		rm -f "$KAFKA_DIR/kafka.pid"
		kafka_write_config
		kafka_format
		# Keep the previous run's log for post-mortems.
		[ -f "$KAFKA_DIR/logs/server.log" ] && mv -f "$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/logs/server.log.prev"
		# setsid + nohup: the broker outlives this script and a Ctrl-C on `make test`.
		# 9>&- : do not hand the state lock to the broker.
		# shellcheck disable=SC2086
		setsid nohup java $KAFKA_HEAP -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
			-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
			-Xlog:gc:file="$KAFKA_DIR/logs/gc.log":time,uptime:filecount=3,filesize=10M \
			-Dkafka.logs.dir="$KAFKA_DIR/logs" \
			-Dlog4j2.configurationFile="$DEPLOY/kafka/log4j2.xml" \
			-cp "$LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
			</dev/null >"$KAFKA_DIR/logs/stdout.log" 2>&1 9>&- &
		pid=$!
		echo "$pid" >"$KAFKA_DIR/kafka.pid"
		started=1
		say "kafka: starting on $HOST:$KAFKA_PORT (pid $pid, log deploy/.state/kafka-$KAFKA_PORT/logs/server.log)"
	fi

	# Wait for the port and the broker's own "started" line, then for a real metadata answer.
	local deadline=$((SECONDS + WAIT_S))
	while :; do
		if ! pid_alive "$pid"; then
			kafka_log_tail
			rm -f "$KAFKA_DIR/kafka.pid"
			die "kafka: broker exited during start-up (pid $pid); log tail above"
		fi
		if port_open "$KAFKA_PORT" && { [ "$started" = 0 ] || grep -qs 'Kafka Server started' "$KAFKA_DIR/logs/server.log"; }; then
			break
		fi
		[ "$SECONDS" -ge "$deadline" ] && { kafka_log_tail; die "kafka: not listening on $HOST:$KAFKA_PORT after ${WAIT_S}s; log tail above"; }
		sleep 0.2
	done
	local out left
	while :; do
		left=$((deadline - SECONDS))
		[ "$left" -lt 10 ] && left=10
		if out=$(kafka_check ready "$left" 2>&1); then
			say "kafka: ready on $HOST:$KAFKA_PORT${out:+ — $out}"
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ] || ! pid_alive "$pid"; then
			printf '%s\n' "$out" >&2
			kafka_log_tail
			die "kafka: broker on $HOST:$KAFKA_PORT gave no metadata answer within ${WAIT_S}s; log tail above"
		fi
		sleep 1
	done
}

kafka_down() {
	local pid
	if pid=$(pid_is "$KAFKA_DIR/kafka.pid" kafka.Kafka); then
		say "kafka: stopping (pid $pid; a clean shutdown takes a few seconds)"
		stop_pid "$pid" kafka
	elif port_open "$KAFKA_PORT"; then
		say "kafka: $HOST:$KAFKA_PORT was not started by this script; leaving it running"
	fi
	rm -f "$KAFKA_DIR/kafka.pid"
}

kafka_status() {
	local pid who="not started by this script"
	pid=$(pid_is "$KAFKA_DIR/kafka.pid" kafka.Kafka) && who="pid $pid, started by services.sh"
	if port_open "$KAFKA_PORT"; then
		echo "kafka  $HOST:$KAFKA_PORT  up ($who)"
	else
		echo "kafka  $HOST:$KAFKA_PORT  down${pid:+ (pid $pid alive but not listening)}"
		return 1
	fi
}

# ---------------------------------------------------------------- main

print_env() {
	echo "export VISREC_REDIS_ADDR=$HOST:$REDIS_PORT"
	echo "export VISREC_KAFKA_BROKERS=$HOST:$KAFKA_PORT"
}

lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock -w 600 9 || die "another services.sh has held $STATE/.lock for 10 minutes"
}

cmd=${1:-}
case "$cmd" in
up)
	lock
	t0=$SECONDS
	redis_install
	kafka_install
	redis_up
	kafka_up
	say "up in $((SECONDS - t0))s; for clients: eval \"\$(deploy/services.sh env)\""
	;;
down)
	lock
	kafka_down
	redis_down
	;;
status)
	rc=0
	redis_status || rc=1
	kafka_status || rc=1
	exit "$rc"
	;;
env)
	print_env
	;;
topics)
	kafka_check topics 20
	;;
logs)
	tail -n "${2:-100}" "$KAFKA_DIR/logs/server.log"
	;;
clean)
	lock
	kafka_down
	redis_down
	rm -rf "$REDIS_DIR" "$KAFKA_DIR"
	say "removed deploy/.state/redis-$REDIS_PORT and deploy/.state/kafka-$KAFKA_PORT (Kafka data included)"
	;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
