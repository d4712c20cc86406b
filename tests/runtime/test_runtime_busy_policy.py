"""The busy policies inside one process and between two tasks' turn keepers on one store (runtime.store.thread_turns),
without HTTP: the process tests (test_runtime_busy_threads.py) show the same across real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.state_url import parse_state_url
from runtime.store.memory import StoredMessage
from runtime.store.thread_leases import Leases, MemoryLeases, ThreadOwner
from runtime.store.thread_store import ThreadState, open_thread_state
from runtime.store.thread_turns import ThreadBusyError, ThreadTurns, TurnInterruptedError, until_interrupted
from tests.mcp.foundry_mcp_local_aws import moto_server
from tests.runtime.state_table import create_state_table

HOUR = 3600.0


class CountedLeases(MemoryLeases):
    """The in-process store, noting each acquire (on SQLite or DynamoDB, one conditional write) and its take_over."""

    def __init__(self) -> None:
        super().__init__()
        self.acquired: list[bool] = []

    async def acquire(
        self,
        thread_id: str,
        owner: str,
        *,
        now: float,
        until: float,
        expires_at: float,
        caller: ThreadOwner | None = None,
        take_over: bool = False,
    ) -> int | None:
        self.acquired.append(take_over)
        return await super().acquire(
            thread_id, owner, now=now, until=until, expires_at=expires_at, caller=caller, take_over=take_over
        )


def _turns(leases: Leases) -> ThreadTurns:
    return ThreadTurns(leases, ttl_seconds=HOUR, wait_seconds=5.0)


async def test_reject_refuses_a_second_turn_of_this_process_at_once() -> None:
    turns = _turns(MemoryLeases())
    async with turns.turn("t1", on_busy="reject"):
        with pytest.raises(ThreadBusyError, match="busy policy is reject"):
            async with turns.turn("t1", on_busy="reject"):
                pass
        async with turns.turn("t2", on_busy="reject"):  # another thread is not busy
            pass


async def test_reject_refuses_a_turn_while_another_task_holds_the_thread() -> None:
    leases = MemoryLeases()
    mine, theirs = _turns(leases), _turns(leases)
    async with theirs.turn("t1", on_busy="reject"):
        with pytest.raises(ThreadBusyError):
            async with mine.turn("t1", on_busy="reject"):
                pass
    async with mine.turn("t1", on_busy="reject"):  # free again
        pass


async def test_interrupt_stops_the_running_turn_of_this_process_and_the_new_one_runs() -> None:
    turns = _turns(MemoryLeases())
    started = asyncio.Event()

    async def old() -> None:
        async with turns.turn("t1", on_busy="interrupt") as lease:
            started.set()
            await until_interrupted(lease, asyncio.sleep(30))

    running = asyncio.create_task(old())
    await started.wait()
    async with asyncio.timeout(5), turns.turn("t1", on_busy="interrupt") as lease:
        assert lease.fence == 2
    with pytest.raises(TurnInterruptedError, match="interrupted by a newer message"):
        await running


async def test_interrupt_takes_a_thread_with_one_store_call_whether_another_task_holds_it_or_not() -> None:
    leases = CountedLeases()
    mine, theirs = _turns(leases), _turns(leases)
    async with mine.turn("t1", on_busy="interrupt") as lease:  # a free thread
        assert lease.fence == 1
    assert leases.acquired == [True]
    async with theirs.turn("t1") as held, mine.turn("t1", on_busy="interrupt") as lease:  # taken from their turn
        assert lease.fence == held.fence + 1
    assert leases.acquired == [True, False, True]


async def test_interrupt_supersedes_a_turn_still_waiting_behind_the_running_one() -> None:
    turns = _turns(MemoryLeases())
    order: list[str] = []
    started = asyncio.Event()

    async def run(name: str, work: float) -> None:
        async with turns.turn("t1", on_busy="interrupt") as lease:
            order.append(name)
            started.set()
            await until_interrupted(lease, asyncio.sleep(work))

    first = asyncio.create_task(run("first", 30))
    await started.wait()
    second = asyncio.create_task(run("second", 30))
    third = asyncio.create_task(run("third", 0))
    results = await asyncio.wait_for(asyncio.gather(first, second, third, return_exceptions=True), timeout=5)
    assert [type(r).__name__ for r in results] == ["TurnInterruptedError", "TurnInterruptedError", "NoneType"]
    assert "before this turn started" in str(results[1])
    assert order == ["first", "third"]


async def test_interrupt_takes_the_thread_from_another_task_whose_turn_then_stops_and_cannot_write(
    tmp_path: Path,
) -> None:
    location = parse_state_url(f"sqlite:///{tmp_path / 'threads.db'}")
    task_a = await open_thread_state(location, keep=20, ttl_seconds=HOUR, wait_seconds=5.0)
    task_b = await open_thread_state(location, keep=20, ttl_seconds=HOUR, wait_seconds=5.0)
    try:
        started = asyncio.Event()

        async def old() -> None:
            async with task_a.turns.turn("t1", on_busy="interrupt") as lease:
                started.set()
                await until_interrupted(lease, asyncio.sleep(30))

        running = asyncio.create_task(old())
        await started.wait()
        async with task_b.turns.turn("t1", on_busy="interrupt") as lease:
            await task_b.memory.append("t1", [StoredMessage("user", "new")], lease)
            with pytest.raises(TurnInterruptedError):
                await asyncio.wait_for(running, timeout=5)  # task A saw the take-over within its poll
        assert [m.content for m in await task_a.memory.read("t1", 10)] == ["new"]
    finally:
        await task_a.close()
        await task_b.close()


async def test_a_turn_interrupted_after_its_answer_was_recorded_finishes_normally() -> None:
    turns = _turns(MemoryLeases())
    recorded = asyncio.Event()
    finish = asyncio.Event()

    async def work() -> str:
        lease = turns.held("t1")
        assert lease is not None
        lease.recorded = True  # what ThreadMemory.append does once the store took the write
        recorded.set()
        await finish.wait()
        return "answered"

    async def old() -> str:
        async with turns.turn("t1", on_busy="interrupt") as lease:
            return await until_interrupted(lease, work())

    async def new() -> None:
        async with turns.turn("t1", on_busy="interrupt"):
            pass

    running = asyncio.create_task(old())
    await recorded.wait()
    newer = asyncio.create_task(new())
    await asyncio.sleep(0.01)  # the newer turn has interrupted the old one and waits for the thread
    finish.set()
    assert await running == "answered"
    await asyncio.wait_for(newer, timeout=5)


async def test_interrupt_waits_for_a_pinned_turn_of_this_process_instead_of_stopping_it() -> None:
    """A resumed approval's turn is pinned: a newer message under `interrupt` queues behind it and runs after it."""
    turns = _turns(MemoryLeases())
    order: list[str] = []
    started = asyncio.Event()

    async def approved_call() -> None:
        async with turns.turn("t1", pinned=True) as lease:
            assert lease.pinned
            started.set()
            await asyncio.sleep(0.3)
            order.append("approved call done")

    running = asyncio.create_task(approved_call())
    async with asyncio.timeout(5):
        await started.wait()
    async with asyncio.timeout(5), turns.turn("t1", on_busy="interrupt") as lease:
        order.append("newer message")
        assert not lease.interrupted.is_set()
    await running  # finished, not interrupted
    assert order == ["approved call done", "newer message"]


@pytest.fixture(params=["memory", "sqlite", pytest.param("dynamodb", marks=pytest.mark.slow)])
def leases_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param != "dynamodb":
        yield {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'threads.db'}"}[request.param]
        return
    with moto_server() as moto:
        for name, value in moto.env.items():
            monkeypatch.setenv(name, value)
        yield create_state_table(moto.client("dynamodb"), f"af-pinned-{tmp_path.name[-20:].strip('_')}")


async def test_no_task_takes_over_a_pinned_lease_and_its_take_over_waits_for_the_release(leases_url: str) -> None:
    """On every store: the take-over of `interrupt` is refused while another task's pinned turn holds the thread
    (its fence and writes stay valid), and succeeds once that turn let go; an unpinned holder is taken over."""
    location = parse_state_url(leases_url)

    async def task() -> ThreadState:
        return await open_thread_state(location, keep=20, ttl_seconds=HOUR, wait_seconds=0.5, region="us-east-1")

    # two tasks on one store; "memory://" is one process's own, so its second task shares the first one's leases
    opened = [await task()] if location.kind == "memory" else [await task(), await task()]
    a = opened[0].turns
    b = opened[1].turns if len(opened) == 2 else _turns(a.leases)
    try:
        async with a.turn("t1", pinned=True) as pinned:
            with pytest.raises(ThreadBusyError, match="THREAD_WAIT_SECONDS"):
                async with b.turn("t1", on_busy="interrupt"):
                    pass
            await a.leases.check(pinned)  # still the holder, fence unchanged
        async with b.turn("t1", on_busy="interrupt") as taken:  # free again
            assert taken.fence == pinned.fence + 1
        async with a.turn("t1") as plain, b.turn("t1", on_busy="interrupt") as taken:
            assert taken.fence == plain.fence + 1  # an unpinned holder is taken over
    finally:
        for state in opened:
            await state.close()
