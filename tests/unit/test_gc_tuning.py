"""trackflow_app.gc_tuning: the worker's garbage-collector settings after start-up."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from trackflow_app.gc_tuning import OLDER_GENERATIONS, settle_after_start


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_raises_the_young_threshold_and_freezes_the_start_up_heap() -> None:
    state = settle_after_start(20_000)
    assert gc.get_threshold() == (20_000, *OLDER_GENERATIONS)
    assert state.thresholds == (20_000, *OLDER_GENERATIONS)
    assert state.frozen_objects == gc.get_freeze_count() > 1_000


def test_frozen_objects_are_out_of_the_collectors_generations() -> None:
    survivor = [{"kept": i} for i in range(100)]
    settle_after_start(20_000)
    tracked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert id(survivor) not in tracked


class Node:
    def __init__(self) -> None:
        self.me = self


def test_garbage_from_start_up_is_collected_not_frozen() -> None:
    gc.disable()  # keep the cycle alive until settle_after_start collects it
    try:
        cycle = Node()
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None
        settle_after_start(20_000)
    finally:
        gc.enable()
    assert alive() is None


def test_zero_keeps_pythons_settings() -> None:
    before = gc.get_threshold()
    state = settle_after_start(0)
    assert gc.get_threshold() == before
    assert state.frozen_objects == gc.get_freeze_count() == 0
