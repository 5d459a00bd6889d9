"""Precompressed static files: one body per content coding, chosen by Accept-Encoding.

The pure parts (compressing, content negotiation, If-None-Match matching) take no I/O;
PrecompressedFile is the thin shell that reads a file and compresses it again only when the file
changes. Each coding is its own representation with its own strong ETag, and every answer
carries ``Vary: Accept-Encoding``, so a shared cache keeps the variants apart and revalidates each
with the right tag (RFC 9110 8.8.3, 12.5.3, 13.1.2).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import brotli

# Most compact first: on equal preference the first coding the client accepts is sent.
CODINGS: tuple[str, ...] = ("br", "gzip", "identity")
_ALIASES = {"x-gzip": "gzip"}


@dataclass(frozen=True)
class Variant:
    coding: str  # "br", "gzip" or "identity"
    body: bytes
    etag: str  # strong, quoted


@dataclass(frozen=True)
class Precompressed:
    variants: dict[str, Variant]  # by coding, every one of CODINGS

    def choose(self, accept_encoding: str | None) -> Variant:
        return self.variants[choose_coding(accept_encoding)]


def precompress(body: bytes) -> Precompressed:
    """The body as is, gzip'd and brotli'd at their highest levels (done once per content).

    gzip's header carries no time stamp, so the same content always compresses to the same bytes.
    """
    digest = hashlib.sha256(body).hexdigest()[:32]
    bodies = {
        "br": brotli.compress(body, quality=11),
        "gzip": gzip.compress(body, compresslevel=9, mtime=0),
        "identity": body,
    }
    return Precompressed(
        {
            coding: Variant(
                coding, data, f'"{digest}"' if coding == "identity" else f'"{digest}-{coding}"'
            )
            for coding, data in bodies.items()
        }
    )


def accepted_codings(accept_encoding: str) -> dict[str, float]:
    """Accept-Encoding as coding -> q (lower case; a malformed q reads as 0)."""
    found: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        coding = _ALIASES.get(coding.lower(), coding.lower())
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        found[coding] = max(q, found.get(coding, 0.0))
    return found


def choose_coding(accept_encoding: str | None) -> str:
    """The coding to send: the most preferred one the client accepts, most compact on ties.

    No header means no preference: identity. ``*`` stands for every coding not listed, identity
    included; identity unlisted (and no ``*``) stays acceptable. When the client refuses every
    coding, identity is sent all the same (RFC 9110 12.5.3 allows that instead of a 406).
    """
    if accept_encoding is None or not accept_encoding.strip():
        return "identity"
    accepted = accepted_codings(accept_encoding)
    default = accepted.get("*")

    def weight(coding: str) -> float:
        if coding in accepted:
            return accepted[coding]
        if default is not None:
            return default
        return 1.0 if coding == "identity" else 0.0

    best = max(CODINGS, key=lambda coding: (weight(coding), -CODINGS.index(coding)))
    return best if weight(best) > 0 else "identity"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match against one ETag: ``*`` or any listed tag, compared weakly (RFC 9110)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class PrecompressedFile:
    """A file's precompressed variants, made again only when its size or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._value: Precompressed | None = None

    def load(self) -> Precompressed:
        """Raises FileNotFoundError when the file is missing."""
        stat = self.path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if self._value is None or key != self._key:
            self._value = precompress(self.path.read_bytes())
            self._key = key
        return self._value
