"""Real git repositories in temporary directories, for the plan tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, timeout=60, check=True, env={**os.environ, **GIT_ENV}
    )
    return done.stdout.strip()


class GitRepo:
    """A throwaway repository holding a copy of the example `agents/` tree, committed once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.agents = root / "agents"

    def commit(self, message: str) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.root, "rev-parse", "HEAD")

    def edit_yaml(self, relative: str, change: Callable[[Any], None]) -> None:
        path = self.root / relative
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def new_git_repo(root: Path) -> GitRepo:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO_ROOT / "agents", root / "agents", ignore=shutil.ignore_patterns("schemas"))
    repo = GitRepo(root)
    repo.commit("fleet")
    return repo
