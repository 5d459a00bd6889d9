"""The dead-letter topic can be inspected and replayed after a fix."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from harness.stack import Broker, Worker
from tests.support import events as ev
from tests.support.env import env_without_trackflow
from tests.support.processes import run_dlq


def test_dead_letters_show_and_replay_after_fix(worker_factory: type[Worker]) -> None:
    topics = uuid.uuid4().hex[:8]
    strict = worker_factory(_topics=topics, TRACKFLOW_MAX_PROPERTIES="2").start()  # type: ignore[call-arg]
    sid = f"session-{uuid.uuid4().hex[:12]}"
    rich = ev.page_view(strict.api_key, sid)
    rich["properties"].update({"a": 1, "b": 2, "c": 3})
    plain = ev.click(strict.api_key, sid)
    crawler = {
        "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    }
    assert strict.post({"events": [rich, plain]}, headers=crawler).status_code == 202
    strict.wait_for_session(sid, 1)

    letters = strict.cli("dlq", "show", "--reason", "too_many_properties")
    assert [letter["event"] for letter in letters] == [rich]
    assert strict.cli("dlq", "show", "--limit", "0") == []  # "show at most this many"
    assert letters[0]["tenant_id"] == strict.api_key
    assert letters[0]["user_agent"] == crawler["User-Agent"]
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
    assert replayed["is_bot"] is True  # flagged by its request's User-Agent, as on arrival
    assert replayed["user_agent"] == crawler["User-Agent"]


def test_each_reason_is_replayed_when_its_own_cause_is_fixed(
    worker_factory: type[Worker],
) -> None:
    """Replaying one reason leaves the letters of another for their own replay later, and a dry
    run counts what it would send without sending or remembering anything."""
    topics = uuid.uuid4().hex[:8]
    strict = worker_factory(_topics=topics, TRACKFLOW_MAX_PROPERTIES="2").start()  # type: ignore[call-arg]
    sid = f"session-{uuid.uuid4().hex[:12]}"
    rich = ev.page_view(strict.api_key, sid)
    rich["properties"].update({"a": 1, "b": 2, "c": 3})
    early = ev.click(strict.api_key, sid, ts=ev.now_ms() + 3 * 86_400_000)  # 3 days ahead
    plain = ev.click(strict.api_key, sid)
    assert strict.post({"events": [rich, early, plain]}).status_code == 202
    strict.wait_for_session(sid, 1)
    strict.stop()

    # Both causes fixed in the next worker; the two reasons are replayed one after the other.
    fixed = worker_factory(  # type: ignore[call-arg]
        _topics=topics, TRACKFLOW_MAX_PROPERTIES="64", TRACKFLOW_MAX_FUTURE_SKEW_S="604800"
    )
    fixed.name = strict.name
    fixed.port = strict.port
    fixed.start()
    assert (
        replay(fixed, "too_many_properties", "--dry-run")
        == "would replay 1 events; 1 letters skipped"
    )
    assert replay(fixed, "too_many_properties") == "replayed 1 events; 1 letters skipped"
    rows = fixed.wait_for_session(sid, 2)
    assert sorted(r["event_id"] for r in rows) == sorted([rich["eventId"], plain["eventId"]])
    assert replay(fixed, "timestamp_out_of_range") == "replayed 1 events; 1 letters skipped"
    rows = fixed.wait_for_session(sid, 3)
    assert early["eventId"] in {r["event_id"] for r in rows}
    assert replay(fixed, "too_many_properties") == "replayed 0 events; 0 letters skipped"


def test_a_replay_before_the_fix_sends_each_letter_once_and_ends(
    worker_factory: type[Worker],
) -> None:
    """A replay while the cause still stands: its event is dead-lettered again, and the replay
    ends at the letters the topic held when it started instead of replaying its own new letters
    without end (each lap another copy in the raw and the dead-letter topic)."""
    strict, rich = worker_with_a_letter(worker_factory)

    assert replay(strict, "too_many_properties") == "replayed 1 events; 0 letters skipped"
    deadline = time.monotonic() + 30
    while len(letters := strict.cli("dlq", "show")) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [letter["event"]["eventId"] for letter in letters] == [rich["eventId"]] * 2
    # The next replay sends the letter the first one left, once.
    assert replay(strict, "too_many_properties") == "replayed 1 events; 0 letters skipped"


@pytest.mark.parametrize("action", ["show", "replay"])
def test_a_dead_letter_topic_that_does_not_exist_is_named(broker: Broker, action: str) -> None:
    """A topic name no worker created (a typo, another app's settings): a message saying so at
    once, not 40 s of "not found in cluster metadata" and a traceback."""
    env = env_without_trackflow(
        TRACKFLOW_BROKER_URL=broker.url,
        TRACKFLOW_DEAD_LETTER_TOPIC=f"no-such-topic-{uuid.uuid4().hex[:8]}",
    )
    done = run_dlq(env, action)
    assert done.returncode == 1
    topic = env["TRACKFLOW_DEAD_LETTER_TOPIC"]
    assert done.stderr.startswith(
        f"TrackFlow: the topic {topic} (TRACKFLOW_DEAD_LETTER_TOPIC) does not exist"
    )
    assert "Traceback" not in done.stderr


def test_a_replay_to_a_raw_topic_that_does_not_exist_is_refused(
    worker_factory: type[Worker],
) -> None:
    """A replay whose TRACKFLOW_RAW_TOPIC names no topic says so before it sends anything (it
    waited 40 s on its first send, then failed with a traceback), and its letters stay."""
    strict, _ = worker_with_a_letter(worker_factory)
    raw = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    done = run_dlq({**strict.env, "TRACKFLOW_RAW_TOPIC": raw}, "replay")
    assert done.returncode == 1
    assert done.stderr.startswith(f"TrackFlow: the topic {raw} (TRACKFLOW_RAW_TOPIC) does not")
    assert "Traceback" not in done.stderr
    assert replay(strict, "too_many_properties", "--dry-run").startswith("would replay 1 events")


def replay(worker: Worker, reason: str, *options: str) -> str:
    """``dlq replay --reason REASON`` with the worker's settings; its summary line."""
    done = run_dlq(worker.env, "replay", "--reason", reason, *options, check=True)
    return done.stderr.strip().splitlines()[-1]


def worker_with_a_letter(worker_factory: type[Worker]) -> tuple[Worker, dict[str, Any]]:
    """A worker that takes 2 properties per event, and the page view with 5 it dead-lettered
    (too_many_properties); the click beside it is stored."""
    strict = worker_factory(TRACKFLOW_MAX_PROPERTIES="2").start()  # type: ignore[call-arg]
    sid = f"session-{uuid.uuid4().hex[:12]}"
    rich = ev.page_view(strict.api_key, sid)
    rich["properties"].update({"a": 1, "b": 2, "c": 3})
    assert strict.post({"events": [rich, ev.click(strict.api_key, sid)]}).status_code == 202
    strict.wait_for_session(sid, 1)
    return strict, rich
