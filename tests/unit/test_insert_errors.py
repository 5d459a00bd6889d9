"""agents.insert_errors: which store errors are the rows' fault, and bisection to find them."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest

from agents.insert_errors import (
    ROW_ERROR_CODES,
    TRANSIENT_ERROR_CODES,
    error_code,
    insert_isolating,
    is_row_error,
)
from schemas.store_errors import is_missing_table


class StoreError(Exception):
    pass


def store_error(code: int) -> StoreError:
    return StoreError(f"Code: {code}. DB::Exception: something (at row 1)")


@pytest.mark.parametrize(
    ("code", "row"),
    [
        (41, True),  # CANNOT_PARSE_DATETIME: the 1970-clock rows
        (27, True),
        (117, True),
        (376, True),  # CANNOT_PARSE_UUID
        (6, True),
        (76, False),  # CANNOT_OPEN_FILE (too many open files): a store limit
        (242, False),  # TABLE_IS_READ_ONLY
        (243, False),  # NOT_ENOUGH_SPACE
        (252, False),  # TOO_MANY_PARTS
        (241, False),  # MEMORY_LIMIT_EXCEEDED
        (159, False),
        (210, False),
        (9999, False),  # unknown: retried, never dead-lettered
    ],
)
def test_error_table(code: int, row: bool) -> None:
    assert is_row_error(store_error(code)) is row


def test_tables_do_not_overlap() -> None:
    assert not set(ROW_ERROR_CODES) & set(TRANSIENT_ERROR_CODES)


def test_error_without_code_is_transient() -> None:
    assert error_code(ConnectionRefusedError("refused")) is None
    assert not is_row_error(ConnectionRefusedError("refused"))


def test_code_attribute_wins() -> None:
    error = StoreError("no code in the text")
    error.code = 41  # type: ignore[attr-defined]
    assert error_code(error) == 41


class FakeStore:
    """Refuses any insert holding a bad row (row error), or everything while down."""

    def __init__(self, bad: set[bytes], down_for: int = 0) -> None:
        self.bad = bad
        self.down_for = down_for
        self.stored: list[bytes] = []
        self.tokens: list[str] = []

    async def insert(self, rows: Sequence[bytes], token: str) -> None:
        self.tokens.append(token)
        if self.down_for:
            self.down_for -= 1
            raise store_error(242)
        if self.bad & set(rows):
            raise store_error(41)
        self.stored.extend(rows)


async def test_good_batch_is_one_insert() -> None:
    rows = [str(i).encode() for i in range(100)]
    store = FakeStore(set())
    assert await insert_isolating(rows, store.insert, "t") == []
    assert store.stored == rows
    assert store.tokens == ["t:0-100"]


async def test_bad_rows_are_isolated_and_the_rest_stored() -> None:
    rows = [str(i).encode() for i in range(100)]
    bad = {b"3", b"57", b"99"}
    store = FakeStore(bad)
    failures = await insert_isolating(rows, store.insert, "t")
    assert sorted(rows[f.index] for f in failures) == sorted(bad)
    assert all(is_row_error(f.error) for f in failures)
    assert sorted(store.stored) == sorted(r for r in rows if r not in bad)
    assert len(store.tokens) < 40  # bisection, not one insert per row
    assert len(set(store.tokens)) == len(store.tokens)


async def test_transient_error_propagates_without_isolating() -> None:
    rows = [b"1", b"2"]
    store = FakeStore(set(), down_for=1)
    with pytest.raises(StoreError):
        await insert_isolating(rows, store.insert, "t")
    assert store.stored == []
    # The retry of the same batch uses the same tokens, so a repeat is deduplicated.
    assert await insert_isolating(rows, store.insert, "t") == []
    assert store.tokens == ["t:0-2", "t:0-2"]


async def test_inserting_leaves_no_reference_cycle_holding_the_rows() -> None:
    """The rows must be freed as soon as the insert returns, not at the next full collection:
    rows kept until then grew the worker by tens of MB a second."""
    rows = [str(i).encode() for i in range(100)]
    store = FakeStore({b"42"})
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            await insert_isolating(rows, store.insert, "t")
        del _
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        ("Code: 60. DB::Exception: Unknown table expression identifier 'events'.", True),
        (
            "HTTPDriver for http://ch:8123 received ClickHouse error code 81\n"
            " Code: 81. DB::Exception: Database analytics does not exist. (UNKNOWN_DATABASE)",
            True,
        ),
        ("Code: 600. DB::Exception: something else", False),
        ("Code: 62. DB::Exception: Syntax error", False),
        ("connection refused", False),
    ],
)
def test_a_missing_table_is_told_from_other_store_errors(message: str, missing: bool) -> None:
    assert is_missing_table(StoreError(message)) is missing
