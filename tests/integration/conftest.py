from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import Broker, Worker, start_broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from start_broker(tmp_path_factory.mktemp("broker"))


@pytest.fixture
def worker_factory(broker: Broker, tmp_path: Path) -> Iterator[type[Worker]]:
    started: list[Worker] = []

    def make(**overrides: str) -> Worker:
        worker = Worker(broker=broker, workdir=tmp_path, overrides=dict(overrides))
        started.append(worker)
        return worker

    yield make  # type: ignore[misc]
    for worker in started:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.stop()


@pytest.fixture
def worker(worker_factory: type[Worker]) -> Worker:
    return worker_factory().start()  # type: ignore[call-arg]
