#!/usr/bin/env bash
# `make run`: local Kafka + one TrackFlow worker + embedded ClickHouse (chDB), in the foreground.
# Ctrl-C / SIGTERM stops the worker first (its sink flushes what it buffered), then Kafka.
# Every TRACKFLOW_* variable already set in the environment wins over the defaults below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TRACKFLOW_API_KEYS="${TRACKFLOW_API_KEYS:-dev-key}"
export TRACKFLOW_READ_KEYS="${TRACKFLOW_READ_KEYS:-dev-key:dev-read-secret}"

# A local broker is started only when the configured one is this machine's default address.
local_broker="kafka://127.0.0.1:${TRACKFLOW_KAFKA_PORT:-9092}"
export TRACKFLOW_BROKER_URL="${TRACKFLOW_BROKER_URL:-$local_broker}"
started_kafka=0
if [[ "$TRACKFLOW_BROKER_URL" == "$local_broker" ]] && ! deploy/kafka.sh status; then
  deploy/kafka.sh start
  started_kafka=1
fi

worker_pid=""
stop_all() {
  trap - INT TERM EXIT
  if [[ -n "$worker_pid" ]] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  if [[ "$started_kafka" == 1 ]]; then deploy/kafka.sh stop; fi
}
trap stop_all INT TERM EXIT

echo "TrackFlow: ingest key '${TRACKFLOW_API_KEYS%%,*}', POST http://127.0.0.1:${TRACKFLOW_WEB_PORT:-6066}/v1/batch"
.venv/bin/faust -A trackflow_app worker -l "${TRACKFLOW_LOG_LEVEL:-info}" &
worker_pid=$!
wait "$worker_pid" || true
