"""Sanitizing of client-supplied values: control characters out, lengths and sizes capped."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from schemas.records import DeadLetterReason

# C0/C1 control characters and DEL; stacks keep their newlines and tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Property keys become ClickHouse JSON paths: dots would nest and odd characters or empty keys
# can make a whole insert fail, so keys keep a conservative alphabet.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
MAX_NESTING = 8
MAX_KEY_LENGTH = 128


def clean_text(value: str, max_length: int) -> str:
    # Most values are short and clean; every character _CONTROL removes is non-printable.
    if len(value) <= max_length and value.isprintable():
        return value
    return _CONTROL.sub("", value[: max_length * 2])[:max_length]


def clean_multiline(value: str, max_length: int) -> str:
    return _CONTROL_KEEP_LINES.sub("", value[: max_length * 2])[:max_length]


def clean_optional(value: str | None, max_length: int) -> str | None:
    return None if value is None else clean_text(value, max_length)


def clean_key(key: str) -> str:
    return _KEY_UNSAFE.sub("_", key[:MAX_KEY_LENGTH])


# What orjson can write and ClickHouse's JSON type can store as a number.
INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1


class PropertyBudgetExceeded(ValueError):
    """Free-form properties larger than the store may be asked to hold for one event."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class JsonBudget:
    """What one event's free-form properties may hold, counted across every nesting level.

    Every object key becomes a column path in the store, so the number of keys bounds what one
    event can add to a part; the character count bounds its size.
    """

    max_keys: int
    max_chars: int
    keys: int = 0
    chars: int = 0

    def spend(self, keys: int, chars: int) -> None:
        self.keys += keys
        self.chars += chars
        if self.keys > self.max_keys:
            raise PropertyBudgetExceeded(
                "too_many_property_keys",
                f"properties hold more than {self.max_keys} keys counting nested objects",
            )
        if self.chars > self.max_chars:
            raise PropertyBudgetExceeded(
                "properties_too_large",
                f"properties hold more than {self.max_chars} characters of keys and strings",
            )


def clean_json(
    value: Any, max_length: int, depth: int = 0, budget: JsonBudget | None = None
) -> Any:
    """Sanitize an arbitrary JSON value: strings cleaned, nesting capped (deeper parts dropped),
    non-finite floats to null; integers beyond 64 bits and a spent budget raise
    PropertyBudgetExceeded."""
    if isinstance(value, str):
        text = clean_text(value, max_length)
        if budget is not None:
            budget.spend(0, len(text))
        return text
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= UINT_MAX:
            raise PropertyBudgetExceeded(
                "integer_out_of_range", f"property integer {value} does not fit in 64 bits"
            )
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            return None
        cleaned = {}
        for key, item in value.items():
            name = clean_key(str(key))
            if not name:
                continue
            if budget is not None:
                budget.spend(1, len(name))
            cleaned[name] = clean_json(item, max_length, depth + 1, budget)
        return cleaned
    if isinstance(value, list):
        if depth >= MAX_NESTING:
            return None
        return [clean_json(v, max_length, depth + 1, budget) for v in value[:256]]
    return value
