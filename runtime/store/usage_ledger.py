"""The usage ledger: one record per UTC hour in the instance's own store (the thread state's SQLite file or
DynamoDB table), holding that hour's counters (runtime.telemetry.usage_tally). Every turn adds its counters in one
atomic write, so tasks side by side lose nothing and a restart loses nothing that was answered:

    sqlite     table af_usage (hour, counters JSON, expires_at): one upsert statement merges the turn's counters
               into the hour's row (SQLite runs a statement as one transaction, under its write lock).
    dynamodb   item PK=AF_USAGE, SK=<hour>: one UpdateItem `ADD` of every counter (top-level number attributes),
               with the table's TTL attribute set to the hour's end plus the retention.
    memory     a dict, this process only (tests).

Rows older than USAGE_RETENTION_DAYS (default 400) go: DynamoDB by its TTL, SQLite and memory by the sweep.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY, DYNAMODB_TTL_ATTRIBUTE
from runtime.config import DEFAULT_USAGE_RETENTION_DAYS
from runtime.store.dynamodb_calls import all_items, in_executor
from runtime.telemetry.usage_tally import add_counters, hour_key

USAGE_PARTITION = "AF_USAGE"
"""The DynamoDB partition of the ledger's items: one per hour, sort key the hour
(runtime.telemetry.usage_tally.hour_key)."""
HOUR_ATTRIBUTE = "hour"
NOT_COUNTERS = frozenset({DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY, DYNAMODB_TTL_ATTRIBUTE, HOUR_ATTRIBUTE})
SQLITE_MERGE = (
    "INSERT INTO af_usage (hour, counters, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (hour) DO UPDATE SET counters = ("
    "  SELECT json_group_object(key, total) FROM ("
    "   SELECT key, sum(value) AS total FROM ("
    "    SELECT key, value FROM json_each(af_usage.counters)"
    "    UNION ALL SELECT key, value FROM json_each(excluded.counters))"
    "   GROUP BY key)),"
    " expires_at = max(af_usage.expires_at, excluded.expires_at)"
)
"""Adds the turn's counters to the hour's row in one statement: the old and new counters summed key by key."""


class UsageLedger(Protocol):
    async def add(self, hour: datetime.datetime, counters: dict[str, int]) -> None:
        """Adds `counters` to the hour's record, atomically."""

    async def hours(self, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, int]]:
        """The counters of each kept hour in [since, until), oldest first."""

    async def sweep(self, now: float) -> int:
        """Removes hours past their retention; returns how many went."""

    async def close(self) -> None: ...


def expires_at(hour: datetime.datetime, retention_days: float) -> float:
    return (hour + datetime.timedelta(hours=1, days=retention_days)).timestamp()


class MemoryUsageLedger:
    def __init__(self, retention_days: float = DEFAULT_USAGE_RETENTION_DAYS) -> None:
        self.retention_days = retention_days
        self._hours: dict[str, tuple[dict[str, int], float]] = {}

    async def add(self, hour: datetime.datetime, counters: dict[str, int]) -> None:
        key = hour_key(hour)
        kept, _ = self._hours.get(key, ({}, 0.0))
        self._hours[key] = (add_counters(dict(kept), counters), expires_at(hour, self.retention_days))

    async def hours(self, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, int]]:
        low, high = hour_key(since), hour_key(until)
        return [dict(c) for key, (c, _) in sorted(self._hours.items()) if low <= key < high]

    async def sweep(self, now: float) -> int:
        gone = [key for key, (_, expiry) in self._hours.items() if expiry < now]
        for key in gone:
            del self._hours[key]
        return len(gone)

    async def close(self) -> None:
        return None


class SqliteUsageLedger:
    """Its own connection in autocommit mode (as runtime.store.thread_leases): each statement is one transaction."""

    def __init__(self, conn: aiosqlite.Connection, retention_days: float) -> None:
        self._conn = conn
        self.retention_days = retention_days

    @classmethod
    async def open(cls, path: Path, *, retention_days: float, busy_timeout_seconds: float) -> SqliteUsageLedger:
        conn = await aiosqlite.connect(path, timeout=busy_timeout_seconds, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
            await conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit survives a process crash
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS af_usage ("
                " hour TEXT PRIMARY KEY, counters TEXT NOT NULL, expires_at REAL NOT NULL)"
            )
        except BaseException:
            await conn.close()
            raise
        return cls(conn, retention_days)

    async def add(self, hour: datetime.datetime, counters: dict[str, int]) -> None:
        await self._conn.execute(
            SQLITE_MERGE, (hour_key(hour), json.dumps(counters), expires_at(hour, self.retention_days))
        )

    async def hours(self, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, int]]:
        async with self._conn.execute(
            "SELECT counters FROM af_usage WHERE hour >= ? AND hour < ? ORDER BY hour",
            (hour_key(since), hour_key(until)),
        ) as cursor:
            return [{k: int(v) for k, v in json.loads(row[0]).items()} for row in await cursor.fetchall()]

    async def sweep(self, now: float) -> int:
        cursor = await self._conn.execute("DELETE FROM af_usage WHERE expires_at < ?", (now,))
        return cursor.rowcount

    async def close(self) -> None:
        await self._conn.close()


class DynamoDBUsageLedger:
    """Items beside the thread state's in the instance's table; boto3 calls run in the default executor."""

    def __init__(self, client: Any, table: str, retention_days: float) -> None:
        self._client = client
        self._table = table
        self.retention_days = retention_days

    @staticmethod
    def key(hour: datetime.datetime) -> dict[str, dict[str, str]]:
        return {DYNAMODB_PARTITION_KEY: {"S": USAGE_PARTITION}, DYNAMODB_SORT_KEY: {"S": hour_key(hour)}}

    async def add(self, hour: datetime.datetime, counters: dict[str, int]) -> None:
        names = {"#ttl": DYNAMODB_TTL_ATTRIBUTE, "#hour": HOUR_ATTRIBUTE}
        values: dict[str, dict[str, str]] = {
            ":ttl": {"N": str(int(expires_at(hour, self.retention_days)))},
            ":hour": {"S": hour_key(hour)},
        }
        adds = []
        for index, (name, amount) in enumerate(sorted(counters.items())):
            names[f"#c{index}"] = name
            values[f":c{index}"] = {"N": str(int(amount))}
            adds.append(f"#c{index} :c{index}")
        await in_executor(
            self._client.update_item,
            TableName=self._table,
            Key=self.key(hour),
            UpdateExpression=f"SET #ttl = :ttl, #hour = :hour ADD {', '.join(adds)}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    async def hours(self, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, int]]:
        """A strongly consistent Query of the ledger's partition: an answer right after a turn counts it."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :p AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": DYNAMODB_PARTITION_KEY, "#sk": DYNAMODB_SORT_KEY},
            "ExpressionAttributeValues": {
                ":p": {"S": USAGE_PARTITION},
                ":low": {"S": hour_key(since)},
                ":high": {"S": hour_key(until - datetime.timedelta(hours=1))},
            },
            "ConsistentRead": True,
        }
        items = await all_items(self._client.query, **arguments)
        return [{k: int(v["N"]) for k, v in item.items() if k not in NOT_COUNTERS and "N" in v} for item in items]

    async def sweep(self, now: float) -> int:
        return 0  # the table's TTL removes expired hours

    async def close(self) -> None:
        return None
