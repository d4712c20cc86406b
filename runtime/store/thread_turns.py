"""One turn at a time per thread, across every task of the instance.

What happens to a message for a thread whose previous turn is still running is the instance's busy policy (the
manifest's `mcp.on_busy`, OnBusy): `enqueue` (the default, described next), `reject` (thread_busy at once: the
thread's lock is held in this process, or its lease in the store by another task) or `interrupt` (the running turn
is stopped and the new one runs: in this process by setting the running turn's `interrupted` event; on another task
by taking its lease over, which bumps the fence so the store refuses that turn's writes, and which that task sees
within INTERRUPT_POLL_SECONDS; the stopped turn fails with TurnInterruptedError, `code: interrupted`, having
recorded nothing, and a turn still waiting behind it is superseded the same way).

With `enqueue` the message is **queued**. Inside one process the
turns of a thread wait on a lock in arrival order; across processes the turn then takes the thread's lease in the
store (runtime.store.thread_leases), polling with a short backoff while another task holds it. A turn that cannot start
within `wait_seconds` (THREAD_WAIT_SECONDS, default 30) is refused with ThreadBusyError (`code: thread_busy`), and
nothing of it is recorded. So each turn reads the whole history written before it and no append is lost.

A lease lasts LEASE_SECONDS and is renewed every RENEW_EVERY_SECONDS while the turn runs; a task that dies
mid-turn holds its threads at most LEASE_SECONDS. A turn whose renewals fail (a throttled store) may see its lease
taken over by another task: its writes carry the lease's fence and the store refuses them (runtime.store.memory), and
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from itertools import count
from typing import Literal, TypeVar

from runtime.config import DEFAULT_THREAD_WAIT_SECONDS
from runtime.store.thread_leases import PINNED, HeldLease, LeaseLostError, Leases, ThreadOwner

LEASE_SECONDS = 30.0
RENEW_EVERY_SECONDS = 10.0
MAX_POLL_SECONDS = 0.2
INTERRUPT_POLL_SECONDS = 0.2
"""Under `interrupt`, how often a running turn asks the store whether another task took its thread over."""
OnBusy = Literal["enqueue", "reject", "interrupt"]
INTERRUPTED = "a newer message on this thread interrupted the turn"
STOPPED = "was interrupted by a newer message (busy policy: interrupt)"
T = TypeVar("T")

log = logging.getLogger(__name__)


class ThreadBusyError(RuntimeError):
    """The thread's previous turn did not finish within the wait; the caller may retry."""


class TurnLostError(ThreadBusyError):
    """The turn's lease was taken over by another task while it ran; its writes were refused."""


class TurnInterruptedError(RuntimeError):
    """A newer message on the thread stopped this turn (busy policy `interrupt`); nothing of it was recorded."""


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
        self._tickets = count(1)
        self._newest: dict[str, int] = {}
        """Under `interrupt`: the newest turn to arrive on each thread in this process; older waiting ones give way."""
        self._lease_seconds = lease_seconds
        self._renew_every_seconds = renew_every_seconds

    def held(self, thread_id: str) -> HeldLease | None:
        """The lease of this process's running turn on the thread: what that turn's writes must carry."""
        return self._held.get(thread_id)

    @asynccontextmanager
    async def turn(
        self, thread_id: str, caller: ThreadOwner | None = None, on_busy: OnBusy = "enqueue", *, pinned: bool = False
    ) -> AsyncIterator[HeldLease]:
        """`caller`: whose thread it is, kept in the thread's record for data-subject requests. Under `interrupt`
        the caller runs its work through `until_interrupted`, which stops it when the lease's event is set.
        `pinned`: no newer message interrupts this turn, in this process or from another task (thread_leases.PINNED);
        under `interrupt` they wait for it as under `enqueue`."""
        deadline = time.monotonic() + self.wait_seconds
        lock = self._enter(thread_id)
        ticket = next(self._tickets)
        try:
            if on_busy == "reject" and lock.locked():
                raise self._busy_now()
            if on_busy == "interrupt":
                self._newest[thread_id] = ticket
                if (running := self._held.get(thread_id)) is not None and not running.pinned:
                    _interrupt(running)
            try:
                await asyncio.wait_for(lock.acquire(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise self._busy(thread_id) from None
            try:
                if on_busy == "interrupt" and self._newest.get(thread_id) != ticket:
                    raise TurnInterruptedError(f"{STOPPED} before this turn started; nothing of it was recorded")
                owner = f"{PINNED if pinned else ''}{self._process}:{uuid.uuid4().hex}"
                lease = HeldLease(thread_id, owner, await self._take(thread_id, owner, deadline, caller, on_busy))
                self._held[thread_id] = lease
                heartbeat = asyncio.create_task(self._renew(lease))
                watch = asyncio.create_task(self._watch(lease)) if on_busy == "interrupt" else None
                try:
                    yield lease
                finally:
                    del self._held[thread_id]
                    for task in (heartbeat, watch):
                        if task is not None:
                            task.cancel()
                            with suppress(asyncio.CancelledError):
                                await task
                    await self._release(thread_id, owner)
                if lease.interrupted.is_set():
                    if not lease.recorded:
                        raise TurnInterruptedError(f"{STOPPED}; nothing of this turn was recorded")
                elif lease.lost is not None:
                    raise TurnLostError(
                        f"lost its turn while it ran ({lease.lost}): another task took the thread, so nothing of "
                        "this turn was recorded; retry"
                    )
            finally:
                lock.release()
        finally:
            self._leave(thread_id)

    async def _take(
        self, thread_id: str, owner: str, deadline: float, caller: ThreadOwner | None, on_busy: OnBusy = "enqueue"
    ) -> int:
        """The fence of the lease taken: at once (`reject`: or thread_busy), by taking it over from another task
        (`interrupt`: one write, free thread or not; a PINNED holder is waited for), or once the holder lets go
        (`enqueue`: polling until the deadline)."""
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
                    take_over=on_busy == "interrupt",  # for a free thread the same write as a plain acquire
                )
            except Exception as exc:
                raise StateUnavailableError(
                    f"the thread state store did not answer ({type(exc).__name__}: {str(exc)[:300]}); retry"
                ) from exc
            if fence is not None:
                return fence
            if on_busy == "reject":
                raise self._busy_now()
            # (under `interrupt`, a take-over refused by a write in flight, DynamoDB's conflict, is retried below)
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

    async def _watch(self, lease: HeldLease) -> None:
        """Under `interrupt`: stops the turn once another task has taken its thread over (the record no longer
        names this lease). A store that does not answer is asked again; the fence protects the writes meanwhile."""
        while True:
            await asyncio.sleep(INTERRUPT_POLL_SECONDS)
            try:
                await self.leases.check(lease)
            except LeaseLostError:
                log.info('{"event": "thread.interrupted", "thread_id": %r}', lease.thread_id)
                _interrupt(lease)
                return
            except Exception:
                log.warning('{"event": "thread.check_failed", "thread_id": %r}', lease.thread_id)

    def _busy_now(self) -> ThreadBusyError:
        return ThreadBusyError("has a turn in progress (this instance's busy policy is reject); retry when it is done")

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
            self._newest.pop(thread_id, None)
        else:
            self._locks[thread_id] = (lock, users - 1)


def _interrupt(lease: HeldLease) -> None:
    lease.lost = lease.lost or INTERRUPTED
    lease.interrupted.set()


async def until_interrupted(lease: HeldLease, work: Awaitable[T]) -> T:
    """Runs `work` (the turn's graph) and cancels it when the turn is interrupted (TurnInterruptedError): its later
    writes would be refused by the store anyway, this stops its model and tool calls too. A turn whose answer was
    already recorded when the interruption came finishes normally."""
    running = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(lease.interrupted.wait())
    try:
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if lease.recorded and not running.done():  # its answer is in the history: let the turn finish
            await running
    finally:
        stopped.cancel()
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    if running.cancelled():
        raise TurnInterruptedError(f"{STOPPED}; nothing of this turn was recorded")
    return running.result()


def busy_code(exc: Exception) -> str:
    """The caller's error code for a turn that did not run to the end because of another turn or the store."""
    if isinstance(exc, TurnInterruptedError):
        return "interrupted"
    return "thread_busy" if isinstance(exc, ThreadBusyError) else "state_unavailable"
