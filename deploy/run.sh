#!/usr/bin/env bash
# `make run`: local Kafka + one TrackFlow worker + embedded ClickHouse (chDB), in the foreground.
# A stop by INT (Ctrl-C), TERM or HUP, once or repeatedly, to this script or to its whole process
# group (`timeout`, supervisors, a closed terminal): the worker stops first (its sink flushes what
# it buffered; the worker bounds its own stop), then the Kafka broker this script started.
# Every TRACKFLOW_* variable already set in the environment wins over the defaults below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TRACKFLOW_API_KEYS="${TRACKFLOW_API_KEYS:-dev-key}"
export TRACKFLOW_READ_KEYS="${TRACKFLOW_READ_KEYS:-dev-key:dev-read-secret}"

worker_pid=""
started_kafka=0
stopping=0

# Runs once, whatever ends the script. From its first line on, further INT/TERM/HUP (and PIPE,
# should the terminal or pipe reading our output be gone) are ignored
# (by this script and the commands it runs): `make` forwards the group's TERM a second time, and
# a repeated Ctrl-C must not cut the worker's flush or the broker's stop short.
stop_all() {
  trap '' INT TERM HUP PIPE
  ((stopping)) && return 0
  stopping=1
  if [[ -n "${watcher_pid:-}" ]]; then kill "$watcher_pid" 2>/dev/null || true; fi
  if [[ -n "$worker_pid" ]]; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    while kill -0 "$worker_pid" 2>/dev/null; do wait "$worker_pid" 2>/dev/null || true; done
  fi
  if [[ "$started_kafka" == 1 ]]; then deploy/kafka.sh stop && rm -f "$owner_mark" || true; fi
}
on_signal() {
  local code="$1"
  ((stopping)) && return 0
  echo "TrackFlow: stopping (signal $((code - 128)))" >&2
  stop_all
  exit "$code"
}
trap stop_all EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# GNU make passes TERM on to this script, but not INT or HUP: sent to `make` alone rather than
# to the whole group (`kill -INT <make's pid>`, a supervisor that signals the process it
# started), they would leave make waiting for a script that never heard them. make puts a
# signal's handler back to the default once it has caught it, so a change in the signals it
# catches (SigCgt in /proc) is such a signal: this script then stops as if it had got INT.
stop_signals_caught() {
  local mask
  mask="$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)" || return 1
  [[ -n "$mask" ]] || return 1
  echo $(( 16#$mask & 0x4007 ))  # HUP, INT, QUIT, TERM
}
watch_make() {
  local make_pid="$1" run_pid="$2" caught now
  caught="$(stop_signals_caught "$make_pid")" || return 0
  while sleep 0.5; do
    now="$(stop_signals_caught "$make_pid")" || return 0
    if [[ "$now" != "$caught" ]]; then
      kill -INT "$run_pid" 2>/dev/null || true
      return 0
    fi
  done
}
watcher_pid=""
if [[ "$(cat "/proc/$PPID/comm" 2>/dev/null)" == make ]]; then
  watch_make "$PPID" "$$" &
  watcher_pid=$!
fi

# A local broker is started only when the configured one is this machine's default address.
local_broker="kafka://127.0.0.1:${TRACKFLOW_KAFKA_PORT:-9092}"
export TRACKFLOW_BROKER_URL="${TRACKFLOW_BROKER_URL:-$local_broker}"
# "<broker pid> <make run's pid>" while a `make run` owns the broker it started. A run that was
# killed outright (SIGKILL) cannot stop its broker; the next run takes it over instead of leaving
# it running after it stops. A broker another live run, or the operator, started is left alone.
kafka_dir="${TRACKFLOW_KAFKA_DIR:-var/kafka}"
owner_mark="$kafka_dir/started-by-make-run"
# Whether a process runs: a killed one whose parent has not reaped it yet is a zombie, not running.
runs() {
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ -n "$state" && "$state" != Z ]]
}
left_by_a_killed_run() {
  local broker_pid run_pid
  read -r broker_pid run_pid 2>/dev/null <"$owner_mark" || return 1
  [[ "$broker_pid" == "$(cat "$kafka_dir/kafka.pid" 2>/dev/null)" ]] || return 1
  runs "$broker_pid" && ! runs "$run_pid"
}
if [[ "$TRACKFLOW_BROKER_URL" == "$local_broker" ]]; then
  if ! deploy/kafka.sh status; then
    started_kafka=1  # set first: a stop during the broker's start-up still stops it
    deploy/kafka.sh start
  elif left_by_a_killed_run; then
    started_kafka=1
    echo "TrackFlow: taking over the Kafka broker a killed make run left running; it stops with this one" >&2
  fi
  if [[ "$started_kafka" == 1 ]]; then echo "$(cat "$kafka_dir/kafka.pid") $$" >"$owner_mark"; fi
fi

echo "TrackFlow: ingest key '${TRACKFLOW_API_KEYS%%,*}', POST http://127.0.0.1:${TRACKFLOW_WEB_PORT:-6066}/v1/batch"
.venv/bin/faust -A trackflow_app worker -l "${TRACKFLOW_LOG_LEVEL:-info}" &
worker_pid=$!
status=0
# `wait` returns early when a trapped signal arrives; the trap has then stopped the worker.
wait "$worker_pid" || status=$?
worker_pid=""
exit "$status"
