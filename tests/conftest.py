"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundry.files.user_key import KEY_FILE_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO_ROOT / "agents"


def pytest_configure(config: pytest.Config) -> None:
    """The Foundry's per-user key (foundry/files/user_key.py) in a temporary folder, not the tester's home: set
    before test modules are imported (some load the fleet at import), in os.environ so that the CLI and servers the
    tests start as subprocesses use it too."""
    if KEY_FILE_VARIABLE not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="agentfoundry-key-"))
        os.environ[KEY_FILE_VARIABLE] = str(folder / "state" / "foundry.key")
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def agents_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the example `agents/` tree that a test may break on purpose."""
    target = tmp_path / "agents"
    shutil.copytree(AGENTS_DIR, target, ignore=shutil.ignore_patterns("schemas"))
    yield target


@pytest.fixture(autouse=True)
def deploy_state_of_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test keeps its deploy state (rollout records, deploy locks) in its own SQLite file, never in the
    checkout's build/foundry-state.db: tests run side by side would otherwise see each other's locks."""
    path = tmp_path / "deploy-state" / "foundry-state.db"
    monkeypatch.setenv("FOUNDRY_STATE_URL", f"sqlite:///{path}")
    return path
