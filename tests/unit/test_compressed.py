"""web.compressed: precompressed variants, Accept-Encoding negotiation, If-None-Match."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import brotli
import pytest

from web.compressed import (
    PrecompressedFile,
    accepted_codings,
    choose_coding,
    etag_matches,
    precompress,
)

SCRIPT = b"(function(){var trackflow={};" + b"window.TrackFlow=trackflow;" * 200 + b"})();"


def test_every_variant_decodes_to_the_same_body_and_has_its_own_etag() -> None:
    asset = precompress(SCRIPT)
    assert asset.variants["identity"].body == SCRIPT
    assert gzip.decompress(asset.variants["gzip"].body) == SCRIPT
    assert brotli.decompress(asset.variants["br"].body) == SCRIPT
    assert len(asset.variants["br"].body) < len(SCRIPT) / 5
    assert len(asset.variants["gzip"].body) < len(SCRIPT) / 5
    etags = [variant.etag for variant in asset.variants.values()]
    assert len(set(etags)) == 3
    assert all(tag.startswith('"') and tag.endswith('"') for tag in etags)  # strong
    assert asset.variants["gzip"].etag == asset.variants["identity"].etag[:-1] + '-gzip"'
    assert precompress(SCRIPT) == asset  # same content, same bytes and tags
    assert precompress(SCRIPT + b" ").variants["gzip"].etag != asset.variants["gzip"].etag


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip, deflate, br, zstd", "br"),
        ("gzip, deflate", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0.5, identity", "identity"),
        ("gzip;q=0", "identity"),
        ("deflate", "identity"),
        ("identity", "identity"),
        ("*", "br"),
        ("*;q=0", "identity"),  # nothing acceptable: sent as is rather than a 406
        ("br;q=0, *", "gzip"),
        ("gzip;q=bad, br;q=0", "identity"),
    ],
)
def test_the_coding_follows_accept_encoding(header: str | None, coding: str) -> None:
    assert choose_coding(header) == coding
    assert precompress(SCRIPT).choose(header).coding == coding


def test_accept_encoding_parsing() -> None:
    assert accepted_codings(" gzip ; q=0.8 , BR;Q=2, ,identity;q=-1") == {
        "gzip": 0.8,
        "br": 1.0,
        "identity": 0.0,
    }


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"abc-gzip"', True),
        ('W/"abc-gzip"', True),  # If-None-Match compares weakly
        ('"x", "abc-gzip"', True),
        ("*", True),
        ('"abc"', False),  # the identity body's tag: another representation
        ('"abc-br"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"abc-gzip"') is matches


def test_a_file_is_compressed_again_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "tracker.js"
    path.write_bytes(SCRIPT)
    cached = PrecompressedFile(path)
    first = cached.load()
    assert cached.load() is first
    path.write_bytes(SCRIPT + b"//v2")
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    second = cached.load()
    assert second is not first
    assert gzip.decompress(second.variants["gzip"].body) == SCRIPT + b"//v2"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        cached.load()
