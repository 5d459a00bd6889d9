"""The synchronous part of ``POST /v1/batch``, as pure functions: decode, parse, authenticate.

Anything hopeless about a request raises EdgeError, which the view turns into a 4xx with a
JSON body naming the problem. Per-event checks happen later, in the validate stage.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import Envelope
from schemas.records import RawBatch, raw_batch

ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "text/plain", ""})
ACCEPTED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip"})

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EdgeError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class EdgeLimits:
    max_body_bytes: int
    max_decompressed_bytes: int
    max_events_per_batch: int


def check_content_type(content_type: str) -> None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise EdgeError(
            415,
            "unsupported_media_type",
            f"Content-Type {media_type!r} is not accepted; send application/json or text/plain",
        )


def check_content_encoding(content_encoding: str) -> str:
    encoding = content_encoding.strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise EdgeError(
            415,
            "unsupported_content_encoding",
            f"Content-Encoding {encoding!r} is not accepted; send gzip or no encoding",
        )
    return "gzip" if encoding in ("gzip", "x-gzip") else ""


def too_large(limit: int, what: str) -> EdgeError:
    return EdgeError(413, "payload_too_large", f"{what} exceeds the limit of {limit} bytes")


def gunzip_bounded(body: bytes, limit: int) -> bytes:
    """Decompress gzip (every member, RFC 1952) without holding more than ``limit`` bytes."""
    out = bytearray()
    rest = body
    try:
        while rest:
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += decompressor.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or decompressor.unconsumed_tail:
                raise too_large(limit, "decompressed body")
            if not decompressor.eof:
                raise EdgeError(400, "malformed_body", "gzip body is truncated")
            rest = decompressor.unused_data
            if not rest.strip(b"\0"):
                break  # zero padding after the last member, which gzip(1) also ignores
    except zlib.error as exc:
        raise EdgeError(400, "malformed_body", f"gzip body cannot be decompressed: {exc}") from exc
    return bytes(out)


# A \uXXXX escape of a UTF-16 surrogate (not itself escaped as \\u...), with the low half
# that completes a high one: JSON's grammar allows lone halves, which orjson refuses.
_ESCAPED_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u(?:([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _replace_lone_surrogate(match: re.Match[bytes]) -> bytes:
    if match.group(2) and match.group(3):
        return match.group(0)  # a whole pair: one character
    return match.group(1) + rb"\ufffd"


def replace_lone_surrogates(body: bytes) -> bytes:
    """Lone surrogate escapes as U+FFFD, as a browser's TextEncoder writes a lone surrogate.

    ``JSON.stringify`` escapes a string's lone surrogate (``"\\ud83d"``), which a string cut
    in the middle of an emoji holds (the tracker caps error messages with ``slice``).
    """
    return _ESCAPED_SURROGATE.sub(_replace_lone_surrogate, body)


UTF8_BOM = b"\xef\xbb\xbf"


def parse_json(body: bytes) -> Any:
    if body.startswith(UTF8_BOM):  # RFC 8259 lets a reader ignore it; editors on Windows add it
        body = body[len(UTF8_BOM) :]
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "surrogate in string" in str(exc):  # not "not valid UTF-8: surrogates ..."
            try:
                return orjson.loads(replace_lone_surrogates(body))
            except orjson.JSONDecodeError:
                pass
        raise EdgeError(400, "malformed_json", f"body is not valid JSON: {exc}") from exc


def parse_envelope(body: bytes, limits: EdgeLimits) -> Envelope:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise EdgeError(400, "malformed_envelope", 'body must be an object {"events": [...]}')
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise EdgeError(400, "malformed_envelope", f"{field}: {first['msg']}") from exc
    if not envelope.events:
        raise EdgeError(400, "empty_batch", "events must hold at least one event")
    if len(envelope.events) > limits.max_events_per_batch:
        raise EdgeError(
            413,
            "too_many_events",
            f"batch holds {len(envelope.events)} events; the limit is "
            f"{limits.max_events_per_batch} per request",
        )
    return envelope


def request_api_key(
    events: Sequence[Any], header_key: str | None, known: frozenset[str] = frozenset()
) -> str | None:
    """The key a request is authenticated with: the header, else the first event's tenantId
    that is a ``known`` key, else the first event's tenantId.

    An unknown tenantId beside a known one is that event's problem (dead-lettered as
    ``unknown_tenant``), whichever of them comes first.
    """
    if header_key:
        return header_key.strip()
    first = None
    for event in events:
        tenant_id = event.get("tenantId") if isinstance(event, dict) else None
        if not isinstance(tenant_id, str):
            continue
        if tenant_id in known:
            return tenant_id
        first = first or tenant_id
    return first


def authenticate(events: Sequence[Any], header_key: str | None, known: frozenset[str]) -> str:
    api_key = request_api_key(events, header_key, known)
    if api_key is None:
        raise EdgeError(401, "missing_api_key", "no tenantId (API key) found in the batch")
    if api_key not in known:
        raise EdgeError(
            401, "unknown_api_key", "the API key (tenantId) of this batch is not registered"
        )
    return api_key


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str | None, trusted: Sequence[IpNetwork]) -> bool:
    ip = _parse_ip(address) if address else None
    return ip is not None and any(ip in net for net in trusted)


def client_ip(
    peer: str | None, headers: Mapping[str, str], trusted: Sequence[IpNetwork]
) -> str | None:
    """The client's address: forwarded headers are believed only from a trusted proxy peer.

    With X-Forwarded-For the right-most address that is not itself a trusted proxy is the
    client (left-most entries are whatever the client chose to send).
    """
    if not _trusted(peer, trusted):
        return peer
    forwarded = headers.get("X-Forwarded-For", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        ip = _parse_ip(hop)
        if ip is None:
            break
        if not any(ip in net for net in trusted):
            return str(ip)
    real_ip = _parse_ip(headers.get("X-Real-IP", ""))
    return str(real_ip) if real_ip is not None else peer


def anonymize_ip(address: str | None) -> str | None:
    """Zero the last octet of an IPv4 address, the last 80 bits of an IPv6 one."""
    ip = _parse_ip(address) if address else None
    if ip is None:
        return address
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def check_origin(origin: str | None, api_key: str, allowed: Mapping[str, Sequence[str]]) -> None:
    """A tenant with an origin allow-list only takes browser requests from those origins."""
    origins = allowed.get(api_key)
    if not origins or origin is None:
        return
    if origin.rstrip("/").lower() not in {o.rstrip("/").lower() for o in origins}:
        raise EdgeError(
            403, "origin_not_allowed", f"origin {origin!r} is not allowed for this API key"
        )


def batch_record(
    envelope: Envelope,
    api_key: str,
    received_at: int,
    ip: str | None,
    user_agent: str,
) -> RawBatch:
    return raw_batch(
        envelope.events,
        api_key=api_key,
        received_at=received_at,
        ip=ip,
        user_agent=user_agent,
        sent_at=envelope.sentAt,
        dropped=envelope.dropped,
    )


# Deeper than the validate stage keeps of properties (8 levels) and far less than orjson writes.
FORWARDED_DEPTH = 64


def prune_nesting(value: Any, depth_left: int = FORWARDED_DEPTH) -> Any:
    """``value`` with every object or array deeper than ``depth_left`` levels made null."""
    if isinstance(value, dict | list):
        if depth_left == 0:
            return None
        if isinstance(value, dict):
            return {key: prune_nesting(item, depth_left - 1) for key, item in value.items()}
        return [prune_nesting(item, depth_left - 1) for item in value]
    return value


def encode_record(record: RawBatch) -> bytes:
    """The raw-topic record's value.

    orjson reads 1,024 levels of nesting but writes 254: an event nested deeper than that
    travels with its deep parts made null, which the validate stage would have dropped anyway,
    so the events beside it are not refused with it.
    """
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        pass
    pruned: RawBatch = {**record, "events": [prune_nesting(event) for event in record["events"]]}
    try:
        return orjson.dumps(pruned)
    except orjson.JSONEncodeError as exc:
        raise EdgeError(400, "malformed_json", f"body cannot be passed on: {exc}") from exc


def decode_request(
    body: bytes, content_type: str, content_encoding: str, limits: EdgeLimits
) -> Envelope:
    check_content_type(content_type)
    encoding = check_content_encoding(content_encoding)
    if len(body) > limits.max_body_bytes:
        raise too_large(limits.max_body_bytes, "body")
    if encoding == "gzip":
        body = gunzip_bounded(body, limits.max_decompressed_bytes)
    return parse_envelope(body, limits)
