"""The kept LangGraph checkpointers behind each STATE_URL, with the one BaseCheckpointSaver method they lack.

`aprune(thread_ids, strategy="keep_latest")` is part of LangGraph's BaseCheckpointSaver interface, but neither
AsyncSqliteSaver (langgraph-checkpoint-sqlite) nor DynamoDBSaver (langgraph-checkpoint-aws) nor InMemorySaver
implements it; without it every turn would leave its superseded checkpoint behind and a thread's storage would
grow without bound. Each subclass deletes through the saver's own storage and nothing else. No DeltaChannel is
used (a thread's history is one plain channel), so dropping ancestors never breaks a reconstruction. The DynamoDB
one lives in runtime.store.thread_saver_dynamodb, imported only for a dynamodb:// store.

Each also refuses a fenced checkpoint (one whose metadata carries `af_owner` and `af_fence`, runtime.store.memory) whose
lease is no longer the thread's, with LeaseLostError: SQLite by a trigger in the same statement
(runtime.store.thread_leases.SQLITE_FENCE_TRIGGER), DynamoDB by a ConditionCheck in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from runtime.store.thread_leases import LEASE_LOST, HeldLease, LeaseLostError, Leases

PRUNE_STATEMENTS = tuple(
    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id < (SELECT MAX(latest.checkpoint_id)"  # noqa: S608
    f" FROM checkpoints AS latest WHERE latest.thread_id = {table}.thread_id"
    f" AND latest.checkpoint_ns = {table}.checkpoint_ns)"
    for table in ("checkpoints", "writes")
)
"""Every checkpoint (and its writes) older than the newest of its thread and namespace; table names are fixed."""


def fence_of(thread_id: str, metadata: CheckpointMetadata) -> HeldLease | None:
    """The lease a checkpoint's write carries, if it carries one."""
    found: dict[str, Any] = dict(metadata)
    if "af_fence" not in found:
        return None
    return HeldLease(thread_id, str(found["af_owner"]), int(found["af_fence"]))


def check_strategy(strategy: str) -> None:
    if strategy not in ("keep_latest", "delete"):
        raise ValueError(f"unknown prune strategy {strategy!r}; allowed: keep_latest, delete")


class PrunableMemorySaver(InMemorySaver):
    def __init__(self, leases: Leases | None = None) -> None:
        super().__init__()
        self._leases = leases

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """One process, one event loop: the check and the write cannot be interleaved by another turn."""
        lease = fence_of(str(config["configurable"]["thread_id"]), metadata)
        if lease is not None and self._leases is not None:
            await self._leases.check(lease)
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        check_strategy(strategy)
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            for namespace, checkpoints in self.storage.get(thread_id, {}).items():
                for checkpoint_id in sorted(checkpoints)[:-1]:
                    del checkpoints[checkpoint_id]
                    self.writes.pop((thread_id, namespace, checkpoint_id), None)
                latest = self.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}})
                live = latest.checkpoint["channel_versions"] if latest is not None else {}
                for key in [k for k in self.blobs if k[0] == thread_id and k[1] == namespace]:
                    if live.get(key[2]) != key[3]:
                        del self.blobs[key]


class PrunableSqliteSaver(AsyncSqliteSaver):
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        except sqlite3.IntegrityError as exc:
            if LEASE_LOST not in str(exc):
                raise
            await self.conn.rollback()  # the aborted statement left its transaction open: end it, free the file
            raise LeaseLostError("the store refused the write: another task holds the thread's lease") from exc

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        check_strategy(strategy)
        if strategy == "delete":
            for thread_id in thread_ids:
                await self.adelete_thread(thread_id)
            return
        await self.setup()
        async with self.lock, self.conn.cursor() as cur:
            for thread_id in thread_ids:
                for statement in PRUNE_STATEMENTS:
                    await cur.execute(statement, (thread_id,))
            await self.conn.commit()
