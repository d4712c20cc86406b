"""Tool calls that wait for a person: the governance policy's `approval_required` (instance_contract.schema).

When a worker's model asks for such a tool, the worker's tool step calls LangGraph's `interrupt` before making any
call of that round (so a resumed step never repeats a call), and the turn's graph, compiled with the instance's own
checkpointer, stops with its state checkpointed under the turn's run id. The turn then ends like any other: its
thread's lease is released, and the invoke answers `awaiting_approval` with the approval kept in the store
(runtime.store.approval_store). `approve` on any task decides it with a conditional write, takes the thread's turn again
and resumes the graph from its checkpoint with `Command(resume=...)`: the tool runs, or the model is told that the
call was refused; the final result is kept with the approval, so a second decision answers with the first's.

An approved call is made at most once: the resume value names the approval, and the worker marks the call as started
in the approval's record (a conditional write, `Approvals.start_call`) right before making it. A turn resumed again
after the task that made the call died before the turn's result was kept finds the mark: the call is not made again,
the model is told its outcome is unknown, and the approval's result says so (`approval_outcome_unknown`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

from langgraph.types import Command, interrupt
from pydantic import BaseModel

from instance_contract.schema import GovernancePolicy
from runtime.store.approval_store import ApprovalRecord, Decision


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which external tools wait for a person, and for how long."""

    patterns: tuple[str, ...] = ()
    timeout_seconds: float = 3600.0

    @classmethod
    def from_spec(cls, policy: GovernancePolicy | None) -> ApprovalPolicy:
        policy = policy or GovernancePolicy()
        return cls(tuple(policy.approval_required), float(policy.approval_timeout_seconds))

    @property
    def active(self) -> bool:
        return bool(self.patterns)

    def requires(self, tool: str) -> bool:
        """`<server>.<tool>` exactly, or any tool of a `<server>.*` entry."""
        return any(tool == p or (p.endswith(".*") and fnmatch.fnmatchcase(tool, p)) for p in self.patterns)


class ApprovalAsked(TypedDict):
    """The interrupt's value: what the worker wants to call."""

    kind: Literal["tool_approval"]
    agent_id: str
    tool: str
    arguments: dict[str, Any]


class ApprovalAnswer(TypedDict):
    """The resume value: the person's decision."""

    decision: Decision
    decided_by: str
    comment: str | None
    approval_id: NotRequired[str]
    """The approval decided (absent from an answer kept in a checkpoint of an older runtime)."""
    runner: NotRequired[str]
    """Who runs the resumed turn (the claim's holder): the approved call's mark names it."""


CallStarts = Callable[[str, str], Awaitable[bool]]
"""Marks an approved call as being made (approval id, runner): True for the first mark only (Approvals.start_call)."""


def ask_approval(agent_id: str, tool: str, arguments: dict[str, Any]) -> ApprovalAnswer:
    """Pauses the turn (first run) or returns the decision it was resumed with (LangGraph re-runs the node)."""
    asked: ApprovalAsked = {"kind": "tool_approval", "agent_id": agent_id, "tool": tool, "arguments": arguments}
    answer: ApprovalAnswer = interrupt(asked)
    return answer


def refusal_text(tool: str, answer: ApprovalAnswer) -> str:
    """What the model is told in place of the tool's result."""
    why = f" Their comment: {answer['comment']}" if answer.get("comment") else ""
    return (
        f"The call of {tool} was refused by {answer['decided_by']}, who must approve it; it was not made.{why} "
        "Do not try it again: tell the user it was not done."
    )


def outcome_unknown_text(tool: str, answer: ApprovalAnswer) -> str:
    """What the model is told in place of the result of an approved call that an earlier run began and never
    finished."""
    return (
        f"The approved call of {tool} (approval {answer.get('approval_id')}) was already started by an earlier run "
        "of this turn that stopped before its outcome was known: it may have been made. It was not made again. Tell "
        "the user to check the target system before asking for it again."
    )


def resume_command(record: ApprovalRecord) -> Command[Any]:
    """The decided approval's answer to its paused turn's interrupt."""
    assert record.decided_by is not None, "only a decided approval resumes its turn"
    answer: ApprovalAnswer = {
        "decision": "approve" if record.status == "approved" else "reject",
        "decided_by": record.decided_by,
        "comment": record.comment,
        "approval_id": record.id,
    }
    if record.runner is not None:
        answer["runner"] = record.runner
    return Command(resume={record.interrupt_id: answer})


def approval_id(run_id: str, interrupt_id: str) -> str:
    """The same interrupt of the same paused turn is the same approval (a resume that pauses again on another
    pending call keeps that one's id)."""
    return "apr-" + hashlib.sha256(f"{run_id}\x00{interrupt_id}".encode()).hexdigest()[:32]


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class ApprovalRequest(BaseModel):
    """The approval a paused invoke answers with."""

    id: str
    tool: str
    """`<server>.<tool>`."""
    arguments: dict[str, Any]
    requested_by: str
    """The subject of the caller whose turn asked for the call."""
    agent_id: str
    expires_at: str
    """ISO 8601, UTC: after this the approval can no longer be decided and the turn never resumes."""

    @classmethod
    def of(cls, record: ApprovalRecord) -> ApprovalRequest:
        expires = iso(record.expires_at)
        assert expires is not None
        return cls(
            id=record.id,
            tool=record.tool,
            arguments=record.arguments,
            requested_by=record.subject,
            agent_id=record.agent_id,
            expires_at=expires,
        )


class ApprovalState(BaseModel):
    """An approval as `get_approval`, `approve` and `pending_approvals` show it."""

    approval_id: str
    state: Literal["pending", "approved", "rejected", "expired"]
    tool: str
    arguments: dict[str, Any]
    agent_id: str
    requested_by: str
    thread_id: str
    """The requester's own thread id."""
    trace_id: str
    """The paused turn's trace id (the resumed turn keeps it)."""
    requested_at: str
    expires_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    comment: str | None = None
    result: dict[str, Any] | None = None
    """Once decided and resumed: the turn's final result (the invoke result's fields)."""

    @classmethod
    def of(cls, record: ApprovalRecord, now: float) -> ApprovalState:
        requested, expires = iso(record.created_at), iso(record.expires_at)
        assert requested is not None and expires is not None
        return cls(
            approval_id=record.id,
            state=record.state(now),
            tool=record.tool,
            arguments=record.arguments,
            agent_id=record.agent_id,
            requested_by=record.subject,
            thread_id=record.thread,
            trace_id=record.trace_id,
            requested_at=requested,
            expires_at=expires,
            decided_by=record.decided_by,
            decided_at=iso(record.decided_at),
            comment=record.comment,
            result=json.loads(record.result) if record.result is not None else None,
        )

    def request(self) -> ApprovalRequest:
        """The approval object a paused `invoke` answers with (ApprovalRequest.of, from what is shown here)."""
        return ApprovalRequest(
            id=self.approval_id,
            tool=self.tool,
            arguments=self.arguments,
            requested_by=self.requested_by,
            agent_id=self.agent_id,
            expires_at=self.expires_at,
        )


class ApprovalError(ValueError):
    """An approval that cannot be decided or shown to this caller; the message says why."""
