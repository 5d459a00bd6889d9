"""web.views.BatchView in-process: what a request holds while Kafka acknowledges its batch."""

from __future__ import annotations

import gc
import gzip
from typing import Any
from unittest import mock

import orjson
import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request

from trackflow_app import app  # imports web.views as the app does (a cycle otherwise)
from trackflow_app.app import settings
from web import views
from web.phases import PhaseTimer


def live_lists() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is list)


async def test_a_waiting_request_holds_its_encoding_not_the_parsed_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 3 bytes of inflated body make a list object of ~60: 20 concurrent POSTs of a 4 KB gzip
    # body inflating to 3.9 MB of `[],` took a worker to a 2.3 GB peak RSS while their
    # envelopes waited for Kafka (550 MB once a waiting request holds only its encoding).
    lists = 100_000
    body = gzip.compress(b'{"events": [[' + b",".join([b"[]"] * lists) + b"]]}")
    monkeypatch.setattr(
        views, "settings", type(settings)(**{**settings.model_dump(), "api_keys": "k"})
    )
    held: list[int] = []
    written: list[bytes] = []

    async def acknowledged(value: bytes, timer: PhaseTimer) -> None:
        gc.collect()
        held.append(live_lists())
        written.append(value)

    monkeypatch.setattr(views, "produce_acknowledged", acknowledged)
    transport = mock.Mock(**{"get_extra_info.return_value": ("127.0.0.1", 40000)})
    payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=mock.Mock())
    payload.feed_data(body)
    payload.feed_eof()
    request = make_mocked_request(
        "POST",
        "/v1/batch",
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-TrackFlow-Key": "k",
        },
        payload=payload,
        transport=transport,
    )
    gc.collect()
    before = live_lists()
    view: Any = views.BatchView(app, app.web)
    response = await view.post(request)
    assert response.status == 202, response.body
    assert orjson.loads(response.body) == {"status": "accepted", "accepted": 1}
    assert len(orjson.loads(written[0])["events"][0]) == lists
    assert held[0] - before < lists // 10
