"""Where a rollout is remembered between runs: one JSON file per environment under `build/rollouts/`.

One file per environment (not per change) is what lets a new change see that the environment still has an
unfinished rollout. The file names its change; every write is atomic (`foundry.files.atomic`), so a crash
mid-write leaves the previous state, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from foundry.files.atomic import write_atomically
from foundry.files.repo import BUILD_DIR
from foundry.rollout.scheduler import Rollout

DEFAULT_STATE_DIR = BUILD_DIR / "rollouts"
SIMULATED_SUBDIR = "simulated"
"""`--simulate` remembers its rollouts apart from real ones (resume works there too) and never touches these."""


class RolloutConflictError(Exception):
    """Another change's rollout of the environment is unfinished; the message says which and what to run."""


def change_id(environment: str, targets: Mapping[str, str], runtime_image: str | None) -> str:
    """Identifies a change: the environment, each instance to deploy with its content fingerprint (a hash of
    its resolved manifest and bundle files), and the runtime image. The same change always gets the same id."""
    document = {"environment": environment, "instances": dict(sorted(targets.items())), "image": runtime_image}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RolloutStore:
    directory: Path = DEFAULT_STATE_DIR

    def path(self, environment: str) -> Path:
        return self.directory / f"{environment}.json"

    def load(self, environment: str) -> Rollout | None:
        path = self.path(environment)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RolloutConflictError(
                f"{path} is not a readable rollout state ({exc}); move it away or run again with --abandon"
            ) from exc
        return Rollout.from_dict(data)

    def save(self, rollout: Rollout) -> None:
        # Compact separators keep json on its C encoder (an indent would not): the state of 1,000 instances is
        # written after every deploy.
        data = json.dumps(rollout.as_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n"
        write_atomically({self.path(rollout.environment): data})

    @contextlib.contextmanager
    def hold(self, environment: str) -> Iterator[None]:
        """One rollout of an environment at a time across processes (an flock on `<env>.lock`)."""
        lock = self.directory / f"{environment}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = lock.read_text(errors="replace").strip() or "another process"
                raise RolloutConflictError(
                    f"a rollout of {environment} is already running ({holder}); wait for it, or read its progress "
                    "with foundry.get_rollout_status"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}".encode())
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def environments(self) -> Sequence[str]:
        return sorted(p.stem for p in self.directory.glob("*.json"))


def resume_or_start(store: RolloutStore, fresh: Rollout, *, abandon: bool) -> tuple[Rollout, str]:
    """The rollout to run: the unfinished one of the same change (resumed), else `fresh`. An unfinished rollout of
    another change refuses, unless `abandon`. Returns the rollout and a line saying which case it was."""
    existing = store.load(fresh.environment)
    if existing is not None and existing.finished and existing.change_id == fresh.change_id:
        path = store.path(fresh.environment)
        return existing, f"already complete (nothing to do; remove {path} to roll the same change out again)"
    if existing is None or existing.finished:
        return fresh, "new rollout"
    if existing.change_id == fresh.change_id:
        if existing.waves != fresh.waves:
            # Same change, other waves (the policy changed): keep what was deployed, re-plan what was not.
            for selector, progress in fresh.instances.items():
                old = existing.instances.get(selector)
                if old is not None and old.state == "deployed":
                    progress.state, progress.deploys = "deployed", old.deploys
            fresh.runs, fresh.elapsed_seconds = existing.runs, existing.elapsed_seconds
            # The same change deploys from the assembly it started with (checked again before deploying).
            fresh.assembly, fresh.assembly_digest = existing.assembly, existing.assembly_digest
            fresh.git_revision = existing.git_revision
            return fresh, "resumed (policy changed: waves re-planned, deployed instances kept)"
        return existing, f"resumed (run {existing.runs + 1}, stopped at wave {existing.halted_wave or '?'})"
    if not abandon:
        counts = existing.counts()
        raise RolloutConflictError(
            f"environment {fresh.environment} has an unfinished rollout of another change "
            f"({existing.change}, id {existing.change_id}: {existing.status}, {counts['deployed']} deployed, "
            f"{counts['failed'] + counts['rolled_back']} failed or rolled back, {counts['not_started']} not started; "
            f"state in {store.path(fresh.environment)}). Finish it by running that change again, or start this "
            "one with --abandon"
        )
    fresh.notes.append(
        f"abandoned the unfinished rollout of {existing.change} (id {existing.change_id}, {existing.status})"
    )
    return fresh, "new rollout (the previous one was abandoned)"
