"""Reads while a worker starts: from the moment its port opens until its sink has made (or
checked) the store's tables, the read API answers 503 ``store_starting`` and /readyz is not
ready; never a 500 from the store. Checked on a new store and on one a stopped worker left, and
with a ClickHouse server that does not answer (503 ``store_unavailable`` where the sink is not)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx

from harness.stack import Worker, free_port
from tests.support.chdb_child import run_chdb_script
from tests.support.events import click

SESSION = "read-at-start"
# One read of each kind of view: the raw event stream and a dashboard figure.
READS = (("/v1/query/events", {"session_id": SESSION}), ("/v1/stats/traffic", {}))


def read_statuses_while_starting(worker: Worker) -> tuple[Counter[str], list[str]]:
    """Start the worker and read through its API until it is ready: how often each answer
    came (status and error code), and the answers given after /readyz had said ready."""
    starting = threading.Thread(target=worker.start)
    starting.start()
    seen: Counter[str] = Counter()
    after_ready: list[str] = []
    with httpx.Client(
        base_url=worker.base_url,
        headers={"Authorization": f"Bearer {worker.read_secret}"},
        timeout=10,
    ) as client:
        while starting.is_alive():
            try:
                ready = client.get("/readyz").status_code == 200
                answers = [describe(client.get(path, params=params)) for path, params in READS]
            except httpx.TransportError:
                continue  # the port is not open yet
            seen.update(answers)
            if ready:
                after_ready.extend(answers)
    starting.join()
    return seen, after_ready


def read_once(worker: Worker, path: str = READS[0][0], secret: str | None = None) -> httpx.Response:
    params = dict(READS)[path]
    return httpx.get(
        f"{worker.base_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {secret if secret is not None else worker.read_secret}"},
        timeout=30,
    )


def describe(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return f"{response.status_code} {body.get('error', '')}".strip()


def test_reads_wait_for_the_store_tables_on_a_new_store(worker_factory: Any) -> None:
    worker = worker_factory()
    seen, after_ready = read_statuses_while_starting(worker)
    assert set(seen) <= {"503 store_starting", "200"}, seen
    assert seen["503 store_starting"] > 0, "no read arrived before the tables existed"
    assert set(after_ready) <= {"200"}, after_ready

    assert read_once(worker).json() == {"events": [], "truncated": False}


def test_a_restarted_worker_reads_its_stored_events(worker_factory: Any) -> None:
    worker = worker_factory().start()
    sent = [click(worker.api_key, SESSION) for _ in range(50)]
    assert worker.post({"events": sent}).status_code == 202
    worker.wait_for_session(SESSION, 50)
    assert worker.stop() == 0

    seen, after_ready = read_statuses_while_starting(worker)
    assert set(seen) <= {"503 store_starting", "200"}, seen
    assert set(after_ready) <= {"200"}, after_ready
    stored = worker.session_events(SESSION)
    assert sorted(e["event_id"] for e in stored) == sorted(e["eventId"] for e in sent)


MISSING_TABLE_SCRIPT = r"""
import json, sys
from schemas.store_errors import is_missing_table
from trackflow_app.store import EventStore

store = EventStore("chdb://" + sys.argv[1], "events")
answers = {"ready_before": store.schema_ready}
for name, sql in {
    "missing_table": "SELECT count() FROM events",
    "missing_database": "SELECT count() FROM nowhere.events",
    "syntax": "SELEC 1",
}.items():
    try:
        store.query_sync(sql)
    except Exception as exc:
        answers[name] = is_missing_table(exc)
store._ensure_schema()
answers["ready_after"] = store.schema_ready
answers["rows"] = store.query_sync("SELECT count() AS n FROM events")[0]["n"]
print(json.dumps(answers))
"""


def test_the_engine_s_missing_table_error_is_recognised(tmp_path: Any) -> None:
    answers = run_chdb_script(MISSING_TABLE_SCRIPT, str(tmp_path / "store"))
    assert answers == {
        "ready_before": False,
        "missing_table": True,
        "missing_database": True,
        "syntax": False,
        "ready_after": True,
        "rows": 0,
    }


def test_reads_while_the_store_server_does_not_answer(worker_factory: Any) -> None:
    server = f"http://127.0.0.1:{free_port()}"  # no ClickHouse server listens there
    with_sink = worker_factory(TRACKFLOW_CLICKHOUSE_URL=server).start(until_ready=False)
    ingest_only = worker_factory(
        TRACKFLOW_CLICKHOUSE_URL=server, TRACKFLOW_SINK_ENABLED="false"
    ).start(until_ready=False)
    for path, _ in READS:
        answer = read_once(with_sink, path)
        assert (answer.status_code, answer.json()["error"]) == (503, "store_starting"), path
        assert answer.headers["Retry-After"] == "2"
        answer = read_once(ingest_only, path)
        assert (answer.status_code, answer.json()["error"]) == (503, "store_unavailable"), path
        assert answer.headers["Retry-After"] == "10"
        # Without a read secret the answer is 401, whatever state the store is in.
        assert read_once(with_sink, path, secret="not-a-read-secret").status_code == 401
