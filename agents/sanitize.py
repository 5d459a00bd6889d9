"""Sanitizing of client-supplied values: control characters out, lengths and sizes capped."""

from __future__ import annotations

import re
from typing import Any

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


def clean_json(value: Any, max_length: int, depth: int = 0) -> Any:
    """Sanitize an arbitrary JSON value: strings cleaned, nesting capped (deeper parts dropped)."""
    if isinstance(value, str):
        return clean_text(value, max_length)
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            return None
        cleaned = ((clean_key(k), clean_json(v, max_length, depth + 1)) for k, v in value.items())
        return {k: v for k, v in cleaned if k}
    if isinstance(value, list):
        if depth >= MAX_NESTING:
            return None
        return [clean_json(v, max_length, depth + 1) for v in value[:256]]
    return value
