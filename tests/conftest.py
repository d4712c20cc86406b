"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO_ROOT / "agents"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def agents_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the example `agents/` tree that a test may break on purpose."""
    target = tmp_path / "agents"
    shutil.copytree(AGENTS_DIR, target, ignore=shutil.ignore_patterns("schemas"))
    yield target
