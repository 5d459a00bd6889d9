#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for TrackFlow, without Docker.
#
#   deploy/kafka.sh fetch    resolve the broker from Maven Central into the cache (once)
#   deploy/kafka.sh start    write server.properties, format storage if new, start, wait until ready
#   deploy/kafka.sh run      like start, but in the foreground (Ctrl-C stops the broker)
#   deploy/kafka.sh stop     stop the broker started by `start`
#   deploy/kafka.sh status   exit 0 when the broker answers
#
# Environment (defaults in brackets):
#   KAFKA_HOME                     use this Kafka install (its libs/) instead of fetching one
#   TRACKFLOW_KAFKA_CACHE          [.cache/kafka]  where Maven's copy of the jars is kept
#   TRACKFLOW_KAFKA_DIR            [var/kafka]     config, logs and data of the local broker
#   TRACKFLOW_KAFKA_PORT           [9092]          client port (the controller uses port+1)
#   TRACKFLOW_KAFKA_HEAP           [512m]          broker heap
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cache="${TRACKFLOW_KAFKA_CACHE:-$root/.cache/kafka}"
dir="${TRACKFLOW_KAFKA_DIR:-$root/var/kafka}"
port="${TRACKFLOW_KAFKA_PORT:-9092}"
controller_port=$((port + 1))
heap="${TRACKFLOW_KAFKA_HEAP:-512m}"
pidfile="$dir/kafka.pid"

log() { printf 'kafka: %s\n' "$*" >&2; }

classpath() {
  if [[ -n "${KAFKA_HOME:-}" ]]; then
    [[ -d "$KAFKA_HOME/libs" ]] || { log "KAFKA_HOME=$KAFKA_HOME has no libs/ folder"; exit 1; }
    echo "$KAFKA_HOME/libs/*"
  else
    echo "$cache/libs/*"
  fi
}

fetch() {
  [[ -n "${KAFKA_HOME:-}" ]] && return 0
  if [[ -f "$cache/libs/.complete" ]] && cmp -s "$here/kafka/pom.xml" "$cache/libs/.complete"; then
    return 0
  fi
  command -v mvn >/dev/null || { log "Maven (mvn) is needed to fetch Kafka: apt-get install maven"; exit 1; }
  log "fetching Apache Kafka from Maven Central into $cache (once)"
  rm -rf "$cache/libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$cache/libs"
  cp "$here/kafka/pom.xml" "$cache/libs/.complete"
}

jvm() {
  printf '%s\n' java -Xms128m "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$here/kafka/log4j2.properties" "-Dkafka.logs.dir=$dir/logs" \
    -cp "$(classpath)"
}

java_run() {
  local cmd; mapfile -t cmd < <(jvm)
  "${cmd[@]}" "$@"
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=168
num.network.threads=2
num.io.threads=4
EOF
}

format_storage() {
  [[ -f "$dir/data/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(java_run kafka.tools.StorageTool random-uuid | tail -n 1)"
  log "formatting storage in $dir/data (cluster $cluster_id)"
  java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >/dev/null
}

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

wait_ready() {
  local pid="$1"
  for _ in $(seq 1 120); do
    if answering && grep -q "Kafka Server started" "$dir/logs/server.log" 2>/dev/null; then
      log "ready on 127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited; see $dir/logs/server.log"
      tail -n 30 "$dir/logs/server.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "not ready after 60 s; see $dir/logs/server.log"
  return 1
}

prepare() {
  fetch
  write_config
  format_storage
  : >"$dir/logs/server.log"
}

start() {
  local pid
  if pid="$(running_pid)"; then log "already running (pid $pid)"; return 0; fi
  if answering; then log "something already listens on 127.0.0.1:$port; using it"; return 0; fi
  prepare
  local cmd; mapfile -t cmd < <(jvm)
  setsid nohup "${cmd[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  wait_ready "$!"
}

run() {
  prepare
  local cmd; mapfile -t cmd < <(jvm)
  exec "${cmd[@]}" kafka.Kafka "$dir/server.properties"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then log "not running"; rm -f "$pidfile"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "did not stop in 30 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  run) run ;;
  stop) stop ;;
  status) answering ;;
  *) echo "usage: $0 fetch|start|run|stop|status" >&2; exit 2 ;;
esac
