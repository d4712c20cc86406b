"""The typed state that flows through the instance graph, and the records nodes add to it.

Fields written by parallel workers (and by every node, for the trace) carry a reducer, so concurrent partial
updates are merged instead of overwriting each other.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict


class ErrorInfo(TypedDict):
    """What the caller sees when a request does not produce an answer."""

    code: str
    message: str
    node: str
    agent_id: str


class Failure(TypedDict):
    """What went wrong inside a node; logged with the trace id, summarised for the caller by the exception agent."""

    node: str
    agent_id: str
    error_type: str
    detail: str


class TraceEntry(TypedDict):
    node: str
    agent_id: str
    ms: float
    status: Literal["ok", "rejected", "error"]


class ToolCallTrace(TypedDict):
    """One external tool call of a worker: arguments only when the runtime runs with LOG_LEVEL=DEBUG (they may
    hold personal data)."""

    agent_id: str
    server: str
    tool: str
    ms: float
    status: Literal["ok", "error", "refused", "unknown"]
    """refused: the approver rejected the call (runtime.approvals.policy), so it was not made. unknown: an approved
    call that an earlier run of the turn began and never finished; not made again."""
    arguments: dict[str, Any] | None
    approval_id: str | None
    """The approval that decided the call, when it needed one."""


class HistoryMessage(TypedDict):
    role: str
    content: str


class WorkerOutput(TypedDict):
    agent_id: str
    text: str


class PipelineState(TypedDict, total=False):
    # request (set by the caller, normalised by io)
    message: str
    thread_id: str
    tenant: str | None
    trace_id: str
    # governance
    rejection: ErrorInfo | None
    # context
    history: list[HistoryMessage]
    context: dict[str, Any]
    # supervisor -> workers -> coherence
    routes: list[str]
    outputs: Annotated[list[WorkerOutput], operator.add]
    answer: str | None
    # failures and their public form
    failures: Annotated[list[Failure], operator.add]
    error: ErrorInfo | None
    # observability
    trace: Annotated[list[TraceEntry], operator.add]
    tool_calls: Annotated[list[ToolCallTrace], operator.add]
    summary: dict[str, Any]
    # set by the runtime (never a node) on a turn that paused for approval: runtime.paused_turns
    approvals: list[dict[str, Any]]


class WorkerTask(TypedDict):
    """What the supervisor sends each selected worker (LangGraph `Send` payload)."""

    message: str
    thread_id: str
    trace_id: str
    history: list[HistoryMessage]
    context: dict[str, Any]
