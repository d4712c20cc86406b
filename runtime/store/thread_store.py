"""Opens the store STATE_URL names: a kept LangGraph checkpointer for the threads' history (runtime.store.memory) and
the per-thread records that serialise turns (runtime.store.thread_leases, runtime.store.thread_turns), and the
instance's usage ledger (runtime.store.usage_ledger) in the same store.

    sqlite     AsyncSqliteSaver (langgraph-checkpoint-sqlite) on the file, WAL journal and a busy timeout, so
               several processes on one file share threads safely; idle threads are swept.
    dynamodb   DynamoDBSaver (langgraph-checkpoint-aws) on the instance's table; region from AWS_REGION /
               AWS_DEFAULT_REGION, AWS_ENDPOINT_URL honoured by boto3; idle threads go by DynamoDB's TTL.
    memory     InMemorySaver: this process only, for tests.

Every file the store creates (the SQLite database and its -wal and -shm files) is owner-only (0600): it holds
the tenants' conversations.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY
from runtime.config import DEFAULT_USAGE_RETENTION_DAYS
from runtime.state_url import StateLocation
from runtime.store.approval_store import Approvals, MemoryApprovals, SqliteApprovals
from runtime.store.memory import ThreadMemory
from runtime.store.thread_leases import SQLITE_BUSY_TIMEOUT_S, Leases, MemoryLeases, SqliteLeases, ThreadRecord
from runtime.store.thread_turns import ThreadTurns
from runtime.store.usage_ledger import MemoryUsageLedger, SqliteUsageLedger, UsageLedger

log = logging.getLogger(__name__)


class StateStoreError(RuntimeError):
    """The store STATE_URL names cannot be used; the message names the setting, the store and what to do."""


@dataclass
class ThreadState:
    location: StateLocation
    where: str
    """For people: the SQLite file, the DynamoDB table and region, or 'this process'."""
    memory: ThreadMemory
    turns: ThreadTurns
    ttl_seconds: float
    usage: UsageLedger
    """Each turn's usage, per hour, in the same store (runtime.store.usage_ledger)."""
    approvals: Approvals
    """The approvals of paused turns (runtime.store.approval_store), kept with their threads."""
    clock: Callable[[], float] = time.time
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _swept_until: float | None = None
    """The `now` of this process's last finished sweep: approvals that had expired by then had their checkpoints
    removed. An approval is kept long before it can expire (its timeout is at least a minute, the manifest's
    approval_timeout_seconds), so none that a sweep did not see can have expired before that sweep's `now`."""

    async def sweep(self) -> int:
        """Removes threads idle for longer than the TTL (their checkpoints, record and approvals), the checkpoints of
        turns paused for an approval that expired, and usage hours past their retention. DynamoDB also expires them by
        itself (TTL attribute); SQLite and memory rely on this. Returns how many threads went."""
        now = self.clock()
        await self.usage.sweep(now)
        removed = 0
        for record in await self.turns.leases.records(now=now):
            if not record.leased and now - record.last_active > self.ttl_seconds:
                await self.memory.delete(record.thread_id)
                await self.turns.leases.forget(record.thread_id)
                await self._forget_approvals(record.thread_id)
                removed += 1
        for approval in await self.approvals.expired(now=now, after=self._swept_until):  # it will never resume
            await self.memory.saver.adelete_thread(approval.run_id)
        self._swept_until = now
        return removed

    async def export(self, records: list[ThreadRecord] | None = None) -> list[dict[str, Any]]:
        """Every live thread (or those of `records`) with its kept history: what an operator saves before
        offboarding an instance. `key` is the store's opaque key; organization, subject and thread_id say whose
        thread it is (null for a thread written before the store kept its caller)."""
        threads = []
        for record in records if records is not None else await self.turns.leases.records(now=self.clock()):
            messages = await self.memory.read(record.thread_id, limit=1_000_000)
            approvals = await self.approvals.of_thread(record.thread_id)
            if messages or approvals:
                owner = record.owner
                threads.append(
                    {
                        "key": record.thread_id,
                        "organization": owner.organization if owner else None,
                        "subject": owner.subject if owner else None,
                        "thread_id": owner.thread if owner else None,
                        "last_active": record.last_active,
                        "messages": [{"role": m.role, "content": m.content} for m in messages],
                        "approvals": [a.audit() for a in approvals],
                    }
                )
        return threads

    async def erase(self, key: str) -> None:
        """Everything of one thread: its record first (so a turn still running on it can write nothing more: its
        fence no longer matches), then its checkpoints and their writes, its approvals and their paused turns."""
        await self.turns.leases.erase(key)
        await self.memory.delete(key)
        await self._forget_approvals(key)

    async def _forget_approvals(self, key: str) -> None:
        """A thread's approvals and the checkpoints of its paused turns (they hold the turn's messages)."""
        approvals = await self.approvals.of_thread(key)
        for approval in approvals:
            await self.memory.saver.adelete_thread(approval.run_id)
        await self.approvals.erase_thread(key, approvals)

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()
        self._closers.clear()


async def open_thread_state(
    location: StateLocation,
    *,
    keep: int,
    ttl_seconds: float,
    wait_seconds: float,
    region: str | None = None,
    clock: Callable[[], float] = time.time,
    usage_retention_days: float = DEFAULT_USAGE_RETENTION_DAYS,
) -> ThreadState:
    def build(saver: Any, leases: Leases, where: str, usage: UsageLedger, approvals: Approvals) -> ThreadState:
        memory = ThreadMemory(saver, keep=keep, ttl_seconds=ttl_seconds, clock=clock)
        turns = ThreadTurns(leases, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds, clock=clock)
        memory.turn_of = turns.held
        return ThreadState(location, where, memory, turns, ttl_seconds, usage, approvals, clock)

    if location.kind == "memory":
        from runtime.store.thread_savers import PrunableMemorySaver

        leases = MemoryLeases()
        usage = MemoryUsageLedger(usage_retention_days)
        return build(PrunableMemorySaver(leases), leases, "this process only (memory://)", usage, MemoryApprovals())
    if location.kind == "sqlite":
        assert location.path is not None
        return await _open_sqlite(location, location.path, usage_retention_days, build)
    assert location.table is not None
    return await _open_dynamodb(location, location.table, region, ttl_seconds, usage_retention_days, build)


async def _open_sqlite(
    location: StateLocation, path: Path, usage_retention_days: float, build: Callable[..., ThreadState]
) -> ThreadState:
    import aiosqlite

    from runtime.store.thread_savers import PrunableSqliteSaver

    try:
        owner_only(path)
        conn = await aiosqlite.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    except (OSError, aiosqlite.Error) as exc:
        raise StateStoreError(f"STATE_URL={location.url}: cannot open the SQLite file {path} ({exc})") from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        await conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit survives a process crash
        saver = PrunableSqliteSaver(conn)
        await saver.setup()  # creates the saver's tables and switches the file to WAL
        leases = await SqliteLeases.open(path)
        await leases.fence_checkpoints()
        usage = await SqliteUsageLedger.open(
            path, retention_days=usage_retention_days, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_S
        )
        approvals = await SqliteApprovals.open(path)
    except aiosqlite.Error as exc:
        await conn.close()
        raise StateStoreError(f"STATE_URL={location.url}: {path} is not a usable SQLite file ({exc})") from exc
    state: ThreadState = build(saver, leases, str(path.resolve()), usage, approvals)
    state._closers += [conn.close, leases.close, usage.close, approvals.close]
    return state


async def _open_dynamodb(
    location: StateLocation,
    table: str,
    region: str | None,
    ttl_seconds: float,
    usage_retention_days: float,
    build: Callable[..., ThreadState],
) -> ThreadState:
    import asyncio

    from botocore.exceptions import BotoCoreError, ClientError

    from runtime.store.approval_store import DynamoDBApprovals
    from runtime.store.thread_leases import DynamoDBLeases
    from runtime.store.thread_saver_dynamodb import PrunableDynamoDBSaver
    from runtime.store.usage_ledger import DynamoDBUsageLedger

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise StateStoreError(f"STATE_URL={location.url}: no AWS region; set AWS_REGION (ECS sets it for a task)")
    # boto3's default session: the task role's credentials, AWS_ENDPOINT_URL when set (moto in tests)
    saver = PrunableDynamoDBSaver(table_name=table, region_name=region, ttl_seconds=int(ttl_seconds))
    client = saver.client
    try:
        described = await asyncio.get_running_loop().run_in_executor(
            None, lambda: client.describe_table(TableName=table)
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = "the instance stack creates it" if code == "ResourceNotFoundException" else "check the task's role"
        raise StateStoreError(
            f"STATE_URL={location.url}: cannot use DynamoDB table {table!r} in {region} ({code}); {hint}"
        ) from exc
    except BotoCoreError as exc:
        raise StateStoreError(f"STATE_URL={location.url}: cannot reach DynamoDB in {region} ({exc})") from exc
    keys = {k["AttributeName"]: k["KeyType"] for k in described["Table"]["KeySchema"]}
    if keys != {DYNAMODB_PARTITION_KEY: "HASH", DYNAMODB_SORT_KEY: "RANGE"}:
        raise StateStoreError(
            f"STATE_URL={location.url}: table {table!r} has keys {keys}; the state table needs PK (HASH) and SK "
            "(RANGE), both strings (constructs/af_instance_state.py)"
        )
    usage = DynamoDBUsageLedger(client, table, usage_retention_days)
    approvals = DynamoDBApprovals(client, table, keep_seconds=ttl_seconds)
    return build(saver, DynamoDBLeases(client, table), f"DynamoDB table {table} in {region}", usage, approvals)


def owner_only(path: Path) -> None:
    """Creates the database file readable and writable by its owner only (and the directories it creates for it
    0700), or narrows an existing one (and its -wal and -shm files) to that. SQLite gives the -wal and -shm files
    it creates the database file's mode."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if each.exists() and each.stat().st_mode & 0o077:
            each.chmod(0o600)


def writable_default(path: Path) -> Path:
    """The default file under the working directory, or under the system temp directory where the working
    directory is read-only (the runtime image's /app)."""
    directory = path.parent
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return path
    return Path(tempfile.gettempdir()) / "agent-foundry" / path
