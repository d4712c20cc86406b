"""Thread memory: the history behind `memory_read` / `memory_append`, kept as a LangGraph checkpoint per thread in
the store STATE_URL names (runtime.store.thread_store), so every task of an instance sees the same threads and a
restart or a redeploy forgets none.

Each thread is one checkpoint whose `messages` channel holds the kept tail of the conversation; an append writes
a child checkpoint (the saver's own versioning) and prunes the one it replaced, so a thread's storage is bounded
by `max_history_messages` (and by MAX_HISTORY_BYTES, which keeps a thread within one DynamoDB item). A thread
idle for longer than the manifest's `thread_ttl_hours` reads as empty and is removed (DynamoDB's TTL, or the
SQLite sweep). Appends are serialised per thread by runtime.store.thread_turns, so no concurrent turn is lost, and each
carries its turn's lease (owner and fence in the checkpoint's metadata): the store writes it only while that lease
is still the thread's (runtime.store.thread_leases), so a turn that lost its lease writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointMetadata,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)

from runtime.store.thread_leases import HeldLease, LeaseLostError

HISTORY_CHANNEL = "messages"
MAX_HISTORY_BYTES = 300_000
"""A DynamoDB item holds at most 400 KB and the saver offloads above 350 KB only to an S3 bucket we do not give it:
the oldest messages are dropped first so that a thread's checkpoint always fits."""


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str


def keep_within(messages: Sequence[StoredMessage], *, max_messages: int, max_bytes: int) -> list[StoredMessage]:
    """The newest messages that fit both bounds, oldest first."""
    kept = list(messages[-max_messages:]) if max_messages > 0 else []
    sizes = [len(m.content.encode("utf-8")) + len(m.role) for m in kept]
    total, start = sum(sizes), 0
    while total > max_bytes and start < len(kept):
        total -= sizes[start]
        start += 1
    return kept[start:]


def is_expired(checkpoint_ts: str, *, now: float, ttl_seconds: float) -> bool:
    """A thread whose last write is older than the TTL is gone, whether or not the store has deleted it yet."""
    return now - datetime.fromisoformat(checkpoint_ts).timestamp() > ttl_seconds


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


class ThreadMemory:
    def __init__(
        self,
        saver: BaseCheckpointSaver[Any],
        *,
        keep: int,
        ttl_seconds: float,
        max_bytes: int = MAX_HISTORY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.saver = saver
        self._keep = keep
        self._ttl_seconds = ttl_seconds
        self._max_bytes = max_bytes
        self._clock = clock
        self.turn_of: Callable[[str], HeldLease | None] | None = None
        """Set by the thread store: the lease of this process's running turn on a thread. When set, a write
        outside a turn is refused, and every write carries its turn's lease."""

    async def read(self, thread_id: str, limit: int) -> list[StoredMessage]:
        latest = await self._latest(thread_id)
        if latest is None or limit <= 0:
            return []
        return _messages(latest)[-limit:]

    async def append(self, thread_id: str, messages: list[StoredMessage], lease: HeldLease | None = None) -> int:
        """Writes the thread's next checkpoint and prunes the one it replaces. The caller holds the thread's turn
        (runtime.store.thread_turns), so no other writer can interleave between the read and the write; the write
        carries the turn's lease and is refused (LeaseLostError, the lease marked lost) once another task has taken
        it."""
        if lease is None and self.turn_of is not None:
            lease = self.turn_of(thread_id)
            if lease is None:
                raise LeaseLostError(f"no running turn of this task holds thread {thread_id}; nothing was written")
        if lease is not None and lease.lost is not None:
            raise LeaseLostError(f"the turn lost its lease ({lease.lost}); nothing was written")
        latest = await self._latest(thread_id)
        previous = _messages(latest) if latest is not None else []
        kept = keep_within([*previous, *messages], max_messages=self._keep, max_bytes=self._max_bytes)
        base = latest.checkpoint if latest is not None else empty_checkpoint()
        step = int((latest.metadata or {}).get("step", -1)) + 1 if latest is not None else 0
        checkpoint = create_checkpoint(base, None, step)
        checkpoint["ts"] = datetime.fromtimestamp(self._clock(), UTC).isoformat()
        version = self.saver.get_next_version(base["channel_versions"].get(HISTORY_CHANNEL), None)
        checkpoint["channel_values"] = {HISTORY_CHANNEL: [{"role": m.role, "content": m.content} for m in kept]}
        checkpoint["channel_versions"] = {**base["channel_versions"], HISTORY_CHANNEL: version}
        fence: dict[str, Any] = {"af_owner": lease.owner, "af_fence": lease.fence} if lease is not None else {}
        metadata = cast(CheckpointMetadata, {"source": "update", "step": step, "parents": {}, **fence})
        parent = latest.checkpoint["id"] if latest is not None else None
        try:
            await self.saver.aput(thread_config(thread_id, parent), checkpoint, metadata, {HISTORY_CHANNEL: version})
        except LeaseLostError:
            if lease is not None:
                lease.lost = lease.lost or "the store refused its write: another task holds the thread's lease"
            raise
        if lease is not None:
            lease.recorded = True
        await self.saver.aprune([thread_id], strategy="keep_latest")
        return len(kept)

    async def delete(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def _latest(self, thread_id: str) -> CheckpointTuple | None:
        latest = await self.saver.aget_tuple(thread_config(thread_id))
        if latest is None:
            return None
        if is_expired(latest.checkpoint["ts"], now=self._clock(), ttl_seconds=self._ttl_seconds):
            return None
        return latest


def _messages(latest: CheckpointTuple) -> list[StoredMessage]:
    raw = latest.checkpoint["channel_values"].get(HISTORY_CHANNEL) or []
    return [StoredMessage(role=str(m["role"]), content=str(m["content"])) for m in raw]
