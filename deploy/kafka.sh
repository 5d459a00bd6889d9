#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for TrackFlow, without Docker.
#
#   deploy/kafka.sh fetch    resolve the broker from Maven Central into the cache (once)
#   deploy/kafka.sh start    write server.properties, format storage if new, start, wait until ready
#   deploy/kafka.sh run      like start, but in the foreground (Ctrl-C stops the broker)
#   deploy/kafka.sh stop     stop the broker started by `start`
#   deploy/kafka.sh status   exit 0 when the broker answers
#
# A local N-node cluster (KRaft, every node both controller and broker), for replicated topics:
#   deploy/kafka.sh cluster start [N]   start N nodes [3] together, wait until each is ready
#   deploy/kafka.sh cluster stop        stop every node
#   deploy/kafka.sh cluster status      exit 0 when every node answers
#   deploy/kafka.sh cluster url         print the TRACKFLOW_BROKER_URL of the cluster
#   deploy/kafka.sh node I start|stop|kill|status   one node (rolling restarts, fault tests)
# Node I listens on port + 2(I-1) (its controller on the port after that) and keeps its
# files in $TRACKFLOW_KAFKA_DIR/node-I.
#
# Environment (defaults in brackets):
#   KAFKA_HOME                     use this Kafka install (its libs/) instead of fetching one
#   TRACKFLOW_KAFKA_CACHE          [.cache/kafka]  where Maven's copy of the jars is kept
#   TRACKFLOW_KAFKA_DIR            [var/kafka; a cluster: var/kafka-cluster]
#                                                  config, logs and data of the local broker(s)
#   TRACKFLOW_KAFKA_PORT           [9092]          client port (the controller uses port+1)
#   TRACKFLOW_KAFKA_HEAP           [512m; a cluster: 256m per node]   broker heap
#   TRACKFLOW_KAFKA_NODES          [3]             nodes of `cluster start` without N
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cache="${TRACKFLOW_KAFKA_CACHE:-$root/.cache/kafka}"
dir="${TRACKFLOW_KAFKA_DIR:-$root/var/kafka}"
base_port="${TRACKFLOW_KAFKA_PORT:-9092}"
port="$base_port"
controller_port=$((port + 1))
heap="${TRACKFLOW_KAFKA_HEAP:-512m}"
pidfile="$dir/kafka.pid"
# A single node by default; use_node points these at one node of a cluster.
node_id=1
nodes=1
cluster_dir=""
jvm_flags=(-XX:+UseG1GC)

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
  printf '%s\n' java -Xms128m "-Xmx$heap" "${jvm_flags[@]}" -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$here/kafka/log4j2.properties" "-Dkafka.logs.dir=$dir/logs" \
    -cp "$(classpath)"
}

# The broker's GC pauses, as Kafka's own start scripts log them (a stalled produce shows here).
gc_log() {
  printf '%s' "-Xlog:gc:file=$dir/logs/kafkaServer-gc.log:time,uptime:filecount=5,filesize=20M"
}

java_run() {
  local cmd; mapfile -t cmd < <(jvm)
  "${cmd[@]}" "$@"
}

voters() {
  local i out=""
  for i in $(seq 1 "$nodes"); do
    out+="${out:+,}$i@127.0.0.1:$((base_port + 2 * (i - 1) + 1))"
  done
  echo "$out"
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  # Internal topics (consumer offsets, transactions) are replicated like the data topics.
  local internal_rf=$((nodes < 3 ? nodes : 3))
  local internal_isr=$((internal_rf > 1 ? 2 : 1))
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=$internal_rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$internal_rf
transaction.state.log.min.isr=$internal_isr
share.coordinator.state.topic.replication.factor=$internal_rf
share.coordinator.state.topic.min.isr=$internal_isr
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=168
num.network.threads=2
num.io.threads=4
EOF
  if ((nodes > 1)); then
    # A dead node is fenced (and leaves every ISR) after 4 s without a heartbeat rather than
    # 9 s; a live follower that stops fetching leaves the ISR after 10 s rather than 30 s.
    cat >>"$dir/server.properties" <<EOF
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
replica.lag.time.max.ms=10000
EOF
  fi
}

format_storage() {
  [[ -f "$dir/data/meta.properties" ]] && return 0
  local cluster_id
  if [[ -n "$cluster_dir" ]]; then  # every node of a cluster is formatted with the same id
    [[ -s "$cluster_dir/cluster.id" ]] ||
      java_run kafka.tools.StorageTool random-uuid | tail -n 1 >"$cluster_dir/cluster.id"
    cluster_id="$(cat "$cluster_dir/cluster.id")"
  else
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid | tail -n 1)"
  fi
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

# The port the broker of $dir was configured with (its server.properties), or nothing.
configured_port() {
  sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/server.properties" 2>/dev/null
}

# A broker of $dir runs, but for another port: a second broker needs its own folder.
elsewhere() {
  local pid="$1" other; other="$(configured_port)"
  [[ -n "$other" && "$other" != "$port" ]] || return 1
  log "$dir holds the broker of pid $pid on port $other, not $port: set TRACKFLOW_KAFKA_DIR for a second broker, or TRACKFLOW_KAFKA_PORT=$other to use that one"
}

start() {
  local pid
  if pid="$(running_pid)"; then
    if elsewhere "$pid"; then exit 1; fi
    log "already running (pid $pid)"; return 0
  fi
  if answering; then log "something already listens on 127.0.0.1:$port; using it"; return 0; fi
  prepare
  launch
  wait_ready "$(cat "$pidfile")"
}

launch() {
  local cmd; mapfile -t cmd < <(jvm)
  setsid nohup "${cmd[@]}" "$(gc_log)" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
}

run() {
  local pid
  # Not over a running broker: prepare would empty its server.log, and the new one not bind.
  if pid="$(running_pid)"; then log "already running (pid $pid): stop it first"; exit 1; fi
  if answering; then log "something already listens on 127.0.0.1:$port"; exit 1; fi
  prepare
  local cmd; mapfile -t cmd < <(jvm)
  exec "${cmd[@]}" "$(gc_log)" kafka.Kafka "$dir/server.properties"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then log "not running"; rm -f "$pidfile"; return 0; fi
  if elsewhere "$pid"; then log "not stopping it"; return 1; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "did not stop in 30 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

kill_node() {
  local pid
  if ! pid="$(running_pid)"; then log "not running"; rm -f "$pidfile"; return 0; fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  log "node $node_id killed (pid $pid)"
}

# -- cluster ----------------------------------------------------------------------------------
cluster_home="${TRACKFLOW_KAFKA_DIR:-$root/var/kafka-cluster}"
cluster_heap="${TRACKFLOW_KAFKA_HEAP:-256m}"

known_nodes() {
  if [[ -f "$cluster_home/nodes" ]]; then
    cat "$cluster_home/nodes"
  else
    echo "${TRACKFLOW_KAFKA_NODES:-3}"
  fi
}

use_node() {  # point the single-node functions at node $1 of a $nodes-node cluster
  node_id="$1"
  if ! [[ "$node_id" =~ ^[0-9]+$ ]] || ((node_id < 1 || node_id > nodes)); then
    log "node must be 1..$nodes, not '$node_id'"
    exit 2
  fi
  cluster_dir="$cluster_home"
  dir="$cluster_home/node-$node_id"
  port=$((base_port + 2 * (node_id - 1)))
  controller_port=$((port + 1))
  heap="$cluster_heap"
  # Several brokers share the machine's cores: the quick JIT tier and the serial collector
  # cost less CPU at start-up and at a test's loads than C2 and G1's background threads.
  jvm_flags=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC)
  pidfile="$dir/kafka.pid"
}

cluster_url() {
  local i out=""
  for i in $(seq 1 "$nodes"); do out+="${out:+;}127.0.0.1:$((base_port + 2 * (i - 1)))"; done
  echo "kafka://$out"
}

cluster_start() {
  nodes="${1:-$(known_nodes)}"
  if ! [[ "$nodes" =~ ^[0-9]+$ ]] || ((nodes < 1)); then log "node count must be >= 1"; exit 2; fi
  if [[ -f "$cluster_home/nodes" && "$(cat "$cluster_home/nodes")" != "$nodes" ]]; then
    log "$cluster_home holds a $(cat "$cluster_home/nodes")-node cluster; remove it to resize"
    exit 1
  fi
  mkdir -p "$cluster_home"
  echo "$nodes" >"$cluster_home/nodes"
  fetch
  local i pids=() launched=()
  # Every port is checked before any node is launched: a refusal leaves no node behind.
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    if ! running_pid >/dev/null && answering; then
      log "127.0.0.1:$port is taken by another process"; exit 1
    fi
  done
  # Every node is launched before any can be ready: a node's broker waits for a controller
  # quorum (a majority of the nodes).
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    if running_pid >/dev/null; then pids+=("$(cat "$pidfile")"); continue; fi
    prepare
    launch
    pids+=("$(cat "$pidfile")")
    launched+=("$i")
  done
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    if ! wait_ready "${pids[$((i - 1))]}"; then
      # The nodes this start launched do not stay behind (nodes already running do).
      local j pid
      for j in "${launched[@]}"; do
        use_node "$j"
        if pid="$(running_pid)"; then kill -TERM "$pid"; fi
      done
      for j in "${launched[@]}"; do
        use_node "$j"
        stop
      done
      exit 1
    fi
  done
  log "cluster of $nodes ready: $(cluster_url)"
}

cluster_stop() {
  nodes="$(known_nodes)"
  local i pid
  # SIGTERM to every node at once: one by one, the last nodes would wait for a lost quorum.
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    if pid="$(running_pid)"; then kill -TERM "$pid"; fi
  done
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    stop
  done
}

cluster_status() {
  nodes="$(known_nodes)"
  local i
  for i in $(seq 1 "$nodes"); do
    use_node "$i"
    answering || return 1
  done
}

node_command() {
  nodes="$(known_nodes)"
  use_node "${1:-}"
  case "${2:-}" in
    start) fetch; start ;;
    stop) stop ;;
    kill) kill_node ;;
    status) answering ;;
    *) echo "usage: $0 node I start|stop|kill|status" >&2; exit 2 ;;
  esac
}

usage="fetch|start|run|stop|status | cluster start [N]|stop|status|url | node I start|stop|kill|status"
case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  run) run ;;
  stop) stop ;;
  status) answering ;;
  cluster)
    case "${2:-}" in
      start) cluster_start "${3:-}" ;;
      stop) cluster_stop ;;
      status) cluster_status ;;
      url) nodes="$(known_nodes)"; cluster_url ;;
      *) echo "usage: $0 $usage" >&2; exit 2 ;;
    esac ;;
  node) node_command "${2:-}" "${3:-}" ;;
  *) echo "usage: $0 $usage" >&2; exit 2 ;;
esac
