"""The kept LangGraph checkpointers behind each STATE_URL, with the one BaseCheckpointSaver method they lack.

`aprune(thread_ids, strategy="keep_latest")` is part of LangGraph's BaseCheckpointSaver interface, but neither
AsyncSqliteSaver (langgraph-checkpoint-sqlite) nor DynamoDBSaver (langgraph-checkpoint-aws) nor InMemorySaver
implements it; without it every turn would leave its superseded checkpoint behind and a thread's storage would
grow without bound. Each subclass deletes through the saver's own storage and nothing else. No DeltaChannel is
used (a thread's history is one plain channel), so dropping ancestors never breaks a reconstruction. The DynamoDB
one lives in runtime.thread_saver_dynamodb, imported only for a dynamodb:// store.
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

PRUNE_STATEMENTS = tuple(
    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id < (SELECT MAX(latest.checkpoint_id)"  # noqa: S608
    f" FROM checkpoints AS latest WHERE latest.thread_id = {table}.thread_id"
    f" AND latest.checkpoint_ns = {table}.checkpoint_ns)"
    for table in ("checkpoints", "writes")
)
"""Every checkpoint (and its writes) older than the newest of its thread and namespace; table names are fixed."""


def check_strategy(strategy: str) -> None:
    if strategy not in ("keep_latest", "delete"):
        raise ValueError(f"unknown prune strategy {strategy!r}; allowed: keep_latest, delete")


class PrunableMemorySaver(InMemorySaver):
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
