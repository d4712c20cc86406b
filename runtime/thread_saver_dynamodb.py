"""langgraph-checkpoint-aws's DynamoDBSaver with `aprune` (see runtime.thread_savers for why). A module of its own:
importing the package costs about a second, so only a dynamodb:// store pays it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from langgraph_checkpoint_aws.checkpoint.dynamodb import DynamoDBSaver

from runtime.thread_savers import check_strategy


class PrunableDynamoDBSaver(DynamoDBSaver):  # type: ignore[misc]  # the package ships no type information
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
