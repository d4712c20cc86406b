"""Governance: the input policy from the governance agent's spec, enforced before any other agent runs."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from instance_contract.schema import DNS_LABEL_PATTERN, GovernancePolicy, RequestLimits
from runtime.state import ErrorInfo, PipelineState

THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
TENANT_ID = re.compile(DNS_LABEL_PATTERN)
ALLOWED_CONTROL = {"\n", "\r", "\t"}


@dataclass(frozen=True)
class InputPolicy:
    max_input_chars: int
    blocked: tuple[tuple[str, re.Pattern[str]], ...]
    blocked_tenants: frozenset[str]

    @classmethod
    def from_spec(cls, policy: GovernancePolicy | None, limits: RequestLimits) -> InputPolicy:
        """The instance's input limit, or the policy's own if it is stricter (validation refuses a looser one;
        taking the smaller here keeps governance and the backend memory in agreement whatever the bundle says)."""
        policy = policy or GovernancePolicy()
        own = policy.max_input_chars
        return cls(
            max_input_chars=limits.max_input_chars if own is None else min(own, limits.max_input_chars),
            blocked=tuple((p, re.compile(p)) for p in policy.blocked_patterns),
            blocked_tenants=frozenset(policy.blocked_tenants),
        )


def check_input(policy: InputPolicy, *, message: str, thread_id: str, tenant: str | None) -> tuple[str, str] | None:
    """(code, reason) for the first rule the request breaks, or None. Reasons never echo the blocked text."""
    if not message.strip():
        return "malformed_input", "message is empty"
    if any(unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROL for c in message):
        return "malformed_input", "message contains control characters"
    if not THREAD_ID.fullmatch(thread_id):
        return "malformed_input", "thread_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"
    if tenant is not None and not TENANT_ID.fullmatch(tenant):
        return "malformed_input", "tenant must be a DNS label (lower-case letters, digits and '-')"
    if len(message) > policy.max_input_chars:
        return "input_too_large", f"message has {len(message)} characters; the limit is {policy.max_input_chars}"
    if tenant is not None and tenant in policy.blocked_tenants:
        return "blocked_tenant", f"tenant {tenant!r} is not allowed on this instance"
    for index, (_, pattern) in enumerate(policy.blocked):
        if pattern.search(message):
            return "blocked_content", f"message matches blocked pattern #{index + 1} of the input policy"
    return None


class GovernanceAgent:
    def __init__(self, *, agent_id: str, policy: InputPolicy) -> None:
        self.agent_id = agent_id
        self.policy = policy

    async def __call__(self, state: PipelineState) -> PipelineState:
        broken = check_input(
            self.policy, message=state["message"], thread_id=state["thread_id"], tenant=state.get("tenant")
        )
        if broken is None:
            return {"rejection": None}
        code, reason = broken
        rejection: ErrorInfo = {"code": code, "message": reason, "node": "governance", "agent_id": self.agent_id}
        return {"rejection": rejection}
