"""The approval records of the instance's store (runtime.store.approval_store) on each backend: in-process, a SQLite
file, and a DynamoDB table of moto's server (slow)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.state_url import parse_state_url
from runtime.store.approval_store import (
    ADDED_COLUMNS,
    APPROVAL_ITEM_PREFIX,
    COLUMNS,
    SQLITE_TABLE,
    ApprovalRecord,
    SqliteApprovals,
    _row,
)
from runtime.store.thread_saver_dynamodb import PrunableDynamoDBSaver
from runtime.store.thread_store import ThreadState, open_thread_state
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.runtime.state_table import create_state_table

HOUR = 3600.0


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


def _dynamodb_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    moto: LocalAws = request.getfixturevalue("moto")
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    return create_state_table(moto.client("dynamodb"), f"af-approval-store-{tmp_path.name[-20:].strip('_')}")


@pytest.fixture(params=["memory", "sqlite", pytest.param("dynamodb", marks=pytest.mark.slow)])
async def state(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ThreadState]:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'threads.db'}"}.get(request.param)
    opened = await open_thread_state(
        parse_state_url(url or _dynamodb_url(request, tmp_path, monkeypatch)),
        keep=20,
        ttl_seconds=720 * HOUR,
        wait_seconds=5,
        region="us-east-1",
    )
    try:
        yield opened
    finally:
        await opened.close()


def _approval(approval_id: str, *, thread_key: str = "key-1", expires_at: float = 1_900_000_000.0) -> ApprovalRecord:
    return ApprovalRecord(
        id=approval_id,
        organization="default-org",
        subject="alice",
        thread="t-1",
        thread_key=thread_key,
        run_id=f"run-{approval_id}",
        interrupt_id="interrupt-1",
        agent_id="ticket-agent",
        tool="ticketing.create_ticket",
        arguments={"summary": "the outage"},
        trace_id="0" * 32,
        created_at=expires_at - HOUR,
        expires_at=expires_at,
    )


async def test_expired_after_a_time_lists_only_the_approvals_that_expired_since_then(state: ThreadState) -> None:
    """What lets a sweep skip the approvals whose paused turns an earlier round already removed."""
    for approval_id, expires_at in (("early", 100.0), ("late", 200.0), ("open", 300.0)):
        await state.approvals.add(_approval(approval_id, expires_at=expires_at))
    assert [r.id for r in await state.approvals.expired(now=250.0)] == ["early", "late"]
    assert [r.id for r in await state.approvals.expired(now=250.0, after=100.0)] == ["late"]
    assert await state.approvals.expired(now=250.0, after=250.0) == []
    assert [r.id for r in await state.approvals.expired(now=300.0, after=250.0)] == ["open"]


async def test_erasing_a_thread_removes_its_approvals_and_no_other_threads(state: ThreadState) -> None:
    for approval_id, key in (("one", "key-1"), ("two", "key-1"), ("other", "key-2")):
        await state.approvals.add(_approval(approval_id, thread_key=key))
    await state.erase("key-1")
    assert await state.approvals.of_thread("key-1") == []
    assert [r.id for r in await state.approvals.of_thread("key-2")] == ["other"]
    assert await state.approvals.get("one") is None and await state.approvals.get("other") is not None


@pytest.mark.slow
async def test_erasing_a_thread_on_dynamodb_scans_for_its_approvals_once(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread's approvals are found by a scan of the whole table; the erase deletes what it found, by key,
    instead of scanning again. Counted on the real client's calls (botocore's event hook), the approval scans
    only: the leases and the checkpointer make calls of their own."""
    url = _dynamodb_url(request, tmp_path, monkeypatch)
    state = await open_thread_state(
        parse_state_url(url), keep=20, ttl_seconds=720 * HOUR, wait_seconds=5, region="us-east-1"
    )
    scans: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        if params.get("ExpressionAttributeValues", {}).get(":prefix") == {"S": APPROVAL_ITEM_PREFIX}:
            scans.append(params)

    try:
        for approval_id in ("one", "two"):
            await state.approvals.add(_approval(approval_id))
        saver = state.memory.saver
        assert isinstance(saver, PrunableDynamoDBSaver)  # its client is the one every store of the table uses
        saver.client.meta.events.register("provide-client-params.dynamodb.Scan", seen)
        await state.erase("key-1")
        assert len(scans) == 1
        assert await state.approvals.of_thread("key-1") == []
    finally:
        await state.close()


async def test_an_approved_call_is_marked_as_started_once(state: ThreadState) -> None:
    """The mark a worker sets right before an approved call: of two runs of the turn, only the first may call."""
    await state.approvals.add(_approval("yes"))
    assert await state.approvals.decide(
        "yes", "approved", by="bob", comment=None, now=1000.0, runner="task-a", until=1060.0
    )
    assert await state.approvals.start_call("yes", by="task-a", now=1001.0)
    assert not await state.approvals.start_call("yes", by="task-b", now=1070.0)
    record = await state.approvals.get("yes")
    assert record is not None and (record.call_started_at, record.call_started_by) == (1001.0, "task-a")
    assert record.status == "approved" and record.runner == "task-a"  # the mark changes nothing else


async def test_a_pending_rejected_or_unknown_approval_is_never_marked(state: ThreadState) -> None:
    await state.approvals.add(_approval("waiting"))
    await state.approvals.add(_approval("no"))
    assert await state.approvals.decide("no", "rejected", by="bob", comment=None, now=1000.0, runner="a", until=1060)
    for approval_id in ("waiting", "no", "apr-unknown"):
        assert not await state.approvals.start_call(approval_id, by="task-a", now=1001.0)
    for approval_id in ("waiting", "no"):
        record = await state.approvals.get(approval_id)
        assert record is not None and (record.call_started_at, record.call_started_by) == (None, None)


async def test_a_sqlite_file_of_an_older_runtime_gains_the_call_mark_columns(tmp_path: Path) -> None:
    """An approvals table made before the mark existed keeps its approvals and can mark them."""
    path = tmp_path / "old.db"
    old_table = SQLITE_TABLE.replace(", call_started_at REAL, call_started_by TEXT)", ")")
    assert old_table != SQLITE_TABLE
    old_columns = [c for c in COLUMNS if c not in ADDED_COLUMNS]
    record = _approval("old")
    values = [v for c, v in zip(COLUMNS, _row(record), strict=True) if c in old_columns]
    marks = ", ".join("?" for _ in old_columns)
    insert = f"INSERT INTO af_approvals ({', '.join(old_columns)}) VALUES ({marks})"  # noqa: S608 - fixed names
    with sqlite3.connect(path) as conn:
        conn.execute(old_table)
        conn.execute(insert, values)
    approvals = await SqliteApprovals.open(path)
    try:
        assert await approvals.get("old") == record
        assert await approvals.decide("old", "approved", by="bob", comment=None, now=1.0, runner="a", until=60.0)
        assert await approvals.start_call("old", by="a", now=2.0)
        kept = await approvals.get("old")
        assert kept is not None and kept.call_started_by == "a"
    finally:
        await approvals.close()
