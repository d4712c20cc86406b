"""One deploy per (environment, instance) at a time, across every process of this repository.

An in-process map (two MCP sessions in one server) plus an flock on the instance's lock file (two servers, or the
CLI). The lock file also says who holds it and why, for the message a refused request gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path


class DeployInProgressError(RuntimeError):
    """A deploy of the same instance is already running; the message says since when and from which process."""


class HeldLock:
    """One instance's lock while it is held: by a running deploy, or by the watch of a stopped deploy's stack.
    `reason` is what a refused request is told; it is also written into the lock file for other processes."""

    def __init__(self, locks: InstanceLocks, key: str, fd: int, reason: str) -> None:
        self._locks, self.key, self._fd = locks, key, fd
        self.released = False
        self.handed_over = False
        """Set when a background watch took the lock over: the request that acquired it no longer releases it."""
        self.describe(reason)

    def describe(self, reason: str) -> None:
        self.reason = reason
        self._locks._held[self.key] = reason
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}: {reason}".encode(), 0)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._locks._held.pop(self.key, None)
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)


class InstanceLocks:
    """One deploy per (environment, instance) at a time, across every process of this repository: an in-process
    map (two MCP sessions in one server) plus an flock on the instance's lock file (two servers, or the CLI)."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    def acquire(self, lock_file: Path, label: str) -> HeldLock:
        """Takes the instance's lock or raises DeployInProgressError saying who holds it and why."""
        key = str(lock_file)
        if key in self._held:
            raise DeployInProgressError(
                f"a deploy of {label} is already running in this server ({self._held[key]}); "
                "this request was refused, not queued: retry when it has finished"
            )
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = lock_file.read_text(errors="replace").strip() or "another process"
            raise DeployInProgressError(
                f"a deploy of {label} is already running ({holder}); "
                "this request was refused, not queued: retry when it has finished"
            ) from None
        return HeldLock(self, key, fd, f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")

    def reason(self, lock_file: Path) -> str | None:
        """Why this process holds the lock (None: it does not; another process may, see the lock file)."""
        return self._held.get(str(lock_file))

    @contextlib.asynccontextmanager
    async def hold(self, lock_file: Path, label: str) -> AsyncIterator[HeldLock]:
        held = self.acquire(lock_file, label)
        try:
            yield held
        finally:
            held.release()
