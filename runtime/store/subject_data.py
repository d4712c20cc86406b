"""Data-subject requests: find, export and erase everything the instance keeps of one caller (an organization's
subject), by the names the caller knows, never the store's opaque keys.

The store keys a thread by a hash of (organization, subject, thread id) (runtime.auth.thread_key); each thread's
record keeps the three names, so one caller's threads are found by (organization, subject). A thread written
before records kept them is still found when its thread id is given: its key is computed from the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.auth import Caller, thread_key
from runtime.store.thread_leases import ThreadOwner, ThreadRecord
from runtime.store.thread_store import ThreadState


@dataclass(frozen=True)
class SubjectRequest:
    organization: str
    subject: str
    thread: str | None = None

    def describe(self) -> str:
        """For messages: whose data was asked for."""
        which = f"thread {self.thread!r} of " if self.thread is not None else "threads of "
        return f"{which}subject {self.subject!r} in organization {self.organization!r}"


async def subject_threads(state: ThreadState, request: SubjectRequest) -> list[ThreadRecord]:
    found = await state.turns.leases.find(request.organization, request.subject, now=state.clock())
    if request.thread is None:
        return found
    key = thread_key(Caller(request.organization, request.subject, frozenset()), request.thread)
    kept = [r for r in found if r.thread_id == key]
    if kept:
        return kept
    if await state.memory.saver.aget_tuple({"configurable": {"thread_id": key, "checkpoint_ns": ""}}) is None:
        return []
    owner = ThreadOwner(request.organization, request.subject, request.thread)
    return [ThreadRecord(thread_id=key, last_active=0.0, leased=False, owner=owner)]


async def export_subject(state: ThreadState, request: SubjectRequest) -> list[dict[str, Any]]:
    """The caller's threads with their kept history (threads whose history has expired hold nothing to show)."""
    return await state.export(await subject_threads(state, request))


async def erase_subject(state: ThreadState, request: SubjectRequest) -> int:
    """Erases the caller's threads (record, checkpoints, writes); returns how many threads it erased."""
    records = await subject_threads(state, request)
    for record in records:
        await state.erase(record.thread_id)
    return len(records)
