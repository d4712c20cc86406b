"""Turns are fenced: a turn's writes carry its lease (owner and fence), and the store itself refuses them once
another task has taken the thread. The lost-lease interleaving of issue 21, on a real SQLite file shared by two
"tasks" and on a DynamoDB table of moto's server: turn A's lease runs out (its renewals were throttled), turn B
takes the thread and writes, A's later write is refused and A's turn fails with thread_busy; B's history is intact.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from runtime.auth import anonymous_caller, thread_key
from runtime.bundle_source import load_bundle
from runtime.config import ExpectedIdentity, config_from_env
from runtime.instance import Instance
from runtime.state_url import parse_state_url
from runtime.store.memory import StoredMessage
from runtime.store.thread_leases import LeaseLostError
from runtime.store.thread_store import ThreadState, open_thread_state
from runtime.store.thread_turns import LEASE_SECONDS, TurnLostError
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.runtime.runtime_harness import BuiltBundle
from tests.runtime.state_table import create_state_table

HOUR = 3600.0


class Clock:
    """A task's clock: task B's runs LEASE_SECONDS ahead once A's lease is meant to have run out."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _turn(who: str) -> list[StoredMessage]:
    return [StoredMessage("user", f"{who} asks"), StoredMessage("assistant", f"{who} is answered")]


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


def _table(moto: LocalAws, name: str) -> str:
    return create_state_table(moto.client("dynamodb"), name)


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.slow)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'threads.db'}"
    moto: LocalAws = request.getfixturevalue("moto")
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    return _table(moto, f"af-fence-{tmp_path.name[-20:].strip('_')}")


@asynccontextmanager
async def task(url: str, clock: Clock) -> AsyncIterator[ThreadState]:
    """One task of the instance: its own connection to the store and its own clock."""
    state = await open_thread_state(parse_state_url(url), keep=20, ttl_seconds=HOUR, wait_seconds=2, clock=clock)
    try:
        yield state
    finally:
        await state.close()


async def test_a_turn_that_lost_its_lease_writes_nothing_and_fails_while_the_new_holder_keeps_its_history(
    store_url: str,
) -> None:
    clock_a, clock_b = Clock(), Clock()
    async with task(store_url, clock_a) as a, task(store_url, clock_b) as b:
        async with a.turns.turn("t1"):
            await a.memory.append("t1", _turn("earlier"))
        with pytest.raises(TurnLostError, match=r"lost its turn while it ran \(the store refused its write"):
            async with a.turns.turn("t1") as lease_a:
                assert await a.memory.read("t1", 20) == _turn("earlier")
                # A's renewals are throttled and its lease runs out: B, later by the lease's length, takes over
                clock_b.now += LEASE_SECONDS + 1
                async with b.turns.turn("t1") as lease_b:
                    assert lease_b.fence > lease_a.fence
                    with pytest.raises(LeaseLostError, match="another task holds the thread's lease"):
                        await a.memory.append("t1", _turn("A"))
                    await b.memory.append("t1", _turn("B"))
                with pytest.raises(LeaseLostError):  # and after B has finished: still not A's thread
                    await a.memory.append("t1", _turn("A again"))
        assert await b.memory.read("t1", 20) == [*_turn("earlier"), *_turn("B")]
        assert await a.memory.read("t1", 20) == [*_turn("earlier"), *_turn("B")]
        async with a.turns.turn("t1"):  # the thread is free again and A's next turn writes normally
            await a.memory.append("t1", _turn("A's next turn"))
        assert await b.memory.read("t1", 20) == [*_turn("earlier"), *_turn("B"), *_turn("A's next turn")]


async def test_a_refused_renewal_marks_the_turn_lost_even_before_it_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    clock_a, clock_b = Clock(), Clock()
    async with task(url, clock_a) as a, task(url, clock_b) as b:
        a.turns._renew_every_seconds = 0.05
        with pytest.raises(TurnLostError, match="its lease could not be renewed and was taken over"):
            async with a.turns.turn("t1"):
                clock_b.now += LEASE_SECONDS + 1
                async with b.turns.turn("t1"):
                    await asyncio.sleep(0.3)  # A's heartbeat finds the thread taken
        assert await b.memory.read("t1", 20) == []


async def test_a_write_outside_any_turn_is_refused(tmp_path: Path) -> None:
    async with task(f"sqlite:///{tmp_path / 'threads.db'}", Clock()) as state:
        with pytest.raises(LeaseLostError, match="no running turn of this task holds thread t1"):
            await state.memory.append("t1", _turn("nobody"))
        assert await state.memory.read("t1", 20) == []


async def test_an_invoke_whose_turn_was_taken_over_answers_thread_busy_naming_the_callers_thread(
    example_bundles: list[BuiltBundle], store_url: str
) -> None:
    built = next(b for b in example_bundles if b.instance.key.selector == "default-org/default-domain/dev")
    url = store_url
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config_from_env({"STATE_URL": url, "OFFLINE_MODEL_LATENCY_MS": "1500"}, bundle=str(built.path)),
    )
    key = thread_key(anonymous_caller(instance.organization), "customer-7")
    clock_b = Clock()
    clock_b.now = 4_000_000_000.0  # far past the lease A takes with the real clock
    await instance.start()
    try:
        async with task(url, clock_b) as b:

            async def take_over() -> None:
                await asyncio.sleep(0.3)  # A's turn holds the thread and waits for its model
                async with b.turns.turn(key):
                    await b.memory.append(key, _turn("B"))

            result, _ = await asyncio.gather(instance.invoke("plan the launch", "customer-7"), take_over())
            history = await b.memory.read(key, 20)
    finally:
        await instance.stop()
    assert not result.ok and result.error is not None
    assert result.error.code == "thread_busy"
    assert result.error.message.startswith("thread 'customer-7' lost its turn while it ran"), result.error.message
    assert history == _turn("B")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_state_file_and_its_journal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dev" / "threads.db"
    previous = os.umask(0o022)  # the usual umask: files readable by everyone unless created otherwise
    try:
        async with task(f"sqlite:///{path}", Clock()) as state:
            async with state.turns.turn("t1"):
                await state.memory.append("t1", _turn("someone"))
            files = [path, path.with_name("threads.db-wal"), path.with_name("threads.db-shm")]
            modes = {f.name: _mode(f) for f in files}
    finally:
        os.umask(previous)
    assert modes == {f.name: 0o600 for f in files}
    assert (_mode(path.parent.parent), _mode(path.parent)) == (0o700, 0o700)  # the directories it created


async def test_an_existing_state_file_readable_by_others_is_narrowed_to_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "threads.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    async with task(f"sqlite:///{path}", Clock()):
        pass
    assert _mode(path) == 0o600
