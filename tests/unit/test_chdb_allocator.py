"""The embedded engine's allocator options (TRACKFLOW_CHDB_DIRTY_DECAY_MS): set in the variable
chDB's jemalloc reads, before its library loads, never over an operator's own."""

from __future__ import annotations

from trackflow_app.settings import Settings
from trackflow_app.store import CHDB_ALLOCATOR_ENV, chdb_allocator_conf, configure_chdb_allocator


def test_the_options_name_the_decay() -> None:
    assert CHDB_ALLOCATOR_ENV == "JE_MALLOC_CONF"  # chDB's jemalloc has the je_ prefix
    assert chdb_allocator_conf(1000) == "dirty_decay_ms:1000"
    assert chdb_allocator_conf(0) == "dirty_decay_ms:0"


def test_set_before_the_engine_loads() -> None:
    environ: dict[str, str] = {}
    assert configure_chdb_allocator(250, environ, loaded=False)
    assert environ == {"JE_MALLOC_CONF": "dirty_decay_ms:250"}


def test_an_operators_own_options_are_kept() -> None:
    environ = {"JE_MALLOC_CONF": "narenas:1"}
    assert not configure_chdb_allocator(250, environ, loaded=False)
    assert environ == {"JE_MALLOC_CONF": "narenas:1"}


def test_too_late_once_the_engine_is_loaded() -> None:
    environ: dict[str, str] = {}
    assert not configure_chdb_allocator(250, environ, loaded=True)
    assert environ == {}


def test_the_default_returns_freed_pages_within_a_second() -> None:
    assert Settings().chdb_dirty_decay_ms == 1000
