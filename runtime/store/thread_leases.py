"""One record per thread in the instance's store: who holds the thread's turn (a lease with an expiry) and when the
thread was last active. Taking a lease is a conditional write (SQLite: one upsert guarded by a WHERE; DynamoDB: a
ConditionExpression), so two tasks can never both hold one thread; an expired lease (a task that died mid-turn)
is taken over. LangGraph's checkpointers do not coordinate concurrent writers — two turns that read the same
checkpoint both write a child of it and the later one hides the earlier — which is why this small record exists.

Each taking of a lease increments the record's `fence` (a fencing token). A turn's writes carry its owner and fence
and the store refuses them unless the record still names both (runtime.thread_fencing), so a turn whose lease ran
out and was taken over writes nothing. The record also keeps whose thread it is (organization, subject and the
caller's own thread id; the thread id the store sees is an opaque hash of the three), so a data-subject request
can find, export and erase one caller's threads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY, DYNAMODB_TTL_ATTRIBUTE
from runtime.store.dynamodb_calls import all_items, condition_failed, in_executor, transaction_conflict

PINNED = "pinned:"
"""An owner string that starts with it holds a lease no take-over takes (busy policy `interrupt` waits for it
instead): the turn that runs a person's decided approval, whose approved call must not be stopped halfway and then
run again by the next `approve`."""
THREAD_ITEM_PREFIX = "AF_THREAD_"
THREAD_ITEM_SORT_KEY = "THREAD"
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite statement waits for another process's write lock before failing (busy timeout)."""


@dataclass(frozen=True)
class ThreadOwner:
    """Whose thread a store key is: the token's organization and subject and the caller's own thread id."""

    organization: str
    subject: str
    thread: str


@dataclass(frozen=True)
class ThreadRecord:
    thread_id: str
    last_active: float
    leased: bool
    owner: ThreadOwner | None = None
    """None for a thread written before the record kept its caller."""


@dataclass
class HeldLease:
    """What a running turn holds: the owner string and fence its writes carry, and why it lost them (if it did)."""

    thread_id: str
    owner: str
    fence: int
    lost: str | None = None
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a newer message interrupted the turn (busy policy `interrupt`): the turn stops, writing nothing."""
    recorded: bool = False
    """The turn's history write went through (an interruption after it lets the turn finish)."""

    @property
    def pinned(self) -> bool:
        """No newer message interrupts it (PINNED)."""
        return is_pinned(self.owner)


def is_pinned(owner: str | None) -> bool:
    return owner is not None and owner.startswith(PINNED)


class LeaseLostError(RuntimeError):
    """A write of a turn whose lease another task has taken (or whose record was erased): refused by the store."""


class Leases(Protocol):
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
        """The lease's new fence when taken, None while another task holds the thread. `take_over`: take it even
        from a live holder (busy policy `interrupt`), unless the holder's lease is PINNED: the new fence makes the
        store refuse the holder's writes."""

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool: ...

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        """Frees the thread and records `now` as its last activity; `expires_at` is when an idle thread goes."""

    async def records(self, *, now: float) -> list[ThreadRecord]: ...

    async def forget(self, thread_id: str) -> None:
        """Removes an idle thread's record (a leased one stays)."""

    async def erase(self, thread_id: str) -> None:
        """Removes the record whether or not a turn holds it: that turn's later writes are then refused."""

    async def find(self, organization: str, subject: str, *, now: float) -> list[ThreadRecord]:
        """The records of one caller's threads."""

    async def check(self, lease: HeldLease) -> None:
        """Raises LeaseLostError unless the record still names the lease's owner and fence."""

    async def close(self) -> None: ...


@dataclass
class _MemoryRecord:
    holder: str | None
    lease_until: float
    last_active: float
    fence: int
    caller: ThreadOwner | None


class MemoryLeases:
    def __init__(self) -> None:
        self._threads: dict[str, _MemoryRecord] = {}

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
        record = self._threads.get(thread_id) or _MemoryRecord(None, 0.0, now, 0, None)
        held = record.holder is not None and record.holder != owner and record.lease_until >= now
        if held and (not take_over or is_pinned(record.holder)):
            return None
        record.holder, record.lease_until, record.fence = owner, until, record.fence + 1
        record.caller = caller or record.caller
        self._threads[thread_id] = record
        return record.fence

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool:
        record = self._threads.get(thread_id)
        if record is None or record.holder != owner:
            return False
        record.lease_until = until
        return True

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        record = self._threads.get(thread_id)
        if record is not None and record.holder == owner:
            record.holder, record.lease_until, record.last_active = None, 0.0, now

    async def records(self, *, now: float) -> list[ThreadRecord]:
        return [
            ThreadRecord(thread_id, r.last_active, r.holder is not None and r.lease_until >= now, r.caller)
            for thread_id, r in sorted(self._threads.items())
        ]

    async def forget(self, thread_id: str) -> None:
        record = self._threads.get(thread_id)
        if record is not None and record.holder is None:
            del self._threads[thread_id]

    async def erase(self, thread_id: str) -> None:
        self._threads.pop(thread_id, None)

    async def find(self, organization: str, subject: str, *, now: float) -> list[ThreadRecord]:
        return [
            r
            for r in await self.records(now=now)
            if r.owner is not None and (r.owner.organization, r.owner.subject) == (organization, subject)
        ]

    async def check(self, lease: HeldLease) -> None:
        record = self._threads.get(lease.thread_id)
        if record is None or (record.holder, record.fence) != (lease.owner, lease.fence):
            raise LeaseLostError(LEASE_LOST)

    async def close(self) -> None:
        return None


LEASE_LOST = "af_lease_lost"
"""The store's word for a refused fenced write (the SQLite trigger's message)."""
SQLITE_COLUMNS = {"fence": "INTEGER NOT NULL DEFAULT 0", "org": "TEXT", "subject": "TEXT", "thread": "TEXT"}
"""Added to an af_threads table created before fences and callers were kept."""
SQLITE_FENCE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS af_fenced_checkpoints BEFORE INSERT ON checkpoints"
    " WHEN json_extract(CAST(NEW.metadata AS TEXT), '$.af_fence') IS NOT NULL AND NOT EXISTS ("
    " SELECT 1 FROM af_threads WHERE af_threads.thread_id = NEW.thread_id"
    " AND af_threads.owner = json_extract(CAST(NEW.metadata AS TEXT), '$.af_owner')"
    " AND af_threads.fence = json_extract(CAST(NEW.metadata AS TEXT), '$.af_fence'))"
    " BEGIN SELECT RAISE(ABORT, 'af_lease_lost'); END"
)
"""The conditional write, inside the store: a checkpoint that carries a fence is inserted only while the thread's
record names that owner and fence, in the same statement (so no other task's lease can slip in between)."""


class SqliteLeases:
    """Its own connection in autocommit mode: each statement is one atomic transaction, independent of the
    saver's connection to the same file."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: Path) -> SqliteLeases:
        conn = await aiosqlite.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        await conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit survives a process crash
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS af_threads ("
            " thread_id TEXT PRIMARY KEY, owner TEXT, lease_until REAL NOT NULL DEFAULT 0,"
            " last_active REAL NOT NULL DEFAULT 0)"
        )
        async with conn.execute("PRAGMA table_info(af_threads)") as cursor:
            present = {str(row[1]) for row in await cursor.fetchall()}
        for column, declaration in SQLITE_COLUMNS.items():
            if column not in present:
                await conn.execute(f"ALTER TABLE af_threads ADD COLUMN {column} {declaration}")
        await conn.execute("CREATE INDEX IF NOT EXISTS af_threads_by_caller ON af_threads (org, subject)")
        return cls(conn)

    async def fence_checkpoints(self) -> None:
        """Installs the fenced-write trigger; the saver's `checkpoints` table must exist (saver.setup())."""
        await self._conn.execute(SQLITE_FENCE_TRIGGER)

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
        names = (caller.organization, caller.subject, caller.thread) if caller else (None, None, None)
        async with self._conn.execute(
            "INSERT INTO af_threads (thread_id, owner, lease_until, last_active, fence, org, subject, thread)"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until,"
            " fence = af_threads.fence + 1, org = coalesce(excluded.org, af_threads.org),"
            " subject = coalesce(excluded.subject, af_threads.subject),"
            " thread = coalesce(excluded.thread, af_threads.thread)"
            " WHERE af_threads.owner IS NULL OR af_threads.owner = excluded.owner OR af_threads.lease_until < ?"
            " OR (? AND substr(af_threads.owner, 1, ?) != ?)"
            " RETURNING fence",
            (thread_id, owner, until, now, *names, now, take_over, len(PINNED), PINNED),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else None

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool:
        cursor = await self._conn.execute(
            "UPDATE af_threads SET lease_until = ? WHERE thread_id = ? AND owner = ?", (until, thread_id, owner)
        )
        return cursor.rowcount == 1

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        await self._conn.execute(
            "UPDATE af_threads SET owner = NULL, lease_until = 0, last_active = ? WHERE thread_id = ? AND owner = ?",
            (now, thread_id, owner),
        )

    async def records(self, *, now: float) -> list[ThreadRecord]:
        return await self._select(now, None, None)

    async def find(self, organization: str, subject: str, *, now: float) -> list[ThreadRecord]:
        return await self._select(now, organization, subject)

    async def _select(self, now: float, organization: str | None, subject: str | None) -> list[ThreadRecord]:
        """All records, or one caller's (both names given)."""
        async with self._conn.execute(
            "SELECT thread_id, last_active, owner IS NOT NULL AND lease_until >= ?, org, subject, thread"
            " FROM af_threads WHERE (? IS NULL OR (org = ? AND subject = ?)) ORDER BY thread_id",
            (now, organization, organization, subject),
        ) as cursor:
            return [
                ThreadRecord(
                    str(row[0]),
                    float(row[1]),
                    bool(row[2]),
                    ThreadOwner(str(row[3]), str(row[4]), str(row[5])) if row[3] is not None else None,
                )
                for row in await cursor.fetchall()
            ]

    async def forget(self, thread_id: str) -> None:
        await self._conn.execute("DELETE FROM af_threads WHERE thread_id = ? AND owner IS NULL", (thread_id,))

    async def erase(self, thread_id: str) -> None:
        await self._conn.execute("DELETE FROM af_threads WHERE thread_id = ?", (thread_id,))

    async def check(self, lease: HeldLease) -> None:
        async with self._conn.execute(
            "SELECT 1 FROM af_threads WHERE thread_id = ? AND owner = ? AND fence = ?",
            (lease.thread_id, lease.owner, lease.fence),
        ) as cursor:
            if await cursor.fetchone() is None:
                raise LeaseLostError(LEASE_LOST)

    async def close(self) -> None:
        await self._conn.close()


class DynamoDBLeases:
    """One item per thread in the instance's table, next to the saver's items; boto3 calls run in the default
    executor, as the saver's own do. The item carries the table's TTL attribute, so DynamoDB removes an idle
    thread's record with its checkpoints."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    @staticmethod
    def key(thread_id: str) -> dict[str, dict[str, str]]:
        return {
            DYNAMODB_PARTITION_KEY: {"S": THREAD_ITEM_PREFIX + thread_id},
            DYNAMODB_SORT_KEY: {"S": THREAD_ITEM_SORT_KEY},
        }

    def fence_condition(self, lease: HeldLease) -> dict[str, Any]:
        """A TransactWriteItems ConditionCheck: the thread's item still names the lease's owner and fence."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": self.key(lease.thread_id),
                "ConditionExpression": "#o = :o AND fence = :f",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":o": {"S": lease.owner}, ":f": {"N": str(lease.fence)}},
            }
        }

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
        names = ""
        values: dict[str, dict[str, str]] = {
            ":e": {"N": str(int(expires_at))},
            ":t": {"S": thread_id},
            ":o": {"S": owner},
            ":u": {"N": repr(until)},
            ":n": {"N": repr(now)},
            ":one": {"N": "1"},
        }
        if caller is not None:
            names = ", org = :org, subject = :sub, caller_thread = :ct"
            values |= {":org": {"S": caller.organization}, ":sub": {"S": caller.subject}, ":ct": {"S": caller.thread}}
        condition = "attribute_not_exists(#o) OR #o = :o OR lease_until < :n"
        if take_over:
            condition += " OR NOT begins_with(#o, :pinned)"
            values[":pinned"] = {"S": PINNED}
        try:
            answer = await in_executor(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(thread_id),
                UpdateExpression=(
                    "SET thread_id = :t, #o = :o, lease_until = :u, last_active = if_not_exists(last_active, :n),"
                    f" #ttl = :e{names} ADD fence :one"
                ),
                ExpressionAttributeNames={"#o": "owner", "#ttl": DYNAMODB_TTL_ATTRIBUTE},
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ConditionExpression=condition,
            )
        except Exception as exc:
            if condition_failed(exc) or transaction_conflict(exc):
                return None
            raise
        return int(answer["Attributes"]["fence"]["N"])

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool:
        try:
            await in_executor(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(thread_id),
                UpdateExpression="SET lease_until = :u",
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": owner}, ":u": {"N": repr(until)}},
            )
        except Exception as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        try:
            await in_executor(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(thread_id),
                UpdateExpression="REMOVE #o SET lease_until = :z, last_active = :n, #ttl = :e",
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner", "#ttl": DYNAMODB_TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":o": {"S": owner},
                    ":z": {"N": "0"},
                    ":n": {"N": repr(now)},
                    ":e": {"N": str(int(expires_at))},
                },
            )
        except Exception as exc:
            if not condition_failed(exc):  # taken over after our lease expired: nothing of ours to free
                raise

    async def records(self, *, now: float) -> list[ThreadRecord]:
        return await self._scan("begins_with(#pk, :p)", {}, now=now)

    async def find(self, organization: str, subject: str, *, now: float) -> list[ThreadRecord]:
        """A filtered scan of the table's thread items: a data-subject request is rare, and a scan needs no index
        the instance stack would have to add."""
        values = {":org": {"S": organization}, ":sub": {"S": subject}}
        return await self._scan("begins_with(#pk, :p) AND org = :org AND subject = :sub", values, now=now)

    async def _scan(self, condition: str, values: dict[str, Any], *, now: float) -> list[ThreadRecord]:
        found: list[ThreadRecord] = []
        items = await all_items(
            self._client.scan,
            TableName=self._table,
            FilterExpression=condition,
            ExpressionAttributeNames={"#pk": DYNAMODB_PARTITION_KEY},
            ExpressionAttributeValues={":p": {"S": THREAD_ITEM_PREFIX}, **values},
        )
        for item in items:
            lease_until = float(item.get("lease_until", {}).get("N", "0"))
            names = [item.get(k, {}).get("S") for k in ("org", "subject", "caller_thread")]
            found.append(
                ThreadRecord(
                    thread_id=item["thread_id"]["S"],
                    last_active=float(item.get("last_active", {}).get("N", "0")),
                    leased="owner" in item and lease_until >= now,
                    owner=ThreadOwner(*names) if all(n is not None for n in names) else None,
                )
            )
        return sorted(found, key=lambda r: r.thread_id)

    async def forget(self, thread_id: str) -> None:
        try:
            await in_executor(
                self._client.delete_item,
                TableName=self._table,
                Key=self.key(thread_id),
                ConditionExpression="attribute_not_exists(#o)",
                ExpressionAttributeNames={"#o": "owner"},
            )
        except Exception as exc:
            if not condition_failed(exc):  # a turn took the thread meanwhile: it stays
                raise

    async def erase(self, thread_id: str) -> None:
        await in_executor(self._client.delete_item, TableName=self._table, Key=self.key(thread_id))

    async def check(self, lease: HeldLease) -> None:
        answer = await in_executor(
            self._client.get_item, TableName=self._table, Key=self.key(lease.thread_id), ConsistentRead=True
        )
        item = answer.get("Item", {})
        if (item.get("owner", {}).get("S"), item.get("fence", {}).get("N")) != (lease.owner, str(lease.fence)):
            raise LeaseLostError(LEASE_LOST)

    async def close(self) -> None:
        return None
