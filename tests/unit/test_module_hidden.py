"""module_hidden: the store loads chDB's Python side with pyarrow hidden, and only while it does."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import pytest

from trackflow_app.store import module_hidden


def test_the_module_is_absent_inside_the_block_only() -> None:
    modules: dict[str, Any] = {}
    with module_hidden("pyarrow", modules):
        assert "pyarrow" in modules and modules["pyarrow"] is None
    assert modules == {}


def test_a_loaded_module_is_left_as_it_is() -> None:
    loaded = ModuleType("pyarrow")
    modules: dict[str, Any] = {"pyarrow": loaded}
    with module_hidden("pyarrow", modules):
        assert modules["pyarrow"] is loaded
    assert modules == {"pyarrow": loaded}


def test_restored_when_the_block_fails() -> None:
    modules: dict[str, Any] = {}
    with pytest.raises(ImportError), module_hidden("pyarrow", modules):
        raise ImportError("chdb.state failed")
    assert modules == {}


def test_an_import_inside_the_block_fails_and_works_after_it() -> None:
    name = "tabnanny"  # a standard-library module nothing here loads
    assert name not in sys.modules
    with module_hidden(name), pytest.raises(ImportError):
        importlib.import_module(name)
    try:
        assert importlib.import_module(name).__name__ == name
    finally:
        sys.modules.pop(name, None)
