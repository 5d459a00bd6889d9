"""The dashboard in real headless Chromium against a real worker holding a known data set.

web/dashboard/e2e/dashboard.mjs (playwright-core driving Debian's /usr/bin/chromium) opens
/dashboard, is refused with the ingest key, enters the read secret, opens an error group's stack
and prints every rendered figure as JSON; this test demands they equal the read API's figures and
the hand-counted ones. Set TRACKFLOW_UPDATE_SCREENSHOT=1 to refresh docs/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.stack import ROOT, Broker, Worker
from tests.support.stats_data import SECRET_A, TENANT_A, Dataset, percentiles, stats, stats_worker

E2E = ROOT / "web" / "dashboard" / "e2e"
SCREENSHOT = ROOT / "docs" / "dashboard.png"


@pytest.fixture(scope="module")
def stack(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, Dataset, int]]:
    yield from stats_worker(broker, tmp_path_factory.mktemp("dashboard"))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api(worker: Worker, path: str, **params: str) -> dict[str, Any]:
    response = stats(worker, path, SECRET_A, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def run_dashboard(worker: Worker, data: Dataset, screenshot: Path) -> dict[str, Any]:
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium missing: `make browser` installs it (make test does)")
    if not (E2E / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=E2E, check=True, timeout=300)
    env = {
        **os.environ,
        "TRACKFLOW_E2E_BASE_URL": worker.base_url,
        "TRACKFLOW_E2E_READ_SECRET": SECRET_A,
        "TRACKFLOW_E2E_INGEST_KEY": TENANT_A,
        "TRACKFLOW_E2E_HASH": f"from={iso(data.start)}&to={iso(data.end)}&interval=hour",
        "TRACKFLOW_E2E_SCREENSHOT": str(screenshot),
    }
    run = subprocess.run(
        ["node", "dashboard.mjs"], cwd=E2E, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, f"dashboard e2e failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    figures: dict[str, Any] = orjson.loads(run.stdout.strip().splitlines()[-1])
    return figures


def flat_perf(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": row["samples"]}
    for metric, short in (("load_time", "load"), ("dom_content_loaded", "dcl")):
        for p in ("p50", "p75", "p95"):
            out[f"{short}_{p}"] = row[metric][p]
    return out


def test_dashboard_shows_the_api_figures(
    stack: tuple[Worker, Dataset, int], tmp_path: Path
) -> None:
    worker, data, _stored = stack
    shot = tmp_path / "dashboard.png"
    seen = run_dashboard(worker, data, shot)
    assert seen["problems"] == []
    assert seen["status"] == "ready"
    assert "refused" in seen["ingest_key_refused"]
    assert "from=" in seen["hash_after_reload"]
    assert shot.stat().st_size > 10_000
    if os.environ.get("TRACKFLOW_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    params = data.range_params()
    traffic = api(worker, "traffic", **params, interval="hour")
    assert seen["traffic"] == {
        **traffic["totals"],
        "points": len(traffic["series"]),
        "interval": "hour",
        "series_page_views": sum(p["page_views"] for p in traffic["series"]),
        "polylines": 3,
    }
    assert traffic["totals"] == {"page_views": 7, "sessions": 4, "users": 2}
    assert seen["traffic"]["points"] == 3

    sessions = api(worker, "sessions", **params)
    assert seen["sessions"] == {
        k: v for k, v in sessions.items() if k not in ("range", "page_views")
    }
    assert (seen["sessions"]["sessions"], seen["sessions"]["bounce_rate"]) == (4, 0.5)

    assert seen["pages"] == api(worker, "pages", **params, limit="10")["pages"]
    assert [p["page_views"] for p in seen["pages"]] == [4, 2, 1]
    assert seen["referrers"] == api(worker, "referrers", **params, limit="10")["referrers"]
    assert [r["referrer"] for r in seen["referrers"]] == ["google.com", "news.ycombinator.com"]
    for by in ("device_type", "os", "browser", "country"):
        rows = api(worker, "breakdown", **params, by=by, limit="8")["rows"]
        assert seen["breakdowns"][by] == rows, by
    assert seen["breakdowns"]["browser"] == [
        {"value": "Safari", "sessions": 2, "page_views": 4},
        {"value": "Chrome", "sessions": 2, "page_views": 3},
    ]

    errors = api(worker, "errors", **params, limit="20")
    assert (seen["errors"]["total_errors"], seen["errors"]["total_groups"]) == (3, 2)
    keys = ("fingerprint", "message", "count", "sessions", "first_seen", "last_seen")
    assert seen["errors"]["groups"] == [{k: g[k] for k in keys} for g in errors["groups"]]
    first = errors["groups"][0]
    assert seen["errors"]["detail"] == {
        "fingerprint": first["fingerprint"],
        "stack": first["sample_stack"],
        "occurrences": 2,
    }

    performance = api(worker, "performance", **params, limit="10")
    assert seen["performance"]["overall"] == flat_perf(performance["overall"])
    assert seen["performance"]["pages"] == [
        {"page_url": p["page_url"], **flat_perf(p)} for p in performance["pages"]
    ]
    assert performance["overall"]["load_time"] == percentiles([1000, 2000, 3000, 500])

    health = api(worker, "health", minutes="60")
    assert seen["health"] == {
        "events": health["tenant"]["events"],
        "dead_lettered_total": 1,
        "sink_buffered_rows": 0,
        "dead_lettered": {"missing_field": 1},
    }
    assert seen["health"]["events"] == len(data.tenant_a)
