"""The approval tools' logic (approve, get_approval, pending_approvals), beside the instance that resumes turns.

`approve` decides with the store's conditional write: the one decision that takes the approval from `pending`
resumes the paused turn (its claim is taken in the same write) and keeps the turn's result with the approval; any
other decision on it, in this task or another, answers with that result once it is kept. A decided approval whose
result is not kept and whose claim ran out (the task that decided died, or the thread stayed busy) is resumed by
the next `approve` of it (an approved call that turn had already started is not made again: the worker's mark,
runtime.approvals.policy). Every answer names the approval's state; an unknown approval, one of another
organization and an expired one are refused with an ApprovalError that says which.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.types import Command
from pydantic import BaseModel

from runtime.approvals.policy import ApprovalError, ApprovalState, iso, resume_command
from runtime.auth import APPROVE_SCOPE, Caller
from runtime.store.approval_store import ApprovalRecord, Approvals, Decision, Status

POLL_SECONDS = 0.1
log = logging.getLogger(__name__)

Resume = Callable[[ApprovalRecord, Command[Any]], Awaitable[BaseModel]]
"""Runs the paused turn from its checkpoint (holding its thread's turn) and returns the turn's result."""


class ApprovalDesk:
    def __init__(
        self,
        approvals: Approvals,
        resume: Resume,
        *,
        run_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`run_seconds`: how long a resumed turn may take (the request's limit and the wait for the thread): the
        claim of whoever runs it lasts that long, and a second decision waits for the first's result that long."""
        self.approvals = approvals
        self._resume = resume
        self._run_seconds = run_seconds
        self._clock = clock
        self._process = f"{socket.gethostname()}:{os.getpid()}"

    async def decide(self, approval_id: str, decision: Decision, comment: str | None, caller: Caller) -> ApprovalState:
        record = await self._find(approval_id, caller)
        now = self._clock()
        runner = f"{self._process}:{uuid.uuid4().hex}"
        status: Status = "approved" if decision == "approve" else "rejected"
        until = now + self._run_seconds
        if await self.approvals.decide(
            approval_id, status, by=caller.subject, comment=comment, now=now, runner=runner, until=until
        ):
            log.info(json.dumps({"event": "approval.decided", "approval_id": approval_id, "status": status}))
            return await self._run(approval_id, runner)
        record = await self._find(approval_id, caller)
        if record.state(now) == "expired":
            raise ApprovalError(
                f"approval {approval_id} expired at {iso(record.expires_at)} without a decision; its turn will not "
                "resume: ask again (invoke) if the call is still wanted"
            )
        return await self._outcome_of(record)

    async def get(self, approval_id: str, caller: Caller) -> ApprovalState:
        """The requester's own approval (or, for a caller who may approve, any of the organization's)."""
        record = await self._find(approval_id, caller)
        if record.subject != caller.subject and APPROVE_SCOPE not in caller.scopes:
            raise self._unknown(approval_id)
        return ApprovalState.of(record, self._clock())

    async def pending(self, caller: Caller) -> list[ApprovalState]:
        now = self._clock()
        return [ApprovalState.of(r, now) for r in await self.approvals.pending(caller.organization, now=now)]

    async def _find(self, approval_id: str, caller: Caller) -> ApprovalRecord:
        record = await self.approvals.get(approval_id)
        if record is None or record.organization != caller.organization:
            raise self._unknown(approval_id)
        return record

    @staticmethod
    def _unknown(approval_id: str) -> ApprovalError:
        return ApprovalError(f"no approval {approval_id[:80]!r} on this instance for your organization")

    async def _run(self, approval_id: str, runner: str) -> ApprovalState:
        """Resumes the turn as the claim's holder and keeps its result with the approval."""
        record = await self.approvals.get(approval_id)
        assert record is not None
        result = await self._resume(record, resume_command(record))
        await self.approvals.finish(approval_id, runner, result.model_dump_json())
        kept = await self.approvals.get(approval_id)
        assert kept is not None
        return ApprovalState.of(kept, self._clock())

    async def _outcome_of(self, record: ApprovalRecord) -> ApprovalState:
        """The first decision's answer: its kept result, waiting for it while its turn runs; a claim that ran out
        without a result is taken over and the turn resumed here."""
        deadline = time.monotonic() + self._run_seconds
        while record.result is None:
            now = self._clock()
            runner = f"{self._process}:{uuid.uuid4().hex}"
            if record.run_until < now and await self.approvals.claim(
                record.id, runner, now=now, until=now + self._run_seconds
            ):
                return await self._run(record.id, runner)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
            found = await self.approvals.get(record.id)
            assert found is not None
            record = found
        return ApprovalState.of(record, self._clock())
