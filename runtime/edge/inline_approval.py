"""Approval asked inline, in the `invoke` call that paused, for a client that can ask its user (MCP elicitation).

- 2026-07-28 clients (the stateless per-request protocol): `invoke` answers with an `InputRequiredResult` holding
  one form elicitation ("approve or reject, and why") and the approval's id as `request_state`; the client asks its
  user and retries the call with the answer, and the retry decides the approval and answers with the resumed
  turn's final result. No server keeps anything between the two rounds but the store: any task can take the retry.
- 2025-11-25 clients: `ctx.elicit` on the request's own stream. Over stdio that is the process's pipe; over HTTP
  such a client has a session (runtime.edge.sessions_http: its answer, a separate POST, reaches this turn through
  the session, which the load balancer keeps on this task). Where no session carries the request (the SDK raises
  NoBackChannelError), the client gets the approval object. The wait ends when the approval expires.

The decision is the requester's own (decided_by: the caller's subject) and goes through the same conditional write
as `approve`. A client that declares no elicitation capability gets the approval object, as does a user who
dismisses the question (`cancel`); `decline` rejects the call.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Literal

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import NoBackChannelError
from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from runtime.approvals.policy import ApprovalError, ApprovalRequest
from runtime.auth import ANONYMOUS_SUBJECT, Caller
from runtime.instance import Instance, InvokeResult

QUESTION = "approval"
"""The key of the one input request."""
STATE_PREFIX = "af-approval:v1:"
INPUT_REQUIRED_VERSION = "2026-07-28"


class InlineDecision(BaseModel):
    """The form the client shows its user."""

    decision: Literal["approve", "reject"] = Field(description="approve: the call is made; reject: it is not")
    comment: str | None = Field(default=None, description="Why (kept with the thread)")


def question(approval: ApprovalRequest) -> str:
    return (
        f"{approval.agent_id} wants to call {approval.tool} with {approval.arguments}. Approve or reject the call "
        f"(this question expires at {approval.expires_at})."
    )


def can_ask(ctx: Context[Any, Any] | None) -> bool:
    """The client declared form elicitation (a bare `elicitation: {}` counts as form)."""
    if ctx is None or ctx.protocol_version is None:
        return False
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def asks_by_result(ctx: Context[Any, Any]) -> bool:
    """2026-07-28 and later: the question rides an InputRequiredResult."""
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)


def ask(approval: ApprovalRequest) -> InputRequiredResult:
    schema = InlineDecision.model_json_schema()
    schema["properties"]["comment"] = {"type": "string", "description": "Why (kept with the thread)"}
    params = ElicitRequestFormParams(message=question(approval), requested_schema=schema)
    return InputRequiredResult(
        input_requests={QUESTION: ElicitRequest(params=params)}, request_state=STATE_PREFIX + approval.id
    )


def answered(ctx: Context[Any, Any] | None) -> tuple[str, ElicitResult] | None:
    """On the retry of an `invoke` that asked: the approval's id and the user's answer."""
    state = ctx.request_state if ctx is not None else None
    if ctx is None or state is None or not state.startswith(STATE_PREFIX):
        return None
    response = (ctx.input_responses or {}).get(QUESTION)
    if not isinstance(response, ElicitResult):
        raise ApprovalError("the retried invoke carries no answer to its approval question; answer it or call again")
    return state.removeprefix(STATE_PREFIX), response


async def elicit(ctx: Context[Any, Any], approval: ApprovalRequest) -> ElicitResult | None:
    """Asks on the request's own stream (2025-11-25); None where the transport cannot send a request, or when the
    approval expires unanswered."""
    wait = (datetime.datetime.fromisoformat(approval.expires_at) - datetime.datetime.now(datetime.UTC)).total_seconds()
    try:
        async with asyncio.timeout(max(wait, 0.0)):
            outcome = await ctx.elicit(question(approval), InlineDecision)
    except (NoBackChannelError, TimeoutError):
        return None
    if outcome.action != "accept":
        return ElicitResult(action=outcome.action)
    data = outcome.data
    return ElicitResult(action="accept", content={"decision": data.decision, "comment": data.comment})


def decision_of(response: ElicitResult) -> tuple[Literal["approve", "reject"], str | None] | None:
    """accept -> the form's decision; decline -> reject; cancel -> None (the approval stays pending)."""
    if response.action == "cancel":
        return None
    if response.action == "decline":
        return "reject", "declined when asked inline"
    try:
        form = InlineDecision.model_validate(response.content or {})
    except ValueError:
        raise ApprovalError("the approval answer needs decision: approve or reject") from None
    return form.decision, form.comment


async def settle(instance: Instance, approval_id: str, response: ElicitResult, caller: Caller | None) -> InvokeResult:
    """The requester's answer: decided (the resumed turn's result, or the first decision's) or, dismissed, the
    paused turn's approval again."""
    shown = await instance.get_approval(approval_id, caller)
    if shown.requested_by != (caller.subject if caller is not None else ANONYMOUS_SUBJECT):
        raise ApprovalError(f"approval {approval_id} was not asked of you inline; use approve")
    chosen = decision_of(response)
    if chosen is not None:
        shown = await instance.approve(approval_id, chosen[0], chosen[1], caller)
    if shown.result is not None:
        return InvokeResult.model_validate(shown.result)
    return InvokeResult(
        ok=True, answer=None, error=None, thread_id=shown.thread_id, trace_id=shown.trace_id,
        agents=[], workers=[], trace=[], total_ms=0.0, approval=shown.request(),
    )  # fmt: skip


async def invoke_asking(
    instance: Instance, message: str, thread_id: str | None, caller: Caller | None, ctx: Context[Any, Any] | None
) -> InvokeResult | InputRequiredResult:
    """`invoke`, asking a paused turn's approval inline where the client can ask its user."""
    retry = answered(ctx) if instance.approval_policy.active else None
    if retry is not None:
        result = await settle(instance, retry[0], retry[1], caller)
    else:
        result = await instance.invoke(message, thread_id, caller)
    while result.approval is not None and ctx is not None and can_ask(ctx):
        if asks_by_result(ctx):
            return ask(result.approval)
        response = await elicit(ctx, result.approval)
        if response is None or response.action == "cancel":
            break
        result = await settle(instance, result.approval.id, response, caller)
    return result
