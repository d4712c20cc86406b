"""One record per thread in the instance's store: who holds the thread's turn (a lease with an expiry) and when the
thread was last active. Taking a lease is a conditional write (SQLite: one upsert guarded by a WHERE; DynamoDB: a
ConditionExpression), so two tasks can never both hold one thread; an expired lease (a task that died mid-turn)
is taken over. LangGraph's checkpointers do not coordinate concurrent writers — two turns that read the same
checkpoint both write a child of it and the later one hides the earlier — which is why this small record exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY, DYNAMODB_TTL_ATTRIBUTE

THREAD_ITEM_PREFIX = "AF_THREAD_"
THREAD_ITEM_SORT_KEY = "THREAD"
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite statement waits for another process's write lock before failing (busy timeout)."""


@dataclass(frozen=True)
class ThreadRecord:
    thread_id: str
    last_active: float
    leased: bool


class Leases(Protocol):
    async def acquire(self, thread_id: str, owner: str, *, now: float, until: float, expires_at: float) -> bool: ...

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool: ...

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        """Frees the thread and records `now` as its last activity; `expires_at` is when an idle thread goes."""

    async def records(self, *, now: float) -> list[ThreadRecord]: ...

    async def forget(self, thread_id: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLeases:
    def __init__(self) -> None:
        self._threads: dict[str, tuple[str | None, float, float]] = {}

    async def acquire(self, thread_id: str, owner: str, *, now: float, until: float, expires_at: float) -> bool:
        holder, lease_until, last_active = self._threads.get(thread_id, (None, 0.0, now))
        if holder is not None and holder != owner and lease_until >= now:
            return False
        self._threads[thread_id] = (owner, until, last_active)
        return True

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool:
        holder, _, last_active = self._threads.get(thread_id, (None, 0.0, 0.0))
        if holder != owner:
            return False
        self._threads[thread_id] = (owner, until, last_active)
        return True

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        if self._threads.get(thread_id, (None,))[0] == owner:
            self._threads[thread_id] = (None, 0.0, now)

    async def records(self, *, now: float) -> list[ThreadRecord]:
        return [
            ThreadRecord(thread_id, last_active, holder is not None and lease_until >= now)
            for thread_id, (holder, lease_until, last_active) in sorted(self._threads.items())
        ]

    async def forget(self, thread_id: str) -> None:
        self._threads.pop(thread_id, None)

    async def close(self) -> None:
        return None


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
        return cls(conn)

    async def acquire(self, thread_id: str, owner: str, *, now: float, until: float, expires_at: float) -> bool:
        cursor = await self._conn.execute(
            "INSERT INTO af_threads (thread_id, owner, lease_until, last_active) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
            " WHERE af_threads.owner IS NULL OR af_threads.owner = excluded.owner OR af_threads.lease_until < ?",
            (thread_id, owner, until, now, now),
        )
        return cursor.rowcount == 1

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
        async with self._conn.execute(
            "SELECT thread_id, last_active, owner IS NOT NULL AND lease_until >= ? FROM af_threads ORDER BY thread_id",
            (now,),
        ) as cursor:
            return [ThreadRecord(str(row[0]), float(row[1]), bool(row[2])) for row in await cursor.fetchall()]

    async def forget(self, thread_id: str) -> None:
        await self._conn.execute("DELETE FROM af_threads WHERE thread_id = ? AND owner IS NULL", (thread_id,))

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

    async def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: method(**kwargs))

    def _is_condition_failure(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None)
        return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"

    async def acquire(self, thread_id: str, owner: str, *, now: float, until: float, expires_at: float) -> bool:
        try:
            await self._call(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(thread_id),
                UpdateExpression=(
                    "SET thread_id = :t, #o = :o, lease_until = :u, last_active = if_not_exists(last_active, :n),"
                    " #ttl = :e"
                ),
                ConditionExpression="attribute_not_exists(#o) OR #o = :o OR lease_until < :n",
                ExpressionAttributeNames={"#o": "owner", "#ttl": DYNAMODB_TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":e": {"N": str(int(expires_at))},
                    ":t": {"S": thread_id},
                    ":o": {"S": owner},
                    ":u": {"N": repr(until)},
                    ":n": {"N": repr(now)},
                },
            )
        except Exception as exc:
            if self._is_condition_failure(exc):
                return False
            raise
        return True

    async def renew(self, thread_id: str, owner: str, *, until: float) -> bool:
        try:
            await self._call(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(thread_id),
                UpdateExpression="SET lease_until = :u",
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": owner}, ":u": {"N": repr(until)}},
            )
        except Exception as exc:
            if self._is_condition_failure(exc):
                return False
            raise
        return True

    async def release(self, thread_id: str, owner: str, *, now: float, expires_at: float) -> None:
        try:
            await self._call(
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
            if not self._is_condition_failure(exc):  # taken over after our lease expired: nothing of ours to free
                raise

    async def records(self, *, now: float) -> list[ThreadRecord]:
        found: list[ThreadRecord] = []
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(#pk, :p)",
            "ExpressionAttributeNames": {"#pk": DYNAMODB_PARTITION_KEY},
            "ExpressionAttributeValues": {":p": {"S": THREAD_ITEM_PREFIX}},
        }
        while True:
            page = await self._call(self._client.scan, **arguments)
            for item in page.get("Items", []):
                lease_until = float(item.get("lease_until", {}).get("N", "0"))
                found.append(
                    ThreadRecord(
                        thread_id=item["thread_id"]["S"],
                        last_active=float(item.get("last_active", {}).get("N", "0")),
                        leased="owner" in item and lease_until >= now,
                    )
                )
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda r: r.thread_id)
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def forget(self, thread_id: str) -> None:
        await self._call(self._client.delete_item, TableName=self._table, Key=self.key(thread_id))

    async def close(self) -> None:
        return None
