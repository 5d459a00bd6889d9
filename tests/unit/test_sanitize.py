"""agents.sanitize, directly and as applied by validate_event."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agents.sanitize import (
    MAX_KEY_LENGTH,
    MAX_NESTING,
    clean_json,
    clean_key,
    clean_multiline,
    clean_optional,
    clean_text,
)
from agents.validate import validate_event
from tests.unit.factories import build, make_batch, policy

SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# --- functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a\x00b\x07c", "abc"),
        ("line\nbreak\ttab\rcr", "linebreaktabcr"),
        ("del\x7f and c1\x85\x9f", "del and c1"),
        ("esc\x1b[31mred", "esc[31mred"),
        ("ünïcödé ✓ 日本", "ünïcödé ✓ 日本"),
    ],
)
def test_clean_text_strips_control_characters(raw: str, expected: str) -> None:
    assert clean_text(raw, 100) == expected


def test_clean_text_caps_length_after_stripping() -> None:
    assert clean_text("abcdef", 3) == "abc"
    assert clean_text("\x00\x00abcdef", 4) == "abcd"


def test_clean_multiline_keeps_newlines_and_tabs() -> None:
    stack = "Error: boom\n\tat f (a.js:1:2)\r\n\x00\x1bat g (b.js:3:4)"
    assert clean_multiline(stack, 1000) == "Error: boom\n\tat f (a.js:1:2)\nat g (b.js:3:4)"
    assert clean_multiline("x\ny" * 100, 10) == "x\nyx\nyx\nyx"


def test_clean_optional() -> None:
    assert clean_optional(None, 5) is None
    assert clean_optional("ab\x00cdefg", 5) == "abcde"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("title", "title"),
        ("a.b", "a_b"),
        ("with space", "with_space"),
        ("ok-key_9", "ok-key_9"),
        ("we$ird/ké", "we_ird_k_"),
        ("", ""),
    ],
)
def test_clean_key(key: str, expected: str) -> None:
    assert clean_key(key) == expected


def test_clean_key_caps_length() -> None:
    assert clean_key("k" * 500) == "k" * MAX_KEY_LENGTH


def test_clean_json_drops_empty_keys_and_cleans_nested_values() -> None:
    value = {"": 1, "a.b": {"c d": "x\x00y", "": 2}, "list": ["p\x07q", 3, None, True, 1.5]}
    assert clean_json(value, 100) == {"a_b": {"c_d": "xy"}, "list": ["pq", 3, None, True, 1.5]}


def test_clean_json_caps_nesting_depth() -> None:
    nested: Any = "leaf"
    for _ in range(30):
        nested = {"n": nested}
    cleaned = clean_json(nested, 100)
    assert depth(cleaned) == MAX_NESTING
    lists: Any = "leaf"
    for _ in range(30):
        lists = [lists]
    assert depth(clean_json(lists, 100)) == MAX_NESTING


def test_clean_json_keeps_shallow_structures_intact() -> None:
    shallow: Any = "leaf"
    for _ in range(MAX_NESTING):
        shallow = {"n": shallow}
    assert clean_json(shallow, 100) == shallow


def test_clean_json_caps_long_lists_and_strings() -> None:
    assert len(clean_json(list(range(1000)), 100)) == 256
    assert clean_json("y" * 50, 10) == "y" * 10


# --- applied by validate_event -----------------------------------------------------------------


def accept(event: dict[str, Any], **overrides: Any) -> Any:
    return validate_event(event, make_batch([event]), policy(**overrides))


def test_event_strings_are_cleaned_and_capped() -> None:
    event = build("page_view")
    event["pageUrl"] = "https://example.com/\x00path\x1b" + "p" * 100
    event["referrer"] = "ref\x07errer"
    event["userId"] = "user\x00-1"
    event["sessionId"] = "sess\nion"
    event["deviceInfo"] = {"deviceType": "desk\x00top", "os": "W" * 100, "browser": "Ch\x9frome"}
    event["properties"]["title"] = "Ti\ttle\x00" + "t" * 100
    processed = accept(event, max_string_length=32)
    assert processed["page_url"] == ("https://example.com/path" + "p" * 100)[:32]
    assert processed["referrer"] == "referrer"
    assert processed["user_id"] == "user-1"
    assert processed["session_id"] == "session"
    assert (processed["device_type"], processed["browser"]) == ("desktop", "Chrome")
    assert processed["os"] == "W" * 64
    assert processed["properties"]["title"] == ("Title" + "t" * 100)[:32]


def test_error_stack_keeps_lines_but_message_does_not() -> None:
    event = build("error_in_properties")
    event["properties"]["message"] = "bad\nthing\x00 happened"
    event["properties"]["stack"] = "Error\n\tat a (x.js:1:1)\x00\x1b\n\tat b (y.js:2:2)"
    props = accept(event)["properties"]
    assert props["message"] == "badthing happened"
    assert props["stack"] == "Error\n\tat a (x.js:1:1)\n\tat b (y.js:2:2)"


def test_error_stack_uses_its_own_cap() -> None:
    event = build("error_top_level")
    event["stack"] = "s" * 5000
    event["message"] = "m" * 5000
    props = accept(event, max_string_length=100, max_stack_length=1000)["properties"]
    assert len(props["stack"]) == 1000
    assert len(props["message"]) == 100


def test_extra_property_keys_are_made_safe() -> None:
    event = build("click")
    event["properties"].update(
        {"a.b": 1, "odd key!": "v\x00", "": "dropped", "ok_key-1": [1, 2], "x": {"in.ner": 2}}
    )
    props = accept(event)["properties"]
    assert props == {
        "tag": "BUTTON",
        "id": "submit-button",
        "a_b": 1,
        "odd_key_": "v",
        "ok_key-1": [1, 2],
        "x": {"in_ner": 2},
    }
    assert all(SAFE_KEY.match(key) for key in props)


def test_extra_property_nesting_is_capped() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"d": deep}
    event = build("page_view")
    event["properties"]["deep"] = deep
    props = accept(event)["properties"]
    assert depth(props) <= MAX_NESTING
    assert isinstance(props["deep"], dict)
