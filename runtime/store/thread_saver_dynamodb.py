"""langgraph-checkpoint-aws's DynamoDBSaver with `aprune` (see runtime.store.thread_savers for why) and fenced writes. A
module of its own: importing the package costs about a second, so only a dynamodb:// store pays it.

A fenced checkpoint (runtime.store.memory: its metadata carries the turn's lease) is written in one TransactWriteItems:
a ConditionCheck that the thread's item still names the lease's owner and fence, and the saver's own puts (its
index item and its payload chunk), gathered as the saver builds them. A refused condition is LeaseLostError and
nothing of the checkpoint is written. A transaction cancelled by a conflicting concurrent write to one of its items
(another task polling for the lease) is tried again, a few times, with a short jittered backoff.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph_checkpoint_aws.checkpoint.dynamodb import DynamoDBSaver

from runtime.store.thread_leases import DynamoDBLeases, LeaseLostError
from runtime.store.thread_savers import check_strategy, fence_of

TRANSACTION_ATTEMPTS = 5


class GatheringClient:
    """The saver's boto3 client, except that inside `gather()` (on this thread) `put_item` calls are kept for one
    transaction instead of being sent. The saver's calls of one `put` run on one executor thread."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **params: Any) -> Any:
        gathered: list[dict[str, Any]] | None = getattr(self._local, "puts", None)
        if gathered is None:
            return self._client.put_item(**params)
        gathered.append(params)
        return {}

    def start(self) -> None:
        self._local.puts = []

    def stop(self) -> list[dict[str, Any]]:
        puts: list[dict[str, Any]] = self._local.puts
        self._local.puts = None
        return puts


class PrunableDynamoDBSaver(DynamoDBSaver):  # type: ignore[misc]  # the package ships no type information
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gathering = GatheringClient(self.client)
        self.repo.dynamodb_client = self._gathering
        self.storage.dynamodb_client = self._gathering

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        lease = fence_of(str(config["configurable"].get("thread_id")), metadata)
        if lease is None:
            return super().put(config, checkpoint, metadata, new_versions)  # type: ignore[no-any-return]
        self._gathering.start()
        try:
            stored: RunnableConfig = super().put(config, checkpoint, metadata, new_versions)
        finally:
            puts = self._gathering.stop()
        condition = DynamoDBLeases(self.client, self.table_name).fence_condition(lease)
        items = [{"Put": {k: v for k, v in p.items() if k != "ReturnValues"}} for p in puts]
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[condition, *items])
                return stored
            except Exception as exc:
                codes = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons") or []]
                if codes and codes[0] == "ConditionalCheckFailed":
                    message = "the store refused the write: another task holds the thread's lease"
                    raise LeaseLostError(message) from exc
                if "TransactionConflict" not in codes or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
            time.sleep(0.02 * 2**attempt * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
        return stored

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.prune(thread_ids, strategy=strategy))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        check_strategy(strategy)
        for thread_id in thread_ids:
            found = self.repo.get_thread_checkpoint_info(thread_id)
            if strategy == "keep_latest":
                latest: dict[str, str] = {}
                for namespace, checkpoint_id in found:
                    latest[namespace] = max(latest.get(namespace, checkpoint_id), checkpoint_id)
                found = [(ns, cid) for ns, cid in found if latest[ns] != cid]
            if found:
                self.repo.delete_thread_writes(thread_id, found)
                self.repo.delete_thread_checkpoints(thread_id, found)
