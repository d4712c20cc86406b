"""The git edge of the change plan: read a file tree as it was at a revision, and list what changed since.

Only `git` subprocesses with argv lists, a fixed working directory and a hard timeout; nothing is checked out
in the user's working tree (a revision is materialised with `git archive` into a directory the caller owns).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

GIT_TIMEOUT_S = 120


class GitError(Exception):
    """A git command failed; the message says which revision or path and what git answered."""


def _git(repo: Path, *args: str, binary: bool = False) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, timeout=GIT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed (needed for --base)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"`git {' '.join(args)}` took longer than {GIT_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"`git {' '.join(args)}` failed in {repo}: {message[-1] if message else done.returncode}")
    return done.stdout


def repo_root(path: Path) -> Path:
    """The top of the git working tree that holds `path`."""
    start = path if path.is_dir() else path.parent
    if not start.exists():
        raise GitError(f"{path} does not exist")
    return Path(_git(start, "rev-parse", "--show-toplevel").decode().strip()).resolve()


def resolve_revision(repo: Path, revision: str) -> str:
    """A commit sha for `revision` (branch, tag, sha, HEAD~1, origin/main ...), or GitError naming it."""
    if revision.startswith("-"):
        raise GitError(f"revision {revision!r} must not start with '-'")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").decode().strip()
    except GitError as exc:
        raise GitError(f"unknown git revision {revision!r} in {repo} (fetch it first?)") from exc


def path_exists(repo: Path, commit: str, relative: str) -> bool:
    return bool(_git(repo, "ls-tree", commit, "--", relative).strip())


def export_tree(repo: Path, commit: str, dest: Path, relative: str | None = None) -> bool:
    """Writes the tree at `commit` (only `relative` if given) under `dest`, keeping repository-relative paths.
    Returns False if `relative` does not exist at that commit."""
    if relative is not None and not path_exists(repo, commit, relative):
        return False
    archive = _git(repo, "archive", "--format=tar", commit, *(["--", relative] if relative else []))
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(dest, filter="data")
    return True


def changed_paths(repo: Path, commit: str) -> list[str]:
    """Repository-relative paths that differ between `commit` and the working tree, untracked files included."""
    diffed = _git(repo, "diff", "--name-only", "--no-renames", "-z", commit, "--")
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    names = {p for p in (diffed + untracked).decode("utf-8", "replace").split("\0") if p}
    return sorted(names)


def describe(repo: Path, commit: str) -> str:
    """`abc1234 (subject)`, for a plan's heading."""
    return _git(repo, "log", "-1", "--format=%h %s", commit).decode().strip()


def tree_revision(path: Path) -> str:
    """The commit checked out where `path` is, with `-dirty` when `path` has uncommitted changes (what a rollout
    records of the agents tree it started from)."""
    repo = repo_root(path)
    commit = resolve_revision(repo, "HEAD")
    changed = _git(repo, "status", "--porcelain", "--", str(path.resolve())).strip()
    return f"{commit}-dirty" if changed else commit
