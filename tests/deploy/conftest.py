"""Fixtures for the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.git_repos import GitRepo, new_git_repo


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """A real git repository holding a copy of the example `agents/` tree, committed once."""
    return new_git_repo(tmp_path / "repo")
