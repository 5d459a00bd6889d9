"""The dead-letter topic can be inspected and replayed after a fix."""

from __future__ import annotations

import uuid

from harness.stack import Worker
from tests.support import events as ev


def test_dead_letters_show_and_replay_after_fix(worker_factory: type[Worker]) -> None:
    topics = uuid.uuid4().hex[:8]
    strict = worker_factory(_topics=topics, TRACKFLOW_MAX_PROPERTIES="2").start()  # type: ignore[call-arg]
    sid = f"session-{uuid.uuid4().hex[:12]}"
    rich = ev.page_view(strict.api_key, sid)
    rich["properties"].update({"a": 1, "b": 2, "c": 3})
    plain = ev.click(strict.api_key, sid)
    assert strict.post({"events": [rich, plain]}).status_code == 202
    strict.wait_for_session(sid, 1)

    letters = strict.cli("dlq", "show", "--reason", "too_many_properties")
    assert [letter["event"] for letter in letters] == [rich]
    assert letters[0]["tenant_id"] == strict.api_key
    strict.stop()

    # The fix: a wider property budget. Same topics, same store, new worker process.
    fixed = worker_factory(_topics=topics, TRACKFLOW_MAX_PROPERTIES="64")  # type: ignore[call-arg]
    fixed.name = strict.name
    fixed.port = strict.port
    fixed.start()
    assert fixed.cli("dlq", "replay", "--reason", "too_many_properties") == []
    rows = fixed.wait_for_session(sid, 2)
    replayed = next(r for r in rows if r["event_id"] == rich["eventId"])
    assert replayed["properties"] == {"title": "Example Page", "a": 1, "b": 2, "c": 3}
