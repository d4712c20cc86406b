"""What CloudFormation says of one stack: whether it exists, its status, its deployed template, and the first
resource it could not create or update. The one place that recognises CloudFormation's "does not exist" answer.

Synchronous boto3 calls on a client from `foundry.aws.clients`; async callers run them in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory

CANCELLED_REASONS = ("Resource creation cancelled", "Resource update cancelled")
"""CloudFormation's follow-up on resources it stopped because another one failed: never the cause."""
EVENT_CLOCK_SLACK_SECONDS = 5
"""Events up to this long before the deploy started still count as its own (clocks differ a little)."""


@dataclass(frozen=True)
class Failure:
    """The first resource CloudFormation could not create/update, and why (its own words)."""

    stack: str | None
    logical_id: str | None
    resource_type: str | None
    status: str | None
    reason: str

    @classmethod
    def of_command(cls, reason: str) -> Failure:
        """A failure no resource is named for (cdk itself failed or was stopped)."""
        return cls(stack=None, logical_id=None, resource_type=None, status=None, reason=reason)


FailureLookup = Callable[[str, str, float], Awaitable[Failure | None]]
"""(stack name, region, deploy start as epoch seconds) -> the first failed resource CloudFormation recorded."""


def is_missing_stack(exc: ClientError) -> bool:
    """CloudFormation's way of saying a stack does not exist: a ValidationError, not a 404."""
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", ""))


def describe_stack(cloudformation: Any, stack_name: str) -> Mapping[str, Any] | None:
    """The stack as `describe_stacks` returns it, or None when it does not exist. Other errors propagate."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if is_missing_stack(exc):
            return None
        raise
    return stacks[0] if stacks else None


def stack_outputs(stack: Mapping[str, Any] | None) -> dict[str, str]:
    """A described stack's outputs by key (none for a stack that does not exist)."""
    return {o["OutputKey"]: str(o.get("OutputValue", "")) for o in (stack or {}).get("Outputs", [])}


def read_stack_status(cloudformation: Any, stack_name: str) -> str | None:
    """The stack's status, or None when CloudFormation says it does not exist. Other errors propagate."""
    stack = describe_stack(cloudformation, stack_name)
    return str(stack["StackStatus"]) if stack is not None else None


def physical_ids(cloudformation: Any, stack_name: str, resource_type: str) -> list[str]:
    """The physical ids of the stack's resources of `resource_type` (the stack must exist); one CloudFormation is
    still creating has none yet and is left out."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    return [
        str(r["PhysicalResourceId"])
        for r in resources
        if r.get("ResourceType") == resource_type and r.get("PhysicalResourceId")
    ]


def in_progress(status: str | None) -> bool:
    """CloudFormation is working on the stack right now (a create, update, delete or their rollback)."""
    return status is not None and status.endswith("_IN_PROGRESS")


def read_deployed_template(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    """The template as it was deployed (not CloudFormation's processed form)."""
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    parsed = json.loads(body) if isinstance(body, str) else body  # boto3 decodes JSON bodies itself
    return dict(parsed)


def first_failure_since(cloudformation: Any, stack_name: str, since: float) -> Failure | None:
    """The oldest *_FAILED event of the stack since `since` (epoch seconds), 'cancelled' ones last; None if there
    is none or the events cannot be read."""
    try:
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    except (ClientError, BotoCoreError):
        return None
    failed = [
        e
        for e in reversed(events)  # the API lists newest first
        if str(e.get("ResourceStatus", "")).endswith("_FAILED")
        and e["Timestamp"].timestamp() >= since - EVENT_CLOCK_SLACK_SECONDS
    ]
    failed.sort(key=lambda e: any(str(e.get("ResourceStatusReason", "")).startswith(c) for c in CANCELLED_REASONS))
    if not failed:
        return None
    event = failed[0]
    return Failure(
        stack=stack_name,
        logical_id=event.get("LogicalResourceId"),
        resource_type=event.get("ResourceType"),
        status=event.get("ResourceStatus"),
        reason=str(event.get("ResourceStatusReason", "")),
    )


def stack_events_failure(clients: ClientFactory) -> FailureLookup:
    """A FailureLookup over `clients`: `first_failure_since` in a worker thread."""

    def lookup(stack_name: str, region: str, since: float) -> Failure | None:
        try:
            cloudformation = clients("cloudformation", region)
        except (ClientError, BotoCoreError):
            return None
        return first_failure_since(cloudformation, stack_name, since)

    async def run(stack_name: str, region: str, since: float) -> Failure | None:
        return await asyncio.to_thread(lookup, stack_name, region, since)

    return run


INSTANCE_TAGS = ("agentfoundry:organization", "agentfoundry:domain", "agentfoundry:instance")
"""The stack tags every instance stack carries (stacks/instance_stack.py's instance_tags), with
`agentfoundry:environment`."""
GONE_STATUSES = frozenset({"DELETE_COMPLETE"})


def instance_stacks(cloudformation: Any, environment: str) -> dict[str, str]:
    """ORG/DOMAIN/INSTANCE -> stack name of every instance stack of `environment` in the client's account and region,
    found by their tags (an instance that left the manifests is still found)."""
    found: dict[str, str] = {}
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if stack.get("StackStatus") in GONE_STATUSES:
                continue
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            if tags.get("agentfoundry:environment") != environment or not all(t in tags for t in INSTANCE_TAGS):
                continue
            found["/".join(tags[t] for t in INSTANCE_TAGS)] = str(stack["StackName"])
    return dict(sorted(found.items()))
