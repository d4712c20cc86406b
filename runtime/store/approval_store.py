"""The approvals of paused turns, kept in the instance's own store beside its threads (runtime.store.thread_store), so
any task can decide one and resume its turn after a restart or a deploy.

A decision is a conditional write (SQLite: an UPDATE guarded by its WHERE, in one autocommitted statement;
DynamoDB: a ConditionExpression): of two decisions on one approval, in one process or two, exactly one changes it
from `pending`, and only that one runs the paused tool. Running the resumed turn is a claim with an expiry
(`runner`, `run_until`), taken in the same write as the decision: should the task that decided die before the
turn's result is kept, a later `approve` of the same approval takes the claim over once it has run out and
resumes the turn from its checkpoint.

The approved call is made at most once: right before making it, the worker marks it as started (`start_call`, a
conditional write that only the first mark of an approved approval passes: `call_started_at` set where unset). A
turn resumed again after a task died past that point finds the mark and does not call again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosqlite

from instance_contract.thread_state import DYNAMODB_PARTITION_KEY, DYNAMODB_SORT_KEY, DYNAMODB_TTL_ATTRIBUTE
from runtime.store.dynamodb_calls import all_items, condition_failed, in_executor
from runtime.store.thread_leases import SQLITE_BUSY_TIMEOUT_S

APPROVAL_ITEM_PREFIX = "AF_APPROVAL_"
APPROVAL_ITEM_SORT_KEY = "APPROVAL"

Status = Literal["pending", "approved", "rejected"]
Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    organization: str
    subject: str
    """Who asked (the invoking caller's subject)."""
    thread: str
    """The caller's own thread id."""
    thread_key: str
    """The store's opaque key of the thread (runtime.auth.thread_key)."""
    run_id: str
    """The checkpointer thread of the paused turn's graph."""
    interrupt_id: str
    agent_id: str
    tool: str
    arguments: dict[str, Any]
    trace_id: str
    created_at: float
    expires_at: float
    status: Status = "pending"
    decided_by: str | None = None
    decided_at: float | None = None
    comment: str | None = None
    runner: str | None = None
    run_until: float = 0.0
    result: str | None = None
    """The resumed turn's final result (JSON of runtime.instance.InvokeResult), once it has run."""
    call_started_at: float | None = None
    """When a resumed turn began to make the approved call (set once: the call is made at most once)."""
    call_started_by: str | None = None
    """The claim holder (`runner`) whose turn began it."""

    def state(self, now: float) -> Literal["pending", "approved", "rejected", "expired"]:
        return "expired" if self.status == "pending" and now >= self.expires_at else self.status

    def audit(self) -> dict[str, Any]:
        """What a data-subject export shows of it: who asked for which call, who decided, when and why, and when the
        approved call was started (None: not made, or refused)."""
        return {
            "approval_id": self.id,
            "tool": self.tool,
            "arguments": self.arguments,
            "requested_by": self.subject,
            "requested_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "comment": self.comment,
            "call_started_at": self.call_started_at,
        }


class Approvals(Protocol):
    async def add(self, record: ApprovalRecord) -> None:
        """Keeps a new approval; one with the same id already kept stays as it is."""

    async def get(self, approval_id: str) -> ApprovalRecord | None: ...

    async def decide(
        self, approval_id: str, status: Status, *, by: str, comment: str | None, now: float, runner: str, until: float
    ) -> bool:
        """True when this decision was the one taken (the approval was pending and not expired at `now`)."""

    async def claim(self, approval_id: str, runner: str, *, now: float, until: float) -> bool:
        """Takes over running a decided approval's turn whose result is not kept and whose claim ran out."""

    async def finish(self, approval_id: str, runner: str, result: str) -> bool:
        """Keeps the resumed turn's result, if `runner` still holds the claim."""

    async def start_call(self, approval_id: str, *, by: str, now: float) -> bool:
        """Marks the approved call as being made; True only for the first mark of an approved approval (a
        rejected, pending or unknown one, or one marked before, is refused)."""

    async def pending(self, organization: str, *, now: float) -> list[ApprovalRecord]: ...

    async def expired(self, *, now: float, after: float | None = None) -> list[ApprovalRecord]:
        """Every approval that expired undecided by `now` (its paused turn's checkpoint can go); with `after`, only
        those that had not expired yet at `after` (a sweep's previous round took the others)."""

    async def of_thread(self, thread_key: str) -> list[ApprovalRecord]: ...

    async def erase_thread(self, thread_key: str, read: Sequence[ApprovalRecord]) -> None:
        """Removes a thread's approvals. `read` is what `of_thread` returned to the caller just before: a store
        that finds them only by a scan (DynamoDB) deletes those instead of scanning again; one that deletes by
        thread key in one statement (SQLite, memory) does that."""

    async def close(self) -> None: ...


class MemoryApprovals:
    def __init__(self) -> None:
        self._records: dict[str, ApprovalRecord] = {}

    async def add(self, record: ApprovalRecord) -> None:
        self._records.setdefault(record.id, record)

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        return self._records.get(approval_id)

    async def decide(
        self, approval_id: str, status: Status, *, by: str, comment: str | None, now: float, runner: str, until: float
    ) -> bool:
        record = self._records.get(approval_id)
        if record is None or record.status != "pending" or record.expires_at <= now:
            return False
        self._records[approval_id] = replace(
            record, status=status, decided_by=by, decided_at=now, comment=comment, runner=runner, run_until=until
        )
        return True

    async def claim(self, approval_id: str, runner: str, *, now: float, until: float) -> bool:
        record = self._records.get(approval_id)
        if record is None or record.status == "pending" or record.result is not None or record.run_until >= now:
            return False
        self._records[approval_id] = replace(record, runner=runner, run_until=until)
        return True

    async def finish(self, approval_id: str, runner: str, result: str) -> bool:
        record = self._records.get(approval_id)
        if record is None or record.runner != runner or record.result is not None:
            return False
        self._records[approval_id] = replace(record, result=result)
        return True

    async def start_call(self, approval_id: str, *, by: str, now: float) -> bool:
        record = self._records.get(approval_id)
        if record is None or record.status != "approved" or record.call_started_at is not None:
            return False
        self._records[approval_id] = replace(record, call_started_at=now, call_started_by=by)
        return True

    async def pending(self, organization: str, *, now: float) -> list[ApprovalRecord]:
        found = [r for r in self._records.values() if r.organization == organization and r.state(now) == "pending"]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def expired(self, *, now: float, after: float | None = None) -> list[ApprovalRecord]:
        found = (r for r in self._records.values() if r.state(now) == "expired")
        return sorted((r for r in found if after is None or r.expires_at > after), key=lambda r: r.id)

    async def of_thread(self, thread_key: str) -> list[ApprovalRecord]:
        return sorted((r for r in self._records.values() if r.thread_key == thread_key), key=lambda r: r.created_at)

    async def erase_thread(self, thread_key: str, read: Sequence[ApprovalRecord]) -> None:
        for record in await self.of_thread(thread_key):
            del self._records[record.id]

    async def close(self) -> None:
        return None


SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS af_approvals ("
    " id TEXT PRIMARY KEY, organization TEXT NOT NULL, subject TEXT NOT NULL, thread TEXT NOT NULL,"
    " thread_key TEXT NOT NULL, run_id TEXT NOT NULL, interrupt_id TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " tool TEXT NOT NULL, arguments TEXT NOT NULL, trace_id TEXT NOT NULL, created_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, status TEXT NOT NULL, decided_by TEXT, decided_at REAL, comment TEXT,"
    " runner TEXT, run_until REAL NOT NULL DEFAULT 0, result TEXT, call_started_at REAL, call_started_by TEXT)"
)
ADDED_COLUMNS = {"call_started_at": "REAL", "call_started_by": "TEXT"}
"""Columns added since the table was first made: a file of an older runtime gets them when it is opened."""
COLUMNS = tuple(ApprovalRecord.__dataclass_fields__)
ALIASES = {"#s": "status", "#c": "comment", "#res": "result"}
"""DynamoDB reserved words among the item's attributes, by the alias its expressions use."""


def _row(record: ApprovalRecord) -> tuple[Any, ...]:
    values = asdict(record)
    values["arguments"] = json.dumps(record.arguments, sort_keys=True)
    return tuple(values[c] for c in COLUMNS)


def _record(row: Any) -> ApprovalRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["arguments"] = json.loads(values["arguments"])
    return ApprovalRecord(**values)


class SqliteApprovals:
    """Its own autocommit connection to the instance's SQLite file: each statement is one atomic transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: Path) -> SqliteApprovals:
        conn = await aiosqlite.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute(SQLITE_TABLE)
        async with conn.execute("PRAGMA table_info(af_approvals)") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
        for column, kind in ADDED_COLUMNS.items():
            if column not in present:
                await conn.execute(f"ALTER TABLE af_approvals ADD COLUMN {column} {kind}")
        await conn.execute("CREATE INDEX IF NOT EXISTS af_approvals_by_org ON af_approvals (organization, status)")
        await conn.execute("CREATE INDEX IF NOT EXISTS af_approvals_by_thread ON af_approvals (thread_key)")
        return cls(conn)

    async def add(self, record: ApprovalRecord) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        await self._conn.execute(
            f"INSERT OR IGNORE INTO af_approvals ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608 - fixed names
            _row(record),
        )

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        found = await self._select("id = ?", (approval_id,))
        return found[0] if found else None

    async def decide(
        self, approval_id: str, status: Status, *, by: str, comment: str | None, now: float, runner: str, until: float
    ) -> bool:
        cursor = await self._conn.execute(
            "UPDATE af_approvals SET status = ?, decided_by = ?, decided_at = ?, comment = ?, runner = ?,"
            " run_until = ? WHERE id = ? AND status = 'pending' AND expires_at > ?",
            (status, by, now, comment, runner, until, approval_id, now),
        )
        return cursor.rowcount == 1

    async def claim(self, approval_id: str, runner: str, *, now: float, until: float) -> bool:
        cursor = await self._conn.execute(
            "UPDATE af_approvals SET runner = ?, run_until = ? WHERE id = ? AND status != 'pending'"
            " AND result IS NULL AND run_until < ?",
            (runner, until, approval_id, now),
        )
        return cursor.rowcount == 1

    async def finish(self, approval_id: str, runner: str, result: str) -> bool:
        cursor = await self._conn.execute(
            "UPDATE af_approvals SET result = ? WHERE id = ? AND runner = ? AND result IS NULL",
            (result, approval_id, runner),
        )
        return cursor.rowcount == 1

    async def start_call(self, approval_id: str, *, by: str, now: float) -> bool:
        cursor = await self._conn.execute(
            "UPDATE af_approvals SET call_started_at = ?, call_started_by = ? WHERE id = ? AND status = 'approved'"
            " AND call_started_at IS NULL",
            (now, by, approval_id),
        )
        return cursor.rowcount == 1

    async def pending(self, organization: str, *, now: float) -> list[ApprovalRecord]:
        return await self._select(
            "organization = ? AND status = 'pending' AND expires_at > ?", (organization, now), "created_at, id"
        )

    async def expired(self, *, now: float, after: float | None = None) -> list[ApprovalRecord]:
        if after is None:
            return await self._select("status = 'pending' AND expires_at <= ?", (now,))
        return await self._select("status = 'pending' AND expires_at <= ? AND expires_at > ?", (now, after))

    async def of_thread(self, thread_key: str) -> list[ApprovalRecord]:
        return await self._select("thread_key = ?", (thread_key,), "created_at, id")

    async def erase_thread(self, thread_key: str, read: Sequence[ApprovalRecord]) -> None:
        await self._conn.execute("DELETE FROM af_approvals WHERE thread_key = ?", (thread_key,))

    async def _select(self, where: str, values: tuple[Any, ...], order: str = "id") -> list[ApprovalRecord]:
        query = f"SELECT {', '.join(COLUMNS)} FROM af_approvals WHERE {where} ORDER BY {order}"  # noqa: S608
        async with self._conn.execute(query, values) as cursor:
            return [_record(row) for row in await cursor.fetchall()]

    async def close(self) -> None:
        await self._conn.close()


class DynamoDBApprovals:
    """One item per approval in the instance's table, next to the threads' items; boto3 calls run in the default
    executor. Listing (pending ones, a thread's) is a filtered scan: rare calls, and no index to add to the table.
    The item carries the table's TTL attribute: it goes with its thread's data, `keep_seconds` after it expires."""

    def __init__(self, client: Any, table: str, *, keep_seconds: float) -> None:
        self._client = client
        self._table = table
        self._keep_seconds = keep_seconds

    @staticmethod
    def key(approval_id: str) -> dict[str, dict[str, str]]:
        return {
            DYNAMODB_PARTITION_KEY: {"S": APPROVAL_ITEM_PREFIX + approval_id},
            DYNAMODB_SORT_KEY: {"S": APPROVAL_ITEM_SORT_KEY},
        }

    async def _update(self, approval_id: str, expression: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional update; False when its condition refused it. Attribute names that DynamoDB reserves
        are written #pk, #s (status), #c (comment) and #res (result)."""
        text = f"{expression} {condition}"
        names = {alias: name for alias, name in ALIASES.items() if alias in text}
        try:
            await in_executor(
                self._client.update_item,
                TableName=self._table,
                Key=self.key(approval_id),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(#pk) AND {condition}",
                ExpressionAttributeNames={"#pk": DYNAMODB_PARTITION_KEY, **names},
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    async def add(self, record: ApprovalRecord) -> None:
        item: dict[str, Any] = {
            **self.key(record.id),
            "body": {"S": json.dumps(asdict(record), sort_keys=True)},
            "organization": {"S": record.organization},
            "thread_key": {"S": record.thread_key},
            "status": {"S": record.status},
            "expires_at": {"N": repr(record.expires_at)},
            "run_until": {"N": "0"},
            DYNAMODB_TTL_ATTRIBUTE: {"N": str(int(record.expires_at + self._keep_seconds))},
        }
        try:
            await in_executor(
                self._client.put_item,
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": DYNAMODB_PARTITION_KEY},
            )
        except Exception as exc:
            if not condition_failed(exc):
                raise

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        answer = await in_executor(
            self._client.get_item, TableName=self._table, Key=self.key(approval_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return self._from_item(item) if item else None

    @staticmethod
    def _from_item(item: dict[str, Any]) -> ApprovalRecord:
        """The immutable request from `body`; the changing fields from their own attributes."""
        body = json.loads(item["body"]["S"])
        for name in ("status", "decided_by", "comment", "runner", "result", "call_started_by"):
            body[name] = item[name]["S"] if name in item else body.get(name)
        for name in ("decided_at", "run_until", "call_started_at"):
            body[name] = float(item[name]["N"]) if name in item else body.get(name)
        return ApprovalRecord(**body)

    async def decide(
        self, approval_id: str, status: Status, *, by: str, comment: str | None, now: float, runner: str, until: float
    ) -> bool:
        values: dict[str, Any] = {
            ":st": {"S": status},
            ":by": {"S": by},
            ":at": {"N": repr(now)},
            ":r": {"S": runner},
            ":u": {"N": repr(until)},
            ":p": {"S": "pending"},
            ":now": {"N": repr(now)},
        }
        expression = "SET #s = :st, decided_by = :by, decided_at = :at, runner = :r, run_until = :u"
        if comment is not None:
            expression += ", #c = :c"
            values[":c"] = {"S": comment}
        return await self._update(approval_id, expression, "#s = :p AND expires_at > :now", values)

    async def claim(self, approval_id: str, runner: str, *, now: float, until: float) -> bool:
        return await self._update(
            approval_id,
            "SET runner = :r, run_until = :u",
            "#s <> :p AND attribute_not_exists(#res) AND run_until < :now",
            {":r": {"S": runner}, ":u": {"N": repr(until)}, ":p": {"S": "pending"}, ":now": {"N": repr(now)}},
        )

    async def finish(self, approval_id: str, runner: str, result: str) -> bool:
        return await self._update(
            approval_id,
            "SET #res = :res",
            "runner = :r AND attribute_not_exists(#res)",
            {":r": {"S": runner}, ":res": {"S": result}},
        )

    async def start_call(self, approval_id: str, *, by: str, now: float) -> bool:
        return await self._update(
            approval_id,
            "SET call_started_at = :at, call_started_by = :by",
            "#s = :a AND attribute_not_exists(call_started_at)",
            {":at": {"N": repr(now)}, ":by": {"S": by}, ":a": {"S": "approved"}},
        )

    async def pending(self, organization: str, *, now: float) -> list[ApprovalRecord]:
        found = await self._scan(
            "organization = :o AND #s = :p AND expires_at > :now",
            {":o": {"S": organization}, ":p": {"S": "pending"}, ":now": {"N": repr(now)}},
        )
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def expired(self, *, now: float, after: float | None = None) -> list[ApprovalRecord]:
        condition = "#s = :p AND expires_at <= :now"
        values: dict[str, Any] = {":p": {"S": "pending"}, ":now": {"N": repr(now)}}
        if after is not None:
            condition += " AND expires_at > :after"
            values[":after"] = {"N": repr(after)}
        return sorted(await self._scan(condition, values), key=lambda r: r.id)

    async def of_thread(self, thread_key: str) -> list[ApprovalRecord]:
        found = await self._scan("thread_key = :k", {":k": {"S": thread_key}})
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def erase_thread(self, thread_key: str, read: Sequence[ApprovalRecord]) -> None:
        """Deletes the approvals in `read` by key (finding them again would be a second scan of the table). One a
        turn still running on the thread added after that read stays, with its paused turn's checkpoint, until
        the table's TTL takes both."""
        for record in read:
            await in_executor(self._client.delete_item, TableName=self._table, Key=self.key(record.id))

    async def _scan(self, condition: str, values: dict[str, Any]) -> list[ApprovalRecord]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": f"begins_with(#pk, :prefix) AND {condition}",
            "ExpressionAttributeNames": {
                "#pk": DYNAMODB_PARTITION_KEY,
                **{alias: name for alias, name in ALIASES.items() if alias in condition},
            },
            "ExpressionAttributeValues": {":prefix": {"S": APPROVAL_ITEM_PREFIX}, **values},
            "ConsistentRead": True,
        }
        return [self._from_item(item) for item in await all_items(self._client.scan, **arguments)]

    async def close(self) -> None:
        return None
