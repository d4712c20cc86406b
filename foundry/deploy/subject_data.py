"""Data-subject requests carried to an instance: the Foundry finds the instance's endpoint (its stack's
`InstanceEndpoint` output, as `foundry.get_instance_status` does) and calls the instance's own MCP tool
(`export_subject_data` or `erase_subject_data`) with the operator's token. It never reads or writes the instance's
table: the instance owns its data, and its tools are the only way in (agentfoundry/admin scope).

The token is the operator's own, for that instance (its organization and audience, with agentfoundry/admin): the
Foundry passes it through on this one call and keeps it nowhere.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel

from foundry.aws.clients import ClientFactory
from foundry.aws.cloudformation import describe_stack, stack_outputs
from foundry.aws.instance_status import exception_leaves
from foundry.manifests import naming
from foundry.manifests.resolve import ResolvedInstance

SubjectAction = Literal["export", "erase"]
INSTANCE_TOOLS: dict[SubjectAction, str] = {"export": "export_subject_data", "erase": "erase_subject_data"}
CALL_TIMEOUT_SECONDS = 60.0


class SubjectDataRefusedError(RuntimeError):
    """The request could not be carried out; the message says by whom (the instance's own words) and why."""


class InstanceAnsweredError(SubjectDataRefusedError):
    """The instance was reached and refused: HTTP 401/403 (token) or its tool answered with an error."""


class SubjectThreadData(BaseModel):
    thread_id: str | None
    last_active: float
    messages: list[dict[str, str]]


class SubjectDataReport(BaseModel):
    """What the instance answered: the subject's threads (export) or how many threads it erased (erase)."""

    environment: str
    instance: str
    instance_endpoint: str
    organization: str
    subject: str
    thread_id: str | None
    threads: list[SubjectThreadData] = []
    erased: int | None = None


def instance_endpoint(instance: ResolvedInstance, *, region: str, clients: ClientFactory) -> str:
    stack_name = naming.instance_stack_name(instance.environment, instance.key)
    stack = describe_stack(clients("cloudformation", region), stack_name)
    if stack is None:
        raise SubjectDataRefusedError(f"instance {instance.key.selector} is not deployed (no stack {stack_name})")
    endpoint = stack_outputs(stack).get("InstanceEndpoint")
    if not endpoint:
        raise SubjectDataRefusedError(f"stack {stack_name} has no InstanceEndpoint output to reach the instance by")
    return str(endpoint)


async def call_instance_tool(
    endpoint: str,
    tool: str,
    arguments: dict[str, Any],
    token: str | None,
    *,
    timeout_seconds: float = CALL_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """One call of the instance's MCP tool over streamable HTTP, presenting the operator's bearer token (none for
    an instance that checks no tokens)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    refusals: list[str] = []

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code in (401, 403):
            refusals.append(f"HTTP {response.status_code} {response.headers.get('www-authenticate', '')}".strip())

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(timeout_seconds), event_hooks={"response": [note_refusal]}
    ) as http:
        try:
            async with (
                asyncio.timeout(timeout_seconds * 2),
                Client(streamable_http_client(endpoint, http_client=http)) as client,
            ):
                result = await client.call_tool(tool, arguments)
        except Exception as exc:
            why = refusals[-1] if refusals else "; ".join(f"{type(e).__name__}: {e}" for e in exception_leaves(exc))
            message = f"the instance at {endpoint} refused or could not answer {tool}: {why}"
            raise (InstanceAnsweredError if refusals else SubjectDataRefusedError)(message) from exc
    if result.is_error or not isinstance(result.structured_content, dict):
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise InstanceAnsweredError(f"the instance's {tool} tool answered: {text}")
    return result.structured_content


async def subject_data(
    instance: ResolvedInstance,
    action: SubjectAction,
    *,
    subject: str,
    thread_id: str | None,
    token: str,
    region: str,
    clients: ClientFactory,
) -> SubjectDataReport:
    endpoint = await asyncio.to_thread(instance_endpoint, instance, region=region, clients=clients)
    arguments: dict[str, Any] = {"subject": subject}
    if thread_id is not None:
        arguments["thread_id"] = thread_id
    answer = await call_instance_tool(endpoint, INSTANCE_TOOLS[action], arguments, token)
    return SubjectDataReport(
        environment=instance.environment, instance=instance.key.selector, instance_endpoint=endpoint, **answer
    )
