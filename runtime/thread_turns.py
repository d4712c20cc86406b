"""One turn at a time per thread, across every task of the instance.

Policy for a message to a thread whose previous turn is still running: it is **queued**. Inside one process the
turns of a thread wait on a lock in arrival order; across processes the turn then takes the thread's lease in the
store (runtime.thread_leases), polling with a short backoff while another task holds it. A turn that cannot start
within `wait_seconds` (THREAD_WAIT_SECONDS, default 30) is refused with ThreadBusyError (`code: thread_busy`), and
nothing of it is recorded. So each turn reads the whole history written before it and no append is lost.

A lease lasts LEASE_SECONDS and is renewed every RENEW_EVERY_SECONDS while the turn runs; a task that dies
mid-turn holds its threads at most LEASE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from runtime.config import DEFAULT_THREAD_WAIT_SECONDS
from runtime.thread_leases import Leases

LEASE_SECONDS = 30.0
RENEW_EVERY_SECONDS = 10.0
MAX_POLL_SECONDS = 0.2

log = logging.getLogger("runtime.thread_turns")


class ThreadBusyError(RuntimeError):
    """The thread's previous turn did not finish within the wait; the caller may retry."""


class StateUnavailableError(RuntimeError):
    """The store could not be asked for the thread's lease (unreachable, throttled, locked for too long)."""


class ThreadTurns:
    def __init__(
        self,
        leases: Leases,
        *,
        ttl_seconds: float,
        wait_seconds: float = DEFAULT_THREAD_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leases = leases
        self.wait_seconds = wait_seconds
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, thread_id: str) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.wait_seconds
        lock = self._enter(thread_id)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise self._busy(thread_id) from None
            try:
                owner = f"{self._process}:{uuid.uuid4().hex}"
                await self._take(thread_id, owner, deadline)
                heartbeat = asyncio.create_task(self._renew(thread_id, owner))
                try:
                    yield
                finally:
                    heartbeat.cancel()
                    with suppress(asyncio.CancelledError):
                        await heartbeat
                    await self._release(thread_id, owner)
            finally:
                lock.release()
        finally:
            self._leave(thread_id)

    async def _take(self, thread_id: str, owner: str, deadline: float) -> None:
        attempt = 0
        while True:
            now = self._clock()
            try:
                taken = await self.leases.acquire(
                    thread_id, owner, now=now, until=now + LEASE_SECONDS, expires_at=now + self._ttl_seconds
                )
            except Exception as exc:
                raise StateUnavailableError(
                    f"the thread state store did not answer ({type(exc).__name__}: {str(exc)[:300]}); retry"
                ) from exc
            if taken:
                return
            pause = min(MAX_POLL_SECONDS, 0.005 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            if time.monotonic() + pause > deadline:
                raise self._busy(thread_id)
            attempt += 1
            await asyncio.sleep(pause)

    async def _release(self, thread_id: str, owner: str) -> None:
        """A release that fails is logged, not raised: the turn's answer stands, and the lease runs out by itself."""
        now = self._clock()
        try:
            await self.leases.release(thread_id, owner, now=now, expires_at=now + self._ttl_seconds)
        except Exception:
            log.exception('{"event": "thread.release_failed", "thread_id": %r}', thread_id)

    async def _renew(self, thread_id: str, owner: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                renewed = await self.leases.renew(thread_id, owner, until=self._clock() + LEASE_SECONDS)
            except Exception:
                log.exception('{"event": "thread.renew_failed", "thread_id": %r}', thread_id)
                continue
            if not renewed:
                log.warning('{"event": "thread.lease_lost", "thread_id": %r}', thread_id)
                return

    def _busy(self, thread_id: str) -> ThreadBusyError:
        """Names no thread: the store's thread id is the caller's opaque key (runtime.auth.thread_key); the
        instance names the caller's own thread id in the answer."""
        return ThreadBusyError(
            f"has had a turn in progress for over {self.wait_seconds:g} s (THREAD_WAIT_SECONDS); "
            "retry when it has finished"
        )

    def _enter(self, thread_id: str) -> asyncio.Lock:
        lock, users = self._locks.get(thread_id, (asyncio.Lock(), 0))
        self._locks[thread_id] = (lock, users + 1)
        return lock

    def _leave(self, thread_id: str) -> None:
        lock, users = self._locks[thread_id]
        if users <= 1:
            del self._locks[thread_id]
        else:
            self._locks[thread_id] = (lock, users - 1)
