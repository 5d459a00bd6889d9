"""Bots end to end: a Googlebot batch and a Chrome batch through a real worker (edge, Kafka,
validate, sink, chDB); the stored flag, and the read API with and without include_bots."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from harness.stack import ROOT, Worker
from tests.support import events as ev
from tests.unit.test_bots import CHROME, GOOGLEBOT

HOUR = 3_600_000


def stats(worker: Worker, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{worker.base_url}/v1/stats/{path}",
        params=params,
        headers={"Authorization": f"Bearer {worker.read_secret}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def dashboard_figures(worker: Worker, fragment: str) -> dict[str, Any]:
    """The figures the dashboard renders in headless Chromium (web/dashboard/e2e)."""
    e2e = ROOT / "web" / "dashboard" / "e2e"
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium missing: `make browser` installs it (make test does)")
    if not (e2e / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=e2e, check=True, timeout=300)
    env = {
        **os.environ,
        "TRACKFLOW_E2E_BASE_URL": worker.base_url,
        "TRACKFLOW_E2E_READ_SECRET": worker.read_secret,
        "TRACKFLOW_E2E_HASH": fragment,
    }
    run = subprocess.run(
        ["node", "dashboard.mjs"], cwd=e2e, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, f"dashboard e2e failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    figures: dict[str, Any] = orjson.loads(run.stdout.strip().splitlines()[-1])
    return figures


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_googlebot_is_stored_flagged_and_counted_only_when_asked(worker: Worker) -> None:
    now = ev.now_ms()
    earlier = now - 2 * HOUR  # a whole hour of the range: sessions come from the rollup there
    sessions = {}
    for name, user_agent in (("bot", GOOGLEBOT), ("human", CHROME)):
        sid = f"{name}-{uuid.uuid4().hex[:12]}"
        batch = [ev.page_view(worker.api_key, sid, earlier), ev.page_view(worker.api_key, sid, now)]
        for event in batch:
            event["userId"] = f"user-{name}"
        response = worker.post({"events": batch}, headers={"User-Agent": user_agent})
        assert response.status_code == 202, response.text
        sessions[name] = sid

    bot_rows = worker.wait_for_session(sessions["bot"], 2)
    human_rows = worker.wait_for_session(sessions["human"], 2)
    assert [row["is_bot"] for row in bot_rows] == [True, True]
    assert [row["user_agent"] for row in bot_rows] == [GOOGLEBOT, GOOGLEBOT]
    assert [row["is_bot"] for row in human_rows] == [False, False]
    # Googlebot's smartphone UA names Chrome on Android; the tracker's deviceInfo says the same.
    assert {row["browser"] for row in bot_rows + human_rows} == {"Chrome"}

    window = {"from": str((earlier // HOUR - 1) * HOUR), "to": str(now + 1000)}
    hourly = {**window, "interval": "hour"}
    expected = {"0": (2, 1, 1), "1": (4, 2, 2)}  # page views, sessions, users
    for flag, (page_views, session_count, users) in expected.items():
        traffic = stats(worker, "traffic", **hourly, include_bots=flag)
        assert traffic["range"]["include_bots"] is (flag == "1")
        assert traffic["totals"] == {
            "page_views": page_views,
            "sessions": session_count,
            "users": users,
        }
        by_browser = stats(worker, "breakdown", **window, by="browser", include_bots=flag)
        assert by_browser["rows"] == [
            {"value": "Chrome", "sessions": session_count, "page_views": page_views}
        ]
        pages = stats(worker, "pages", **window, include_bots=flag)["pages"]
        assert [(p["page_views"], p["sessions"]) for p in pages] == [(page_views, session_count)]
        assert stats(worker, "sessions", **window, include_bots=flag)["sessions"] == session_count
    # Left out by default: no include_bots is include_bots=0.
    assert stats(worker, "traffic", **hourly)["totals"]["page_views"] == 2
    refused = httpx.get(
        f"{worker.base_url}/v1/stats/traffic",
        params={"include_bots": "yes"},
        headers={"Authorization": f"Bearer {worker.read_secret}"},
        timeout=30,
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "include_bots must be 1, 0, true or false"

    # The dashboard's "Bots: include" box, set from the URL fragment, sends include_bots=1 to
    # every panel (without it the dashboard shows the API's default figures, test_dashboard).
    fragment = f"from={iso(int(window['from']))}&to={iso(now + 60_000)}&interval=hour"
    shown = dashboard_figures(worker, fragment + "&include_bots=1")
    assert shown["problems"] == []
    assert shown["include_bots"] is True
    assert "include_bots=1" in shown["hash_after_reload"]
    assert (shown["traffic"]["page_views"], shown["traffic"]["sessions"]) == (4, 2)
    assert shown["breakdowns"]["browser"] == [{"value": "Chrome", "sessions": 2, "page_views": 4}]
