"""deploy/examples/post-seed-examples.sh reports a refused POST by its exit status."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/examples/post-seed-examples.sh"


@pytest.fixture
def answering() -> Iterator[tuple[str, list[int], list[dict[str, object]]]]:
    """A local server that answers each POST with the next status in its list."""
    statuses: list[int] = []
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status = statuses.pop(0)
            body = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", statuses, received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "exit_status"), [(202, 0), (401, 22), (503, 22)])
def test_the_exit_status_follows_the_answer(
    answering: tuple[str, list[int], list[dict[str, object]]], status: int, exit_status: int
) -> None:
    base, statuses, received = answering
    statuses.append(status)
    done = subprocess.run(
        [str(SCRIPT), base, "some-key"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == exit_status, done.stderr
    assert json.loads(done.stdout.strip()) == {"status": status}  # the answer is shown either way
    [batch] = received
    assert len(batch["events"]) == 5  # type: ignore[arg-type]
