"""Thread memory: the in-process store behind `memory_read` / `memory_append` (memory_store: in-process).

One event loop owns it, so plain dicts are safe; each thread keeps a bounded tail so memory cannot grow without
limit on a long-lived task.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_KEPT_PER_THREAD = 200


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str


class ThreadMemory:
    def __init__(self, *, keep: int = MAX_KEPT_PER_THREAD) -> None:
        self._keep = keep
        self._threads: dict[str, deque[StoredMessage]] = {}

    def read(self, thread_id: str, limit: int) -> list[StoredMessage]:
        messages = self._threads.get(thread_id)
        if not messages or limit <= 0:
            return []
        return list(messages)[-limit:]

    def append(self, thread_id: str, messages: list[StoredMessage]) -> int:
        stored = self._threads.setdefault(thread_id, deque(maxlen=self._keep))
        stored.extend(messages)
        return len(stored)

    @property
    def thread_count(self) -> int:
        return len(self._threads)
