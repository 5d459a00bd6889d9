"""Start-up and stop of the worker and of `make run`, with real Kafka and a real chDB store.

* Start-up with every path set from outside to folders that do not exist yet.
* `make run` stopped by a signal to its whole process group (as `timeout`, supervisors and
  container stops do) or to `make` alone, once or twice: no process left, the broker's port
  free, nothing lost.
* A worker stopped while its broker goes away exits in bounded time; a restarted worker then
  stores every event.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from harness.stack import ROOT, VENV_BIN, Broker, Worker, free_port, port_pair, start_broker
from tests.support import events as ev
from tests.support.kafka import read_topic_until
from tests.support.processes import alive, answering, group_members, wait_until
from trackflow_app.shutdown import STOP_MARGIN_S


def store_count(env: dict[str, str], session_id: str) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trackflow_app",
            "query",
            f"SELECT count() AS n FROM events FINAL WHERE session_id = '{session_id}'",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    return int(orjson.loads(out.splitlines()[0])["n"])


# -- start-up ------------------------------------------------------------------------------


def test_worker_starts_with_paths_to_folders_that_do_not_exist(
    worker_factory: type[Worker], tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh" / "var"
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_DATADIR=str(fresh / "faust"),
        TRACKFLOW_CLICKHOUSE_URL=f"chdb://{fresh / 'deeper' / 'clickhouse'}",
    ).start()
    sid = f"s-{uuid.uuid4().hex[:10]}"
    assert worker.post({"events": ev.seed_examples(worker.api_key, sid)}).status_code == 202
    assert len(worker.wait_for_session(sid, 5)) == 5
    assert worker.stop() == 0
    assert (fresh / "faust").is_dir()


def worker_that_cannot_start(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run `faust -A trackflow_app worker` with ``env`` until it exits, its output captured."""
    return subprocess.run(
        [str(VENV_BIN / "faust"), "-A", "trackflow_app", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )


def only_these_settings(**variables: str) -> dict[str, str]:
    """This process's environment with these TRACKFLOW_* variables and no others."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        **variables,
    }


def stderr_lines(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    return done.stderr.decode().strip().splitlines()


def test_worker_names_the_setting_whose_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = worker_that_cannot_start(
        only_these_settings(
            TRACKFLOW_DATADIR=str(blocker / "faust"),
            TRACKFLOW_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
        )
    )
    assert done.returncode != 0
    assert stderr_lines(done) == [
        f"TrackFlow: cannot create the folder of TRACKFLOW_DATADIR={blocker / 'faust'}: "
        "Not a directory"
    ]


def test_worker_names_the_variable_whose_value_is_not_valid(tmp_path: Path) -> None:
    done = worker_that_cannot_start(
        only_these_settings(TRACKFLOW_WEB_PORT="eighty", TRACKFLOW_DATADIR=str(tmp_path / "faust"))
    )
    assert done.returncode == 1
    assert stderr_lines(done) == [
        "TrackFlow: TRACKFLOW_WEB_PORT is not valid: Input should be a valid integer, unable to "
        "parse string as an integer"
    ]


def test_worker_names_the_settings_when_its_web_port_is_taken(
    broker: Broker, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = worker_that_cannot_start(Worker(broker=broker, workdir=tmp_path, port=port).env)
    assert done.returncode == 1
    assert (
        f"TrackFlow cannot listen on 127.0.0.1:{port}: Address already in use; stop what holds "
        "it or set another TRACKFLOW_WEB_PORT (or TRACKFLOW_WEB_BIND)"
    ) in (done.stdout + done.stderr).decode()


HOLD_STORE = r"""
import sys
from trackflow_app.store import EventStore

store = EventStore("chdb://" + sys.argv[1])
store._connect()
print("open", flush=True)
sys.stdin.read()  # holds the store until the test closes this pipe
"""


def test_worker_names_the_broker_it_cannot_reach(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = worker_that_cannot_start(
        only_these_settings(
            TRACKFLOW_API_KEYS="site-key",
            TRACKFLOW_BROKER_URL=f"kafka://127.0.0.1:{port}",
            TRACKFLOW_DATADIR=str(tmp_path / "faust"),
            TRACKFLOW_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
            TRACKFLOW_WEB_PORT=str(free_port()),
        )
    )
    assert done.returncode == 1
    output = (done.stdout + done.stderr).decode()
    assert f"TrackFlow cannot reach Kafka at 127.0.0.1:{port} (" in output
    assert (
        "): start the broker (make run starts a local one) or set TRACKFLOW_BROKER_URL to one "
        "that runs"
    ) in output


def test_worker_without_ingest_keys_names_the_setting(tmp_path: Path) -> None:
    done = worker_that_cannot_start(
        only_these_settings(
            TRACKFLOW_DATADIR=str(tmp_path / "faust"),
            TRACKFLOW_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
            TRACKFLOW_WEB_PORT=str(free_port()),
            TRACKFLOW_SINK_ENABLED="false",
        )
    )
    assert done.returncode == 1
    assert (
        "TrackFlow has no ingest keys: set TRACKFLOW_API_KEYS to the keys sites send"
        in (done.stdout + done.stderr).decode()
    )


def test_events_wait_in_kafka_while_the_store_server_is_not_there(
    worker_factory: Callable[..., Worker],
) -> None:
    store = f"http://127.0.0.1:{free_port()}"  # no ClickHouse server listens there
    worker = worker_factory(TRACKFLOW_CLICKHOUSE_URL=store).start(until_ready=False)
    sid = f"s-{uuid.uuid4().hex[:10]}"
    sent = ev.seed_examples(worker.api_key, sid)
    assert worker.post({"events": sent}).status_code == 202
    processed = read_topic_until(
        worker.broker.bootstrap,
        worker.env["TRACKFLOW_PROCESSED_TOPIC"],
        lambda values: {v["event_id"] for v in values} >= {e["eventId"] for e in sent},
    )
    assert {v["event_id"] for v in processed} >= {e["eventId"] for e in sent}
    ready = httpx.get(f"{worker.base_url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["clickhouse"] is False
    assert f"clickhouse not reachable at {store} (attempt 1)" in worker.log_path.read_text()
    assert worker.proc is not None and worker.proc.poll() is None  # still running
    started = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - started < 30


@contextmanager
def store_held_elsewhere(store: Path) -> Iterator[int]:
    """The embedded store at ``store`` open in another process (its pid) for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_STORE, str(store)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        yield holder.pid
    finally:
        holder.communicate(timeout=60)


def test_worker_names_the_process_that_holds_its_embedded_store(
    broker: Broker, tmp_path: Path
) -> None:
    worker = Worker(broker=broker, workdir=tmp_path)
    store = tmp_path / f"store-{worker.name}"  # the folder the worker's settings name
    with store_held_elsewhere(store) as pid:
        done = worker_that_cannot_start(worker.env)
    assert done.returncode == 1
    assert (
        f"TrackFlow cannot open the embedded store {store}: pid {pid} holds it (chDB "
        "opens a store in one process only); stop that process, give this worker another "
        "TRACKFLOW_CLICKHOUSE_URL, or run it with TRACKFLOW_SINK_ENABLED=false to ingest only"
    ) in (done.stdout + done.stderr).decode()


def test_query_tool_points_to_the_http_api_while_a_worker_holds_the_store(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    with store_held_elsewhere(store) as pid:
        done = subprocess.run(
            [sys.executable, "-m", "trackflow_app", "query", "SELECT 1"],
            cwd=ROOT,
            env=only_these_settings(TRACKFLOW_CLICKHOUSE_URL=f"chdb://{store}"),
            capture_output=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stdout == b""
    assert stderr_lines(done)[-1] == (
        f"TrackFlow: the embedded store {store} is open in pid {pid} (a running worker): read "
        "through its HTTP API (/v1/query/..., /v1/stats/...) or stop it first"
    )


# -- `make run` stopped by a signal to it or to its process group -------------------------------


def hangups_not_ignored() -> None:
    # As from a terminal: a suite started under `nohup` would pass its ignored SIGHUP on to make,
    # and an ignored signal cannot be caught (rightly: nohup asks for hangups to be ignored).
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start_make_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`make -s run` in a process group of its own, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            ["make", "-s", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=hangups_not_ignored,
        )


def make_run_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """`make run`'s environment with every port and folder of its own under ``tmp_path`` and no
    TRACKFLOW_* variable of the calling shell; ``settings`` are added last."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        "TRACKFLOW_KAFKA_PORT": str(port_pair()),
        "TRACKFLOW_KAFKA_DIR": str(tmp_path / "kafka"),
        "TRACKFLOW_CLICKHOUSE_URL": f"chdb://{tmp_path / 'run' / 'clickhouse'}",
        "TRACKFLOW_DATADIR": str(tmp_path / "run" / "var" / "faust"),
        "TRACKFLOW_WEB_PORT": str(free_port()),
    }
    if "TRACKFLOW_KAFKA_CACHE" in os.environ:
        env["TRACKFLOW_KAFKA_CACHE"] = os.environ["TRACKFLOW_KAFKA_CACHE"]
    return {**env, **settings}


def web_of(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['TRACKFLOW_WEB_PORT']}"


def wait_ready(
    web: str, what: str = "make run ready", running: Callable[[], str] | None = None
) -> None:
    """Until ``web``'s /readyz answers 200; ``running`` returns what to show if the process
    ended first (empty while it runs)."""

    def ready() -> bool:
        if running is not None and (ended := running()):
            raise AssertionError(ended)
        try:
            return httpx.get(f"{web}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 120, what)


@contextmanager
def make_run_process(
    env: dict[str, str], log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[], str]]]:
    """A started `make run`, and a check that says why if it already ended. Whatever the test
    found, nothing of it (nor the broker it started) is left running."""
    proc = start_make_run(env, log)

    def ended() -> str:
        return "" if proc.poll() is None else log.read_text(errors="replace")[-3000:]

    try:
        yield proc, ended
    finally:
        for member in group_members(proc.pid):
            os.kill(int(member.split(":")[0]), signal.SIGKILL)
        pidfile = Path(env["TRACKFLOW_KAFKA_DIR"]) / "kafka.pid"
        if pidfile.exists() and alive(pid := int(pidfile.read_text())):
            os.kill(pid, signal.SIGKILL)


def post_seed_session(web: str, copies: int) -> tuple[str, list[dict[str, Any]]]:
    """``copies`` of the seed's examples in a new session, accepted by ``web``."""
    sid = f"s-{uuid.uuid4().hex[:10]}"
    sent = [e for _ in range(copies) for e in ev.seed_examples("dev-key", sid)]
    response = httpx.post(f"{web}/v1/batch", json={"events": sent}, timeout=30)
    assert response.status_code == 202, response.text
    return sid, sent


def wait_for_metric(web: str, sample: str, timeout: float) -> None:
    """Until ``web``'s /metrics holds the line ``sample`` ("name value")."""
    wait_until(lambda: sample in httpx.get(f"{web}/metrics", timeout=5).text, timeout, sample)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    env = make_run_env(
        tmp_path,
        # Events wait in the sink's buffer until the stop: the stop must flush them.
        TRACKFLOW_SINK_WINDOW_S="600",
        TRACKFLOW_SINK_BATCH_SIZE="100000",
    )
    log = tmp_path / "make-run.log"
    with make_run_process(env, log) as (proc, ended):
        wait_ready(web_of(env), running=ended)
        yield proc, env, log


@pytest.mark.parametrize(
    ("signals", "to_group"),
    [
        ((signal.SIGTERM,), True),
        ((signal.SIGHUP, signal.SIGINT), True),
        # To make's pid alone, as `kill -INT <pid>` or a supervisor that signals the process it
        # started: GNU make passes TERM on to its child, but not INT or HUP.
        ((signal.SIGINT,), False),
        ((signal.SIGHUP,), False),
        ((signal.SIGTERM,), False),
    ],
    ids=["TERM", "HUP-then-INT", "INT-to-make", "HUP-to-make", "TERM-to-make"],
)
def test_make_run_stops_everything_on_a_signal(
    make_run: tuple[subprocess.Popen[bytes], dict[str, str], Path],
    signals: tuple[signal.Signals, ...],
    to_group: bool,
) -> None:
    proc, env, log = make_run
    web = web_of(env)
    kafka_port = int(env["TRACKFLOW_KAFKA_PORT"])
    broker_pid = int((Path(env["TRACKFLOW_KAFKA_DIR"]) / "kafka.pid").read_text())
    sid, sent = post_seed_session(web, 20)
    wait_for_metric(web, f"trackflow_sink_buffered_rows {float(len(sent))}", 30)

    for sig in signals:
        (os.killpg if to_group else os.kill)(proc.pid, sig)
        time.sleep(0.3)
    wait_until(lambda: not group_members(proc.pid), 60, "every process of make run gone")
    wait_until(lambda: not alive(broker_pid), 30, "the broker stopped")
    assert not answering(kafka_port), "the broker's port is still held"
    text = log.read_text(errors="replace")
    assert "sink stopped" in text and "kafka: stopped" in text, text[-3000:]
    assert store_count(env, sid) == len(sent)


def test_the_readme_quickstart_on_make_run(tmp_path: Path) -> None:
    """The README's first steps as written: make run with its development keys, the seed's
    examples posted by deploy/examples/post-seed-examples.sh, the session read back with curl's
    request, then Ctrl-C."""
    env = make_run_env(tmp_path)
    log = tmp_path / "make-run.log"
    web = web_of(env)
    with make_run_process(env, log) as (proc, ended):
        wait_ready(web, running=ended)
        posted = subprocess.run(
            [str(ROOT / "deploy/examples/post-seed-examples.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert orjson.loads(posted.stdout) == {"status": "accepted", "accepted": 5}
        session: list[dict[str, Any]] = []

        def session_read() -> bool:
            response = httpx.get(
                f"{web}/v1/query/events",
                params={"session_id": "session-123"},
                headers={"Authorization": "Bearer dev-read-secret"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            session[:] = response.json()["events"]
            return len(session) == 5

        wait_until(session_read, 30, "the five examples read back")
        kinds = sorted(str(event["event_type"]) for event in session)
        assert kinds == ["click", "error", "error", "page_view", "performance"]
        messages = {
            event["properties"]["message"] for event in session if event["event_type"] == "error"
        }
        assert messages == {"Cannot read property 'x' of undefined", "x is not a function"}
        os.killpg(proc.pid, signal.SIGINT)
        wait_until(lambda: not group_members(proc.pid), 60, "every process of make run gone")
    assert "kafka: stopped" in log.read_text(errors="replace")


def test_the_readme_ingest_only_worker_next_to_make_run(
    make_run: tuple[subprocess.Popen[bytes], dict[str, str], Path], tmp_path: Path
) -> None:
    """README "On one host": the command given there, beside `make run`, takes POSTs, and every
    event either edge accepted is stored once (none dead-lettered by either validate stage)."""
    proc, env, _ = make_run
    second_port = free_port()
    second_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        # The README's command, with the broker make run started on this test's port.
        "TRACKFLOW_BROKER_URL": f"kafka://127.0.0.1:{env['TRACKFLOW_KAFKA_PORT']}",
        "TRACKFLOW_API_KEYS": "dev-key",
        "TRACKFLOW_SINK_ENABLED": "false",
        "TRACKFLOW_WEB_PORT": str(second_port),
        "TRACKFLOW_DATADIR": str(tmp_path / "faust-2"),
    }
    with (tmp_path / "second.log").open("wb") as out:
        second = subprocess.Popen(
            [str(VENV_BIN / "faust"), "-A", "trackflow_app", "worker"],
            cwd=tmp_path,
            env=second_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        second_web = f"http://127.0.0.1:{second_port}"
        wait_ready(second_web, "the ingest-only worker ready")
        _, sent = post_seed_session(web_of(env), 4)
        _, more = post_seed_session(second_web, 4)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        if second.poll() is None:
            second.kill()
    everything = sent + more
    wait_for_metric(web_of(env), f"trackflow_sink_buffered_rows {float(len(everything))}", 60)
    os.killpg(proc.pid, signal.SIGTERM)
    wait_until(lambda: not group_members(proc.pid), 60, "every process of make run gone")
    stored = subprocess.run(
        [sys.executable, "-m", "trackflow_app", "query", "SELECT count() AS n FROM events FINAL"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    assert orjson.loads(stored.splitlines()[0])["n"] == len(everything)


def test_make_run_takes_over_the_broker_a_killed_run_left(
    make_run: tuple[subprocess.Popen[bytes], dict[str, str], Path],
) -> None:
    proc, env, log = make_run
    broker_pid = int((Path(env["TRACKFLOW_KAFKA_DIR"]) / "kafka.pid").read_text())
    os.killpg(proc.pid, signal.SIGKILL)  # nothing of make run can stop its broker now
    wait_until(lambda: not group_members(proc.pid), 30, "make run gone")
    assert alive(broker_pid)

    again = start_make_run(env, log)
    try:
        wait_ready(web_of(env), "the second make run ready")
        os.killpg(again.pid, signal.SIGTERM)
        wait_until(lambda: not group_members(again.pid), 60, "the second make run gone")
    finally:
        for member in group_members(again.pid):
            os.kill(int(member.split(":")[0]), signal.SIGKILL)
    wait_until(lambda: not alive(broker_pid), 30, "the broker stopped")
    assert not answering(int(env["TRACKFLOW_KAFKA_PORT"]))
    assert (
        "TrackFlow: taking over the Kafka broker a killed make run left running; it stops with "
        "this one"
    ) in log.read_text(errors="replace")


def test_make_run_uses_the_broker_already_on_its_port_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    env = make_run_env(tmp_path)
    kafka_dir = Path(env["TRACKFLOW_KAFKA_DIR"])
    started = subprocess.run(
        [str(ROOT / "deploy/kafka.sh"), "start"], env=env, capture_output=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    broker_pid = int((kafka_dir / "kafka.pid").read_text())
    log = tmp_path / "make-run.log"
    with make_run_process(env, log) as (proc, ended):  # also stops that broker at its end
        wait_ready(web_of(env), running=ended)
        assert not (kafka_dir / "started-by-make-run").exists()
        os.killpg(proc.pid, signal.SIGTERM)
        wait_until(lambda: not group_members(proc.pid), 60, "every process of make run gone")
        assert alive(broker_pid) and answering(int(env["TRACKFLOW_KAFKA_PORT"]))
        assert "kafka: stopped" not in log.read_text(errors="replace")


def test_make_run_with_an_existing_broker_starts_none_and_leaves_it_running(
    broker: Broker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    env = make_run_env(
        tmp_path,
        TRACKFLOW_BROKER_URL=broker.url,
        TRACKFLOW_APP_ID=f"trackflow-{tag}",
        TRACKFLOW_SINK_GROUP=f"trackflow-sink-{tag}",
        TRACKFLOW_RAW_TOPIC=f"raw-{tag}",
        TRACKFLOW_PROCESSED_TOPIC=f"processed-{tag}",
        TRACKFLOW_DEAD_LETTER_TOPIC=f"dead-letter-{tag}",
        TRACKFLOW_SINK_WINDOW_S="0.3",
    )
    # TRACKFLOW_KAFKA_PORT is where make run's own broker would go: nothing may start there.
    local_port = int(env["TRACKFLOW_KAFKA_PORT"])
    log = tmp_path / "make-run.log"
    web = web_of(env)
    with make_run_process(env, log) as (proc, ended):
        wait_ready(web, running=ended)
        sid, sent = post_seed_session(web, 10)
        wait_for_metric(web, f"trackflow_rows_inserted_total {float(len(sent))}", 60)
        os.killpg(proc.pid, signal.SIGTERM)
        wait_until(lambda: not group_members(proc.pid), 60, "every process of make run gone")
    text = log.read_text(errors="replace")
    assert "sink stopped" in text, text[-3000:]
    assert "kafka: ready" not in text and "kafka: stopped" not in text, text[-3000:]
    assert not (tmp_path / "kafka").exists()
    assert not answering(local_port)
    assert answering(int(broker.bootstrap.rsplit(":", 1)[1])), "the existing broker was stopped"
    assert store_count(env, sid) == len(sent)


def test_a_second_broker_port_on_the_same_folder_is_refused_and_never_stops_the_first(
    tmp_path: Path,
) -> None:
    first, second = port_pair(), port_pair()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        "TRACKFLOW_KAFKA_DIR": str(tmp_path / "kafka"),
    }
    if "TRACKFLOW_KAFKA_CACHE" in os.environ:
        base["TRACKFLOW_KAFKA_CACHE"] = os.environ["TRACKFLOW_KAFKA_CACHE"]

    def kafka(command: str, port: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "deploy/kafka.sh"), command],
            env={**base, "TRACKFLOW_KAFKA_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert kafka("start", first).returncode == 0
    pid = int((tmp_path / "kafka" / "kafka.pid").read_text())
    try:
        refused = kafka("start", second)
        assert refused.returncode == 1
        assert (
            f"{tmp_path / 'kafka'} holds the broker of pid {pid} on port {first}, not {second}: "
            f"set TRACKFLOW_KAFKA_DIR for a second broker, or TRACKFLOW_KAFKA_PORT={first} to "
            "use that one"
        ) in refused.stderr
        assert kafka("stop", second).returncode == 1
        assert alive(pid) and answering(first)
        assert kafka("stop", first).returncode == 0
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- a worker stopped while its broker goes away -----------------------------------------------


@pytest.mark.parametrize("order", ["broker-gone-first", "broker-gone-0.2s-after-TERM"])
def test_worker_stop_is_bounded_when_the_broker_goes_away(tmp_path: Path, order: str) -> None:
    flush_s = 2.0
    broker_gen = start_broker(tmp_path / "own-broker")
    broker: Broker = next(broker_gen)
    try:
        if not broker.managed:
            pytest.skip("needs a broker this test can stop (TRACKFLOW_TEST_BROKER_URL is set)")
        overrides = {
            "TRACKFLOW_SINK_SHUTDOWN_FLUSH_S": str(flush_s),
            "TRACKFLOW_SESSION_TIMEOUT_S": "6",
            "TRACKFLOW_SINK_WINDOW_S": "600",
            "TRACKFLOW_SINK_BATCH_SIZE": "100000",
        }
        first = Worker(broker=broker, workdir=tmp_path, overrides=overrides).start()
        sid = f"s-{uuid.uuid4().hex[:10]}"
        sent = [e for _ in range(40) for e in ev.seed_examples(first.api_key, sid)]
        assert first.post({"events": sent}).status_code == 202
        wait_until(
            lambda: first.metric("trackflow_sink_buffered_rows") == len(sent),
            30,
            "rows in the sink's buffer",
        )

        assert first.proc is not None
        # A broker gone just before the stop, or 0.2 s into it, has left Faust's consumer thread
        # dead in its own shutdown and the worker waiting on it (the first order reliably).
        if order == "broker-gone-first":
            broker.stop()
            stop_started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
        else:
            stop_started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            broker.stop()
        limit = flush_s + STOP_MARGIN_S + 5
        try:
            first.proc.wait(timeout=limit - (time.monotonic() - stop_started))
        except subprocess.TimeoutExpired:
            first.proc.kill()
            first.proc.wait()
            raise AssertionError(f"worker still running {limit} s after SIGTERM") from None
        took = time.monotonic() - stop_started
        print(f"worker exited {took:.1f} s after SIGTERM, status {first.proc.returncode}")

        # Whatever the first worker stored or left uncommitted, a restarted one stores the rest.
        broker.start()
        second = Worker(
            broker=broker,
            workdir=tmp_path,
            overrides={**overrides, "TRACKFLOW_SINK_WINDOW_S": "0.3"},
            name=first.name,
        ).start(timeout=90)
        stored = second.wait_for_session(sid, len(sent), timeout=60)
        assert sorted(row["event_id"] for row in stored) == sorted(e["eventId"] for e in sent)
        assert second.stop() == 0
    finally:
        broker_gen.close()
