"""web.edge: request decoding, envelope parsing, authentication, client address, raw batch."""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import re
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.events import Envelope
from tests.support import events as ev
from tests.unit.factories import OTHER_TENANT, SESSION, TENANT
from web import edge
from web.edge import (
    EdgeError,
    EdgeLimits,
    authenticate,
    batch_record,
    client_ip,
    decode_request,
    encode_record,
    gunzip_bounded,
    parse_envelope,
)

LIMITS = EdgeLimits(
    max_body_bytes=100_000, max_decompressed_bytes=1_000_000, max_events_per_batch=3
)
KNOWN = frozenset({TENANT, OTHER_TENANT})


def body(events: list[Any] | None = None, **extra: Any) -> bytes:
    if events is None:
        events = [ev.page_view(TENANT, SESSION)]
    return orjson.dumps({"events": events, **extra})


def edge_error(call: Any, *args: Any) -> EdgeError:
    with pytest.raises(EdgeError) as info:
        call(*args)
    return info.value


# --- content type and encoding -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain;charset=UTF-8",
        "TEXT/PLAIN",
        " application/json ",
        "",
    ],
)
def test_accepted_content_types(content_type: str) -> None:
    envelope = decode_request(body(), content_type, "", LIMITS)
    assert len(envelope.events) == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/html",
        "application/jsonp",
        "application/octet-stream",
    ],
)
def test_rejected_content_types(content_type: str) -> None:
    error = edge_error(decode_request, body(), content_type, "", LIMITS)
    assert (error.status, error.code) == (415, "unsupported_media_type")
    assert error.body() == {"error": "unsupported_media_type", "message": error.message}


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP", " gzip "])
def test_gzip_body_is_decoded(encoding: str) -> None:
    events = [ev.click(TENANT, SESSION), ev.performance(TENANT, SESSION)]
    envelope = decode_request(gzip.compress(body(events)), "text/plain", encoding, LIMITS)
    assert envelope.events == events


@pytest.mark.parametrize("encoding", ["", "identity"])
def test_identity_encoding(encoding: str) -> None:
    assert len(decode_request(body(), "application/json", encoding, LIMITS).events) == 1


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd", "gzip, br"])
def test_unsupported_content_encoding(encoding: str) -> None:
    error = edge_error(decode_request, body(), "application/json", encoding, LIMITS)
    assert (error.status, error.code) == (415, "unsupported_content_encoding")


def test_identity_body_not_decompressed_even_if_gzip_bytes() -> None:
    error = edge_error(decode_request, gzip.compress(body()), "application/json", "", LIMITS)
    assert (error.status, error.code) == (400, "malformed_json")


# --- sizes -------------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    raw = body()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_body_at_the_limit_is_accepted() -> None:
    raw = padded(LIMITS.max_body_bytes)
    assert len(raw) == LIMITS.max_body_bytes
    assert len(decode_request(raw, "application/json", "", LIMITS).events) == 1


def test_body_over_the_limit_is_413() -> None:
    error = edge_error(decode_request, padded(LIMITS.max_body_bytes + 1), "", "", LIMITS)
    assert (error.status, error.code) == (413, "payload_too_large")


def test_compressed_size_is_checked_against_body_limit() -> None:
    raw = orjson.dumps({"events": [random.Random(0).randbytes(60_000).hex()]})
    gz = gzip.compress(raw, compresslevel=0)  # stored blocks: bigger than the raw body
    assert len(gz) > LIMITS.max_body_bytes
    assert len(raw) < LIMITS.max_decompressed_bytes
    error = edge_error(decode_request, gz, "", "gzip", LIMITS)
    assert (error.status, error.code) == (413, "payload_too_large")
    assert "body exceeds" in error.message


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * 1_000_000
    parts = [compressor.compress(chunk) for _ in range(50)]  # 50 MB of zeros
    return b"".join(parts) + compressor.flush()


_REAL_DECOMPRESSOBJ = zlib.decompressobj


class SpyDecompressor:
    """Wraps zlib's decompressor and counts every byte it hands out."""

    produced = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inner = _REAL_DECOMPRESSOBJ(*args, **kwargs)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._inner.decompress(data, max_length)
        SpyDecompressor.produced += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_gzip_bomb_is_413_without_inflating_it(
    gzip_bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(gzip_bomb) < LIMITS.max_body_bytes
    SpyDecompressor.produced = 0
    monkeypatch.setattr(edge.zlib, "decompressobj", SpyDecompressor)
    error = edge_error(decode_request, gzip_bomb, "application/json", "gzip", LIMITS)
    assert (error.status, error.code) == (413, "payload_too_large")
    assert 0 < SpyDecompressor.produced <= LIMITS.max_decompressed_bytes + 1


def test_gunzip_bounded_round_trip_and_exact_limit() -> None:
    data = b"x" * 5000
    assert gunzip_bounded(gzip.compress(data), 5000) == data
    error = edge_error(gunzip_bounded, gzip.compress(data), 4999)
    assert (error.status, error.code) == (413, "payload_too_large")


@pytest.mark.parametrize("cut", [5, 20, -4, -1])
def test_truncated_gzip_is_400(cut: int) -> None:
    whole = gzip.compress(body())
    error = edge_error(gunzip_bounded, whole[:cut], 1_000_000)
    assert (error.status, error.code) == (400, "malformed_body")


def test_not_gzip_at_all_is_400() -> None:
    error = edge_error(decode_request, body(), "application/json", "gzip", LIMITS)
    assert (error.status, error.code) == (400, "malformed_body")


def test_multi_member_gzip_is_not_silently_truncated() -> None:
    data = gzip.compress(b"first,") + gzip.compress(b"second")
    try:
        out = gunzip_bounded(data, 1000)
    except EdgeError as error:
        assert error.status == 400
    else:
        assert out == b"first,second"


def test_zero_padding_after_gzip_is_ignored_and_other_trailing_bytes_are_not() -> None:
    data = gzip.compress(b"first,") + gzip.compress(b"second")
    assert gunzip_bounded(data + b"\0" * 512, 1000) == b"first,second"
    error = edge_error(gunzip_bounded, data + b"\0\0garbage", 1000)
    assert (error.status, error.code) == (400, "malformed_body")


# --- envelope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"\xff\xfe{}", 400, "malformed_json"),
        (b'{"events": [1e400]}', 400, "malformed_json"),
        (b"[]", 400, "malformed_envelope"),
        (b'"events"', 400, "malformed_envelope"),
        (b"null", 400, "malformed_envelope"),
        (b"{}", 400, "malformed_envelope"),
        (b'{"event": []}', 400, "malformed_envelope"),
        (b'{"events": {}}', 400, "malformed_envelope"),
        (b'{"events": "[]"}', 400, "malformed_envelope"),
        (b'{"events": null}', 400, "malformed_envelope"),
        (b'{"events": [{}], "sentAt": "now"}', 400, "malformed_envelope"),
        (b'{"events": [{}], "sentAt": -1}', 400, "malformed_envelope"),
        (b'{"events": [{}], "dropped": true}', 400, "malformed_envelope"),
        (b'{"events": [{}], "dropped": -1}', 400, "malformed_envelope"),
        (b'{"events": []}', 400, "empty_batch"),
        (b'{"events": [1, 2, 3, 4]}', 413, "too_many_events"),
    ],
)
def test_parse_envelope_errors(raw: bytes, status: int, code: str) -> None:
    error = edge_error(parse_envelope, raw, LIMITS)
    assert (error.status, error.code) == (status, code)


def test_parse_envelope_accepts_max_events_and_extras() -> None:
    envelope = parse_envelope(
        b'{"events": [1, "x", {"a": 1}], "sentAt": 1700000000000.5, "dropped": 2, "v": 9}',
        LIMITS,
    )
    assert envelope.events == [1, "x", {"a": 1}]
    assert envelope.sentAt == 1700000000000.5
    assert envelope.dropped == 2


def test_parse_envelope_without_extras() -> None:
    envelope = parse_envelope(body(), LIMITS)
    assert (envelope.sentAt, envelope.dropped) == (None, None)


def test_a_leading_byte_order_mark_is_ignored() -> None:
    envelope = parse_envelope(b'\xef\xbb\xbf{"events": [{"a": 1}]}', LIMITS)
    assert envelope.events == [{"a": 1}]
    error = edge_error(parse_envelope, b'{"events": [{"a": "\xef\xbb\xbf"}]}x', LIMITS)
    assert (error.status, error.code) == (400, "malformed_json")


def test_lone_surrogate_escapes_are_read_as_replacement_characters() -> None:
    # JSON.stringify escapes a lone surrogate, e.g. of an emoji cut by the tracker's slice():
    # valid JSON that orjson refuses; the batch must not be lost over it.
    cut = "x" * 5 + "\ud83d"
    raw = json.dumps({"events": [{"m": cut, "low": "\udc00a", "pair": "\U0001f600"}]}).encode()
    assert b"\\ud83d" in raw and b"\\ud83d\\ude00" in raw
    envelope = parse_envelope(raw, LIMITS)
    assert envelope.events == [{"m": "xxxxx\ufffd", "low": "\ufffda", "pair": "\U0001f600"}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (rb'["\\ud83d"]', ["\\ud83d"]),  # an escaped backslash, then plain text
        (rb'["\\\ud83d"]', ["\\\ufffd"]),  # an escaped backslash, then a lone surrogate
        (rb'["\uD83D\uDE00\uD83D"]', ["\U0001f600\ufffd"]),
        (rb'["\ud83d\ud83d\ude00"]', ["\ufffd\U0001f600"]),
        (rb'["\ud83d\u0041\udc00"]', ["\ufffdA\ufffd"]),
    ],
)
def test_only_real_lone_surrogate_escapes_are_replaced(raw: bytes, expected: list[str]) -> None:
    assert orjson.loads(edge.replace_lone_surrogates(raw)) == expected


def test_a_lone_surrogate_beside_another_error_is_still_malformed_json() -> None:
    error = edge_error(parse_envelope, rb'{"events": ["\ud83d"', LIMITS)
    assert (error.status, error.code) == (400, "malformed_json")


def test_an_event_nested_deeper_than_the_encoder_writes_travels_pruned() -> None:
    # orjson reads 1,024 levels but writes 254: the deep parts go as null (the validate stage
    # keeps 8 levels of properties), and the event beside it goes unchanged.
    deep = b"[" * 300 + b"]" * 300
    body = b'{"events": [{"a": 1}, {"tenantId": "k", "properties": {"d": ' + deep + b"}}]}"
    envelope = parse_envelope(body, LIMITS)
    written = orjson.loads(encode_record(batch_record(envelope, TENANT, 1, None, "")))
    first, second = written["events"]
    assert first == {"a": 1}
    node = second["properties"]["d"]
    levels = 2  # the event and its properties
    while isinstance(node, list):
        levels += 1
        node = node[0] if node else "empty"
    assert (levels, node) == (edge.FORWARDED_DEPTH, None)


def test_prune_nesting_keeps_what_is_not_deeper_than_the_limit() -> None:
    value = {"a": [1, {"b": [2, 3]}], "c": "x"}
    assert edge.prune_nesting(value, 4) == value
    assert edge.prune_nesting(value, 3) == {"a": [1, {"b": None}], "c": "x"}
    assert edge.prune_nesting(value, 0) is None
    assert edge.prune_nesting("text", 0) == "text"


# --- authentication ----------------------------------------------------------------------------


def test_header_key_wins_over_tenant_id() -> None:
    events = [ev.page_view(TENANT, SESSION)]
    assert authenticate(events, f"  {OTHER_TENANT} ", KNOWN) == OTHER_TENANT


def test_unknown_header_key_is_401_even_if_events_are_known() -> None:
    error = edge_error(authenticate, [ev.page_view(TENANT, SESSION)], "nope", KNOWN)
    assert (error.status, error.code) == (401, "unknown_api_key")


def test_first_event_tenant_id_without_header() -> None:
    events = [ev.page_view(OTHER_TENANT, SESSION), ev.page_view(TENANT, SESSION)]
    assert authenticate(events, None, KNOWN) == OTHER_TENANT
    assert authenticate(events, "", KNOWN) == OTHER_TENANT


def test_non_objects_are_skipped_when_looking_for_the_key() -> None:
    events: list[Any] = [1, {"tenantId": 5}, ev.click(TENANT, SESSION)]
    assert authenticate(events, None, KNOWN) == TENANT


def test_an_unknown_tenant_id_first_does_not_refuse_the_known_events_after_it() -> None:
    # Else [bad, good] is refused (401) where [good, bad] stores good and dead-letters bad.
    events: list[Any] = [ev.page_view("stranger", SESSION), ev.click(TENANT, SESSION)]
    assert authenticate(events, None, KNOWN) == TENANT
    assert authenticate(events[::-1], None, KNOWN) == TENANT


def test_unknown_tenant_id_is_401() -> None:
    error = edge_error(authenticate, [ev.page_view("stranger", SESSION)], None, KNOWN)
    assert (error.status, error.code) == (401, "unknown_api_key")


@pytest.mark.parametrize("events", [[{}], [1, "x"], [{"tenantId": None}]])
def test_no_key_at_all_is_401_missing(events: list[Any]) -> None:
    error = edge_error(authenticate, events, None, KNOWN)
    assert (error.status, error.code) == (401, "missing_api_key")


# --- client address ----------------------------------------------------------------------------

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
XFF = "X-Forwarded-For"
REAL = "X-Real-IP"


def test_untrusted_peer_ignores_forwarding_headers() -> None:
    headers = {XFF: "198.51.100.1", REAL: "198.51.100.2"}
    assert client_ip("203.0.113.9", headers, TRUSTED) == "203.0.113.9"
    assert client_ip("203.0.113.9", headers, ()) == "203.0.113.9"


def test_no_peer() -> None:
    assert client_ip(None, {XFF: "198.51.100.1"}, TRUSTED) is None


def test_trusted_peer_takes_right_most_untrusted_hop() -> None:
    headers = {XFF: "1.1.1.1, 198.51.100.7, 203.0.113.5, 10.0.0.3", REAL: "198.51.100.99"}
    assert client_ip("10.0.0.2", headers, TRUSTED) == "203.0.113.5"


def test_spoofed_left_entries_never_win() -> None:
    headers = {XFF: "garbage, 127.0.0.1, 203.0.113.5"}
    assert client_ip("10.0.0.2", headers, TRUSTED) == "203.0.113.5"


def test_empty_hops_are_skipped() -> None:
    assert client_ip("10.0.0.2", {XFF: " , 203.0.113.5 ,,"}, TRUSTED) == "203.0.113.5"


def test_garbage_right_most_hop_falls_back_to_real_ip_then_peer() -> None:
    headers = {XFF: "203.0.113.5, not-an-ip"}
    assert client_ip("10.0.0.2", headers, TRUSTED) == "10.0.0.2"
    assert client_ip("10.0.0.2", {**headers, REAL: "198.51.100.8"}, TRUSTED) == "198.51.100.8"


def test_all_hops_trusted_falls_back_to_real_ip_then_peer() -> None:
    headers = {XFF: "10.1.1.1, 10.2.2.2"}
    assert client_ip("10.0.0.2", headers, TRUSTED) == "10.0.0.2"
    assert client_ip("10.0.0.2", {**headers, REAL: " 198.51.100.8 "}, TRUSTED) == "198.51.100.8"


def test_real_ip_without_xff_and_garbage_real_ip() -> None:
    assert client_ip("10.0.0.2", {REAL: "198.51.100.8"}, TRUSTED) == "198.51.100.8"
    assert client_ip("10.0.0.2", {REAL: "localhost"}, TRUSTED) == "10.0.0.2"
    assert client_ip("10.0.0.2", {}, TRUSTED) == "10.0.0.2"


def test_ipv6_hops() -> None:
    assert client_ip("fd00::1", {XFF: "2001:DB8:0:0::1"}, TRUSTED) == "2001:db8::1"
    assert client_ip("fd00::1", {XFF: "[2001:db8::2], fd12::5"}, TRUSTED) == "2001:db8::2"
    assert client_ip("10.0.0.2", {XFF: "2001:db8::3"}, TRUSTED) == "2001:db8::3"
    assert client_ip("fd00::1", {REAL: "2001:db8::4"}, TRUSTED) == "2001:db8::4"


def test_untrusted_ipv6_peer_is_returned_as_is() -> None:
    assert client_ip("2001:db8::9", {XFF: "198.51.100.1"}, TRUSTED) == "2001:db8::9"


def test_unparseable_peer_is_not_trusted() -> None:
    assert client_ip("unix-socket", {XFF: "198.51.100.1"}, TRUSTED) == "unix-socket"


# --- raw batch ---------------------------------------------------------------------------------


def test_batch_record() -> None:
    events = [ev.page_view(TENANT, SESSION)]
    envelope = Envelope.model_validate({"events": events, "sentAt": 123.5, "dropped": 4})
    batch = batch_record(envelope, TENANT, 1_700_000_000_000, "203.0.113.1", "UA" * 1000)
    assert batch == {
        "v": 1,
        "api_key": TENANT,
        "received_at": 1_700_000_000_000,
        "ip": "203.0.113.1",
        "user_agent": ("UA" * 1000)[:1024],
        "sent_at": 123.5,
        "dropped": 4,
        "events": events,
    }
    assert orjson.loads(orjson.dumps(batch)) == batch


def test_every_error_code_of_the_edge_is_in_the_readme_table() -> None:
    root = Path(__file__).resolve().parents[2]
    source = "".join(path.read_text() for path in sorted((root / "web").glob("*.py")))
    codes = set(re.findall(r'EdgeError\(\s*(\d{3}),\s*"([a-z_]+)"', source))
    assert ("400", "body_incomplete") in codes and len(codes) >= 12
    table = {
        line.split("|")[1].strip(): line
        for line in (root / "README.md").read_text().splitlines()
        if re.match(r"\| \d{3} \|", line)
    }
    missing = [(status, code) for status, code in codes if f'"{code}"' not in table.get(status, "")]
    assert not missing, f"README's POST /v1/batch table lacks {missing}"
