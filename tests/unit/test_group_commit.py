"""web.group_commit: requests share a raw record and are answered after its acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from web.group_commit import GroupCommitter, group_value


class FakeKafka:
    """Records each sent value; each delivery future resolves when the test says so."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(self, value: bytes) -> Any:
        self.sent.append(value)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def test_group_value_is_an_array_and_a_lone_batch_stays_as_it_is() -> None:
    assert group_value([b'{"a":1}']) == b'{"a":1}'
    assert orjson.loads(group_value([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]


async def test_writes_within_the_window_share_one_record_and_wait_for_its_ack() -> None:
    kafka = FakeKafka()
    committer = GroupCommitter(kafka.send, window_s=0.01, max_bytes=1 << 20)
    sent_marks: list[int] = []
    writes = [
        asyncio.create_task(
            committer.write(b'{"n":%d}' % i, on_sent=lambda i=i: sent_marks.append(i))
        )
        for i in range(3)
    ]
    await asyncio.sleep(0.05)
    assert kafka.sent == [b'[{"n":0},{"n":1},{"n":2}]']
    assert sorted(sent_marks) == [0, 1, 2]
    assert not any(w.done() for w in writes)  # not acknowledged yet
    kafka.deliveries[0].set_result(None)
    await asyncio.wait_for(asyncio.gather(*writes), 1)


async def test_a_failed_write_fails_every_request_in_it() -> None:
    kafka = FakeKafka()
    committer = GroupCommitter(kafka.send, window_s=0.005, max_bytes=1 << 20)
    writes = [asyncio.create_task(committer.write(b"{}")) for _ in range(2)]
    await asyncio.sleep(0.03)
    kafka.deliveries[0].set_exception(ConnectionError("broker gone"))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]


async def test_the_byte_cap_starts_a_new_record() -> None:
    kafka = FakeKafka()
    committer = GroupCommitter(kafka.send, window_s=0.01, max_bytes=20)
    writes = [asyncio.create_task(committer.write(b'{"x":"%d"}' % i)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert [orjson.loads(v) for v in kafka.sent] == [
        [{"x": "0"}, {"x": "1"}],
        {"x": "2"},
    ]
    for delivery in kafka.deliveries:
        delivery.set_result(None)
    await asyncio.wait_for(asyncio.gather(*writes), 1)


async def test_no_window_writes_each_value_on_its_own_at_once() -> None:
    kafka = FakeKafka()
    committer = GroupCommitter(kafka.send, window_s=0, max_bytes=1 << 20)
    write = asyncio.create_task(committer.write(b"{}"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert kafka.sent == [b"{}"]
    kafka.deliveries[0].set_result(None)
    await asyncio.wait_for(write, 1)


async def test_a_request_that_times_out_leaves_the_others_answered() -> None:
    kafka = FakeKafka()
    committer = GroupCommitter(kafka.send, window_s=0.005, max_bytes=1 << 20)
    patient = asyncio.create_task(committer.write(b"{}"))

    async def impatient() -> None:
        async with asyncio.timeout(0.02):
            await committer.write(b"{}")

    hasty = asyncio.create_task(impatient())
    with pytest.raises(TimeoutError):
        await hasty
    kafka.deliveries[0].set_result(None)
    await asyncio.wait_for(patient, 1)
    assert len(kafka.sent) == 1
