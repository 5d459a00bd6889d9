"""ClickHouse's error codes as TrackFlow reads them from a store error (server or chDB)."""

from __future__ import annotations

import re

_CODE = re.compile(r"Code: (\d+)\.")

MISSING_TABLE_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE


def error_code(error: BaseException) -> int | None:
    """The ClickHouse error code of an exception (its ``code``, else its message's first)."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(error))
    return int(match.group(1)) if match else None


def is_missing_table(exc: BaseException) -> bool:
    """Whether a store error says the table (or its database) does not exist yet."""
    return error_code(exc) in MISSING_TABLE_CODES
