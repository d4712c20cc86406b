"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundry.files.user_key import KEY_FILE_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO_ROOT / "agents"


@pytest.fixture(scope="session", autouse=True)
def _user_key_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The Foundry's per-user key (foundry/files/user_key.py) in a temporary folder, not the tester's home; set in
    os.environ so that the CLI and servers the tests start as subprocesses use it too."""
    before = os.environ.get(KEY_FILE_VARIABLE)
    os.environ[KEY_FILE_VARIABLE] = str(tmp_path_factory.mktemp("user-key") / "state" / "foundry.key")
    yield
    if before is None:
        os.environ.pop(KEY_FILE_VARIABLE, None)
    else:
        os.environ[KEY_FILE_VARIABLE] = before


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def agents_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the example `agents/` tree that a test may break on purpose."""
    target = tmp_path / "agents"
    shutil.copytree(AGENTS_DIR, target, ignore=shutil.ignore_patterns("schemas"))
    yield target
