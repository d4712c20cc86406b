"""Thread state below the server: STATE_URL parsing, the history bounds, TTL expiry and sweeping, pruning of
superseded checkpoints, and the turn queue with its lease, on the real SQLite saver and in-process saver."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.state_url import StateUrlError, default_state_url, parse_state_url
from runtime.store.memory import StoredMessage, keep_within
from runtime.store.thread_leases import MemoryLeases, SqliteLeases
from runtime.store.thread_store import ThreadState, open_thread_state
from runtime.store.thread_turns import LEASE_SECONDS, ThreadBusyError, ThreadTurns

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _turn(i: int) -> list[StoredMessage]:
    return [StoredMessage("user", f"question {i}"), StoredMessage("assistant", f"answer {i}")]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sqlite_state(tmp_path: Path, clock: Clock) -> AsyncIterator[ThreadState]:
    state = await open_thread_state(
        parse_state_url(f"sqlite:///{tmp_path / 'state.db'}"), keep=4, ttl_seconds=HOUR, wait_seconds=1, clock=clock
    )
    try:
        yield state
    finally:
        await state.close()


# --- STATE_URL ---------------------------------------------------------------------------------------------------


def test_state_urls_name_a_sqlite_file_a_dynamodb_table_or_this_process() -> None:
    relative = parse_state_url("sqlite:///build/state/x.db")
    assert (relative.kind, relative.path) == ("sqlite", Path("build/state/x.db"))
    absolute = parse_state_url("sqlite:////var/lib/af/state.db")
    assert absolute.path == Path("/var/lib/af/state.db") and absolute.path.is_absolute()
    table = parse_state_url("dynamodb://af-prod-acme-retail-ThreadState-1A2B")
    assert (table.kind, table.table) == ("dynamodb", "af-prod-acme-retail-ThreadState-1A2B")
    assert parse_state_url("memory://").kind == "memory"
    assert default_state_url("dev", "default-org.default-domain.instance-dev") == (
        "sqlite:///build/state/dev/default-org.default-domain.instance-dev.db"
    )


@pytest.mark.parametrize(
    "url", ["", "redis://cache", "sqlite:///", "sqlite:///dir/", "sqlite:///x.db?mode=ro", "dynamodb://", "memory:"]
)
def test_anything_else_is_refused_naming_the_setting_and_the_allowed_forms(url: str) -> None:
    with pytest.raises(
        StateUrlError, match=r"--state=.*allowed: sqlite:///PATH \(relative\), sqlite:////ABSOLUTE/PATH"
    ):
        parse_state_url(url, source="--state")


# --- bounds ------------------------------------------------------------------------------------------------------


def test_history_keeps_the_newest_messages_within_the_count_and_the_byte_bound() -> None:
    messages = [StoredMessage("user", str(i) * 10) for i in range(10)]
    assert keep_within(messages, max_messages=3, max_bytes=10_000) == messages[-3:]
    assert keep_within(messages, max_messages=10, max_bytes=3 * (10 + 4)) == messages[-3:]
    assert keep_within(messages, max_messages=0, max_bytes=10_000) == []


async def test_a_thread_keeps_max_history_messages_and_one_checkpoint(
    sqlite_state: ThreadState, tmp_path: Path
) -> None:
    for i in range(25):
        async with sqlite_state.turns.turn("t1"):
            await sqlite_state.memory.append("t1", _turn(i))
    assert await sqlite_state.memory.read("t1", limit=100) == [*_turn(23), *_turn(24)]
    with sqlite3.connect(tmp_path / "state.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 't1'").fetchone()
    assert count == 1  # each append pruned the checkpoint it replaced


# --- TTL ---------------------------------------------------------------------------------------------------------


async def test_an_idle_thread_reads_as_empty_after_the_ttl_and_starts_afresh(clock: Clock) -> None:
    location = parse_state_url("memory://")
    state = await open_thread_state(location, keep=10, ttl_seconds=HOUR, wait_seconds=1, clock=clock)
    async with state.turns.turn("t1"):
        await state.memory.append("t1", _turn(1))
    clock.now += HOUR - 1
    assert await state.memory.read("t1", limit=10) == _turn(1)
    clock.now += 2
    assert await state.memory.read("t1", limit=10) == []
    async with state.turns.turn("t1"):
        await state.memory.append("t1", _turn(2))
    assert await state.memory.read("t1", limit=10) == _turn(2)


async def test_the_sweep_removes_idle_threads_and_keeps_active_ones(sqlite_state: ThreadState, clock: Clock) -> None:
    for thread in ("idle", "active"):
        async with sqlite_state.turns.turn(thread):
            await sqlite_state.memory.append(thread, _turn(1))
    clock.now += HOUR / 2
    async with sqlite_state.turns.turn("active"):
        await sqlite_state.memory.append("active", _turn(2))
    clock.now += HOUR / 2 + 1
    assert await sqlite_state.sweep() == 1
    assert [t["key"] for t in await sqlite_state.export()] == ["active"]
    assert await sqlite_state.memory.saver.aget_tuple({"configurable": {"thread_id": "idle", "checkpoint_ns": ""}}) is (
        None
    )


# --- the turn queue ----------------------------------------------------------------------------------------------


async def test_turns_on_one_thread_queue_in_arrival_order() -> None:
    turns = ThreadTurns(MemoryLeases(), ttl_seconds=HOUR, wait_seconds=5)
    order: list[str] = []

    async def turn(name: str) -> None:
        async with turns.turn("t1"):
            order.append(f"{name} start")
            await asyncio.sleep(0.02)
            order.append(f"{name} end")

    await asyncio.gather(turn("a"), turn("b"), turn("c"))
    assert order == ["a start", "a end", "b start", "b end", "c start", "c end"]


async def test_a_turn_that_waits_too_long_is_refused_as_thread_busy() -> None:
    turns = ThreadTurns(MemoryLeases(), ttl_seconds=HOUR, wait_seconds=0.05)
    async with turns.turn("t1"):
        with pytest.raises(ThreadBusyError, match=r"has had a turn in progress for over 0.05 s"):
            async with turns.turn("t1"):
                pass
        async with turns.turn("t2"):  # other threads are not held up
            pass


async def test_two_processes_cannot_hold_one_thread_and_an_abandoned_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    first, second = await SqliteLeases.open(path), await SqliteLeases.open(path)
    try:
        assert await first.acquire("t1", "task-a", now=100.0, until=100.0 + LEASE_SECONDS, expires_at=9e9)
        assert not await second.acquire("t1", "task-b", now=101.0, until=101.0 + LEASE_SECONDS, expires_at=9e9)
        assert await second.acquire("t2", "task-b", now=101.0, until=101.0 + LEASE_SECONDS, expires_at=9e9)
        # task-a died without releasing: once its lease has run out, task-b takes the thread over
        later = 100.0 + LEASE_SECONDS + 1
        assert await second.acquire("t1", "task-b", now=later, until=later + LEASE_SECONDS, expires_at=9e9)
        assert not await first.renew("t1", "task-a", until=later + LEASE_SECONDS)
        await second.release("t1", "task-b", now=later, expires_at=9e9)
        assert await first.acquire("t1", "task-a", now=later, until=later + LEASE_SECONDS, expires_at=9e9)
    finally:
        await first.close()
        await second.close()
