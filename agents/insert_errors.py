"""Which ClickHouse insert failures are a property of the rows, and how to find those rows.

An insert fails for one of two kinds of reasons. *Row errors* come from the data itself (a value
the column cannot read): sending the same rows again fails again forever, so the offending rows
are isolated by bisection and dead-lettered, and the rest are stored. *Transient errors* come
from the store (down, read-only, disk full, too many parts, timeouts): the same rows succeed
later, so the whole batch is retried with backoff. An error whose code is not in the row table
is treated as transient: retrying never loses an event, dead-lettering a good one would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from schemas.store_errors import error_code

# ClickHouse error codes (src/Common/ErrorCodes.cpp) raised by reading a row's values.
ROW_ERROR_CODES: dict[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    25: "CANNOT_PARSE_ESCAPE_SEQUENCE",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    32: "ATTEMPT_TO_READ_AFTER_EOF",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    69: "ARGUMENT_OUT_OF_BOUND",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    131: "TOO_LARGE_STRING_SIZE",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    376: "CANNOT_PARSE_UUID",
    # throwIf in the sink's insert: a processed record without its times (schemas.ddl)
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    407: "DECIMAL_OVERFLOW",
    441: "CANNOT_PARSE_IPV4",
    442: "CANNOT_PARSE_IPV6",
    467: "CANNOT_PARSE_BOOL",
    691: "UNKNOWN_ELEMENT_OF_ENUM",  # an event_type the column's Enum8 does not name
}

# Listed for the reader (and tested): failures of the store, never of the rows.
TRANSIENT_ERROR_CODES: dict[int, str] = {
    76: "CANNOT_OPEN_FILE",
    159: "TIMEOUT_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE",
    252: "TOO_MANY_PARTS",
    319: "UNKNOWN_STATUS_OF_INSERT",
    425: "SYSTEM_ERROR",
    999: "KEEPER_EXCEPTION",
    1000: "POCO_EXCEPTION",
}


def is_row_error(error: BaseException) -> bool:
    return error_code(error) in ROW_ERROR_CODES


@dataclass(frozen=True)
class RowFailure:
    index: int  # position of the row in the batch given to insert_isolating
    error: BaseException


InsertRows = Callable[[Sequence[bytes], str], Awaitable[None]]


async def insert_isolating(
    rows: Sequence[bytes],
    insert: InsertRows,
    token: str,
    row_error: Callable[[BaseException], bool] = is_row_error,
) -> list[RowFailure]:
    """Insert ``rows``; on a row error, bisect until each failing row stands alone.

    Returns the rows the store refused. A transient error propagates (the caller retries the
    whole batch). Every insert carries ``token`` plus its slice, so that a slice stored before a
    transient error is dropped by the store's deduplication when the batch is retried.
    """
    # An explicit stack, not a recursive closure: a closure that refers to itself is a
    # reference cycle, which kept every insert's rows alive until a full garbage collection
    # (the worker with the sink grew by ~30 MB/s at 3,600 ev/s, bench/tuning.md).
    failures: list[RowFailure] = []
    slices = [(0, len(rows))] if rows else []
    while slices:
        start, end = slices.pop()
        try:
            await insert(rows[start:end], f"{token}:{start}-{end}")
        except Exception as error:
            if not row_error(error):
                raise
            if end - start == 1:
                # Without its traceback the kept error holds no frame, so no cycle either.
                failures.append(RowFailure(start, error.with_traceback(None)))
                continue
            middle = (start + end) // 2
            slices += [(middle, end), (start, middle)]  # the first half is tried first
    return failures
