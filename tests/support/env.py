"""A test's settings from defaults only: no TRACKFLOW_* variable of the calling shell."""

from __future__ import annotations

import os

import pytest


def clear_trackflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every TRACKFLOW_* variable for the test (any case: pydantic-settings matches
    names case-insensitively); monkeypatch puts them back afterwards."""
    for name in list(os.environ):
        if name.upper().startswith("TRACKFLOW_"):
            monkeypatch.delenv(name)


def env_without_trackflow(**settings: str) -> dict[str, str]:
    """This process's environment for a child, with no TRACKFLOW_* variable but ``settings``."""
    kept = {k: v for k, v in os.environ.items() if not k.upper().startswith("TRACKFLOW_")}
    return {**kept, **settings}
