"""One turn at a time per thread, across every task of the instance.

Policy for a message to a thread whose previous turn is still running: it is **queued**. Inside one process the
turns of a thread wait on a lock in arrival order; across processes the turn then takes the thread's lease in the
store (runtime.thread_leases), polling with a short backoff while another task holds it. A turn that cannot start
within `wait_seconds` (THREAD_WAIT_SECONDS, default 30) is refused with ThreadBusyError (`code: thread_busy`), and
nothing of it is recorded. So each turn reads the whole history written before it and no append is lost.

A lease lasts LEASE_SECONDS and is renewed every RENEW_EVERY_SECONDS while the turn runs; a task that dies
mid-turn holds its threads at most LEASE_SECONDS. A turn whose renewals fail (a throttled store) may see its lease
taken over by another task: its writes carry the lease's fence and the store refuses them (runtime.memory), and
the turn then fails with TurnLostError (`code: thread_busy`) having recorded nothing.
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
from runtime.thread_leases import HeldLease, Leases, ThreadOwner

LEASE_SECONDS = 30.0
RENEW_EVERY_SECONDS = 10.0
MAX_POLL_SECONDS = 0.2

log = logging.getLogger("runtime.thread_turns")


class ThreadBusyError(RuntimeError):
    """The thread's previous turn did not finish within the wait; the caller may retry."""


class TurnLostError(ThreadBusyError):
    """The turn's lease was taken over by another task while it ran; its writes were refused."""


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
        lease_seconds: float = LEASE_SECONDS,
        renew_every_seconds: float = RENEW_EVERY_SECONDS,
    ) -> None:
        self.leases = leases
        self.wait_seconds = wait_seconds
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._held: dict[str, HeldLease] = {}
        self._lease_seconds = lease_seconds
        self._renew_every_seconds = renew_every_seconds

    def held(self, thread_id: str) -> HeldLease | None:
        """The lease of this process's running turn on the thread: what that turn's writes must carry."""
        return self._held.get(thread_id)

    @asynccontextmanager
    async def turn(self, thread_id: str, caller: ThreadOwner | None = None) -> AsyncIterator[HeldLease]:
        """`caller`: whose thread it is, kept in the thread's record for data-subject requests."""
        deadline = time.monotonic() + self.wait_seconds
        lock = self._enter(thread_id)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise self._busy(thread_id) from None
            try:
                owner = f"{self._process}:{uuid.uuid4().hex}"
                lease = HeldLease(thread_id, owner, await self._take(thread_id, owner, deadline, caller))
                self._held[thread_id] = lease
                heartbeat = asyncio.create_task(self._renew(lease))
                try:
                    yield lease
                finally:
                    del self._held[thread_id]
                    heartbeat.cancel()
                    with suppress(asyncio.CancelledError):
                        await heartbeat
                    await self._release(thread_id, owner)
                if lease.lost is not None:
                    raise TurnLostError(
                        f"lost its turn while it ran ({lease.lost}): another task took the thread, so nothing of "
                        "this turn was recorded; retry"
                    )
            finally:
                lock.release()
        finally:
            self._leave(thread_id)

    async def _take(self, thread_id: str, owner: str, deadline: float, caller: ThreadOwner | None) -> int:
        """The fence of the lease taken."""
        attempt = 0
        while True:
            now = self._clock()
            try:
                fence = await self.leases.acquire(
                    thread_id,
                    owner,
                    now=now,
                    until=now + self._lease_seconds,
                    expires_at=now + self._ttl_seconds,
                    caller=caller,
                )
            except Exception as exc:
                raise StateUnavailableError(
                    f"the thread state store did not answer ({type(exc).__name__}: {str(exc)[:300]}); retry"
                ) from exc
            if fence is not None:
                return fence
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

    async def _renew(self, lease: HeldLease) -> None:
        """A failed renewal is retried (the lease may still be ours); a refused one means another task took the
        thread: the turn is marked lost, and the store refuses its writes in any case (their fence is stale)."""
        while True:
            await asyncio.sleep(self._renew_every_seconds)
            try:
                renewed = await self.leases.renew(
                    lease.thread_id, lease.owner, until=self._clock() + self._lease_seconds
                )
            except Exception:
                log.exception('{"event": "thread.renew_failed", "thread_id": %r}', lease.thread_id)
                continue
            if not renewed:
                log.warning('{"event": "thread.lease_lost", "thread_id": %r}', lease.thread_id)
                lease.lost = lease.lost or "its lease could not be renewed and was taken over"
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
