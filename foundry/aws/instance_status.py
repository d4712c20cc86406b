"""What is deployed for one instance, read back through boto3, and one verdict over it.

CloudFormation alone can say UPDATE_COMPLETE while ECS's deployment circuit breaker has rolled the service back to
the previous task definition: the verdict therefore also looks at the service's deployments (a FAILED rollout, or a
primary deployment that runs another task definition than the stack's) and at the load balancer's targets.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory
from foundry.aws.cloudformation import describe_stack, physical_ids, stack_outputs
from foundry.aws.instance_metrics import InstanceMetrics, read_metrics
from foundry.manifests import naming
from foundry.manifests.resolve import ResolvedInstance
from instance_contract.schema import DeploySettings

Verdict = Literal["healthy", "in_progress", "degraded", "failed", "not_deployed", "unknown"]
"""`unknown`: AWS could not be read (no credentials, endpoint unreachable, access denied); `errors` says why."""
InstanceProbe = Callable[[str], Awaitable[dict[str, Any]]]
"""InstanceEndpoint URL -> the instance's own `status` tool result; raises when unreachable."""

RECENT_SERVICE_EVENTS = 5


@dataclass(frozen=True)
class StackState:
    name: str
    status: str
    reason: str | None
    outputs: dict[str, str]
    task_definition: str | None
    """Physical id (ARN) of the stack's AWS::ECS::TaskDefinition: what the service should be running."""


@dataclass(frozen=True)
class DeploymentState:
    id: str
    status: str
    """PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE."""
    rollout_state: str | None
    rollout_state_reason: str | None
    running_count: int
    desired_count: int
    pending_count: int
    failed_tasks: int
    task_definition: str


@dataclass(frozen=True)
class ServiceState:
    cluster: str
    name: str
    status: str
    task_definition: str
    """The service's current task definition (after a rollback: the previous one again)."""
    running_count: int
    desired_count: int
    deployments: list[DeploymentState]
    recent_events: list[str]


@dataclass(frozen=True)
class TargetState:
    id: str
    port: int | None
    state: str
    reason: str | None
    description: str | None


@dataclass(frozen=True)
class AlarmState:
    """One of the instance's CloudWatch alarms (named in the stack's AlarmNames output)."""

    name: str
    state: str
    """OK, ALARM or INSUFFICIENT_DATA."""
    reason: str | None
    updated: str | None
    """When the state last changed (ISO 8601)."""


@dataclass(frozen=True)
class InstanceStatus:
    environment: str
    instance: str
    hostname: str
    stack_name: str
    verdict: Verdict
    reasons: list[str]
    stack: StackState | None = None
    service: ServiceState | None = None
    targets: list[TargetState] = field(default_factory=list)
    instance_endpoint: str | None = None
    instance_status: dict[str, Any] | None = None
    instance_status_error: str | None = None
    errors: list[str] = field(default_factory=list)
    """AWS calls that failed (the verdict is built from what could be read)."""
    alarms: list[AlarmState] = field(default_factory=list)
    alarms_error: str | None = None
    """Why the alarms named in the stack's AlarmNames output could not be read (also listed in `errors`)."""
    metrics: InstanceMetrics | None = None
    """The last hour's figures (only when asked for: the rollout gate reads the alarms alone)."""

    @property
    def alarms_firing(self) -> list[AlarmState]:
        return [alarm for alarm in self.alarms if alarm.state == "ALARM"]


# --- the verdict (pure) ------------------------------------------------------------------------------------


def assess(
    stack: StackState | None,
    service: ServiceState | None,
    targets: list[TargetState],
    alarms: list[AlarmState] | None = None,
) -> tuple[Verdict, list[str]]:
    """Failed beats in-progress beats degraded beats healthy; every reason found is listed."""
    if stack is None:
        return "not_deployed", ["the instance stack does not exist"]
    failed: list[str] = []
    in_progress: list[str] = []
    degraded: list[str] = []

    status = stack.status
    if status.endswith("_FAILED") or "ROLLBACK" in status:
        why = f": {stack.reason}" if stack.reason else ""
        failed.append(f"stack {stack.name} is {status}{why}")
    elif status.endswith("_IN_PROGRESS"):
        in_progress.append(f"stack {stack.name} is {status}")

    if service is None:
        if not status.endswith("_IN_PROGRESS"):
            degraded.append("the ECS service named in the stack outputs was not found")
    else:
        for deployment in service.deployments:
            if deployment.rollout_state == "FAILED":
                failed.append(
                    f"ECS deployment {deployment.id} ({deployment.status}) failed"
                    + (f": {deployment.rollout_state_reason}" if deployment.rollout_state_reason else "")
                )
        primary = next((d for d in service.deployments if d.status == "PRIMARY"), None)
        running = {service.task_definition} | ({primary.task_definition} if primary else set())
        if stack.task_definition and running - {"", stack.task_definition}:
            failed.append(
                f"the service runs {', '.join(sorted(running - {''}))} but the stack deployed "
                f"{stack.task_definition}: the deployment circuit breaker rolled the new task definition back"
            )
        if primary is not None and primary.rollout_state == "IN_PROGRESS":
            in_progress.append(f"ECS deployment {primary.id} is rolling out")
        if len([d for d in service.deployments if d.status in ("PRIMARY", "ACTIVE")]) > 1:
            in_progress.append("an older ECS deployment is still draining")
        if service.running_count < service.desired_count:
            degraded.append(f"{service.running_count} of {service.desired_count} tasks running")

    unhealthy = [t for t in targets if t.state not in ("healthy", "draining")]
    if unhealthy:
        degraded.append(
            "load-balancer targets not healthy: "
            + ", ".join(f"{t.id}:{t.port} {t.state}" + (f" ({t.reason})" if t.reason else "") for t in unhealthy)
        )
    elif service is not None and service.desired_count > 0 and not any(t.state == "healthy" for t in targets):
        degraded.append("no healthy load-balancer target")
    degraded.extend(alarm_reason(alarm) for alarm in alarms or [] if alarm.state == "ALARM")

    if failed:
        return "failed", failed + in_progress + degraded
    if in_progress:
        return "in_progress", in_progress + degraded
    if degraded:
        return "degraded", degraded
    return "healthy", [f"stack {status}, {service.running_count if service else 0} task(s) running, targets healthy"]


def idle_reason(deploy: DeploySettings, service: ServiceState | None) -> str | None:
    """Why a service that wants no task is fine, from the instance's deploy settings: paused, or asleep by its
    off-hours schedule; None when it runs tasks (or wants some), so "healthy, 0 tasks" never reads like an outage
    or hides one."""
    if service is None or service.desired_count > 0:
        return None
    if deploy.state == "paused":
        return (
            "paused (deploy state: paused): no task runs and its host rule answers 503; its data, secrets, logs "
            "and DNS name are kept"
        )
    if deploy.schedule is not None:
        schedule = deploy.schedule
        return (
            f"asleep: its off-hours schedule scaled it to 0 tasks (stop {schedule.stop}, start {schedule.start}, "
            f"{schedule.time_zone})"
        )
    return None


def alarm_reason(alarm: AlarmState) -> str:
    return f"alarm {alarm.name} is ALARM" + (f": {alarm.reason}" if alarm.reason else "")


# --- reading AWS (edges) -----------------------------------------------------------------------------------


def read_stack(cloudformation: Any, stack_name: str) -> StackState | None:
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        return None
    outputs = stack_outputs(stack)
    task_definitions = physical_ids(cloudformation, stack_name, "AWS::ECS::TaskDefinition")
    return StackState(
        name=stack_name,
        status=stack["StackStatus"],
        reason=stack.get("StackStatusReason"),
        outputs=outputs,
        task_definition=task_definitions[0] if len(task_definitions) == 1 else None,
    )


def read_service(ecs: Any, cluster: str, service_name: str) -> ServiceState | None:
    services = ecs.describe_services(cluster=cluster, services=[service_name]).get("services", [])
    if not services:
        return None
    service = services[0]
    deployments = [
        DeploymentState(
            id=d["id"],
            status=d["status"],
            rollout_state=d.get("rolloutState"),
            rollout_state_reason=d.get("rolloutStateReason"),
            running_count=int(d.get("runningCount", 0)),
            desired_count=int(d.get("desiredCount", 0)),
            pending_count=int(d.get("pendingCount", 0)),
            failed_tasks=int(d.get("failedTasks", 0)),
            task_definition=d.get("taskDefinition", ""),
        )
        for d in service.get("deployments", [])
    ]
    events = [str(e.get("message", "")) for e in service.get("events", [])[:RECENT_SERVICE_EVENTS]]
    return ServiceState(
        cluster=cluster,
        name=service.get("serviceName", service_name),
        status=service.get("status", ""),
        task_definition=service.get("taskDefinition", ""),
        running_count=int(service.get("runningCount", 0)),
        desired_count=int(service.get("desiredCount", 0)),
        deployments=deployments,
        recent_events=events,
    )


def read_targets(elbv2: Any, target_group_arn: str) -> list[TargetState]:
    descriptions = elbv2.describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
    return [
        TargetState(
            id=d["Target"]["Id"],
            port=d["Target"].get("Port"),
            state=d.get("TargetHealth", {}).get("State", "unknown"),
            reason=d.get("TargetHealth", {}).get("Reason"),
            description=d.get("TargetHealth", {}).get("Description"),
        )
        for d in descriptions
    ]


def read_alarms(cloudwatch: Any, names: list[str]) -> list[AlarmState]:
    """The named metric alarms, in the order named (an alarm not found is left out)."""
    if not names:
        return []
    found = cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"]).get("MetricAlarms", [])
    by_name = {alarm["AlarmName"]: alarm for alarm in found}
    return [
        AlarmState(
            name=name,
            state=by_name[name].get("StateValue", "INSUFFICIENT_DATA"),
            reason=by_name[name].get("StateReason"),
            updated=_iso(by_name[name].get("StateUpdatedTimestamp")),
        )
        for name in names
        if name in by_name
    ]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime.datetime) else (str(value) if value else None)


def _aws_error(what: str, exc: Exception) -> str:
    return f"{what}: {exc}"


@dataclass
class Deployed:
    stack: StackState | None
    service: ServiceState | None = None
    targets: list[TargetState] = field(default_factory=list)
    alarms: list[AlarmState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    alarms_error: str | None = None


def read_deployed(instance: ResolvedInstance, region: str, clients: ClientFactory) -> Deployed:
    """Synchronous boto3 reads; a failing call is recorded in the errors list, not raised."""
    stack_name = naming.instance_stack_name(instance.environment, instance.key)
    errors: list[str] = []
    try:
        stack = read_stack(clients("cloudformation", region), stack_name)
    except (ClientError, BotoCoreError) as exc:
        return Deployed(None, errors=[_aws_error("cloudformation.describe_stacks", exc)])
    if stack is None:
        return Deployed(None)
    service: ServiceState | None = None
    targets: list[TargetState] = []
    cluster, service_name = stack.outputs.get("ClusterName"), stack.outputs.get("ServiceName")
    if cluster and service_name:
        try:
            service = read_service(clients("ecs", region), cluster, service_name)
        except (ClientError, BotoCoreError) as exc:
            errors.append(_aws_error("ecs.describe_services", exc))
    else:
        errors.append("the stack has no ClusterName/ServiceName outputs")
    target_group = stack.outputs.get("TargetGroupArn")
    if target_group:
        try:
            targets = read_targets(clients("elbv2", region), target_group)
        except (ClientError, BotoCoreError) as exc:
            errors.append(_aws_error("elbv2.describe_target_health", exc))
    alarms: list[AlarmState] = []
    alarms_error: str | None = None
    alarm_names = [name for name in stack.outputs.get("AlarmNames", "").split(",") if name]
    if alarm_names:
        try:
            alarms = read_alarms(clients("cloudwatch", region), alarm_names)
        except (ClientError, BotoCoreError) as exc:
            alarms_error = _aws_error("cloudwatch.describe_alarms", exc)
            errors.append(alarms_error)
    return Deployed(stack, service, targets, alarms, errors, alarms_error)


async def instance_status(
    instance: ResolvedInstance,
    *,
    region: str,
    clients: ClientFactory,
    probe: InstanceProbe | None,
    with_metrics: bool = False,
) -> InstanceStatus:
    """`with_metrics`: also the last hour's figures from CloudWatch (GetMetricData)."""
    deployed = await asyncio.to_thread(read_deployed, instance, region, clients)
    stack, service, targets, errors = deployed.stack, deployed.service, deployed.targets, deployed.errors
    verdict, reasons = assess(stack, service, targets, deployed.alarms)
    if verdict == "healthy" and (idle := idle_reason(instance.manifest.spec.deploy, service)) is not None:
        reasons = [idle, *reasons]
    metrics: InstanceMetrics | None = None
    if with_metrics and stack is not None:
        try:
            metrics = await asyncio.to_thread(read_metrics, clients("cloudwatch", region), instance)
        except (ClientError, BotoCoreError) as exc:
            errors = [*errors, _aws_error("cloudwatch.get_metric_data", exc)]
    if errors and stack is None:
        verdict, reasons = "unknown", ["the stack could not be read, so whether it is deployed is unknown", *errors]
    endpoint = stack.outputs.get("InstanceEndpoint") if stack else None
    own_status: dict[str, Any] | None = None
    own_error: str | None = None
    if endpoint and probe is not None:
        try:
            own_status = await probe(endpoint)
        except Exception as exc:  # any failure to reach it is a fact to report, not an error of this tool
            own_error = "; ".join(
                f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in exception_leaves(exc)
            )
    elif stack is not None and not endpoint:
        own_error = "the stack has no InstanceEndpoint output"
    return InstanceStatus(
        environment=instance.environment,
        instance=instance.key.selector,
        hostname=instance.manifest.spec.hostname,
        stack_name=naming.instance_stack_name(instance.environment, instance.key),
        verdict=verdict,
        reasons=reasons,
        stack=stack,
        service=service,
        targets=targets,
        instance_endpoint=endpoint,
        instance_status=own_status,
        instance_status_error=own_error,
        errors=errors,
        alarms=deployed.alarms,
        alarms_error=deployed.alarms_error,
        metrics=metrics,
    )


def exception_leaves(error: BaseException) -> list[BaseException]:
    """The real causes inside (nested) exception groups, which the SDK's task groups wrap errors in."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in exception_leaves(inner)]
    return [error]


async def probe_instance_mcp(endpoint: str, timeout_seconds: float = 5.0) -> dict[str, Any]:
    """Calls the instance's own `status` tool over streamable HTTP. An instance that checks its callers' tokens
    refuses the Foundry, which holds no tenant's token: then its RFC 9728 metadata (open, and forwarded by the
    load balancer) shows that the runtime answers, and the result says the status tool needs a read-scoped token."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    challenges: list[str] = []

    async def note_challenge(response: httpx2.Response) -> None:
        if response.status_code == 401:
            challenges.append(response.headers.get("www-authenticate", ""))

    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds), event_hooks={"response": [note_challenge]}
    ) as http:
        try:
            async with (
                asyncio.timeout(timeout_seconds * 2),
                Client(streamable_http_client(endpoint, http_client=http), read_timeout_seconds=timeout_seconds) as c,
            ):
                result = await c.call_tool("status", {})
        except Exception:
            if not challenges:
                raise
            return await _protected_resource(http, endpoint, challenges[-1])
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"the instance's status tool returned an error: {text}")
    if isinstance(result.structured_content, dict):
        return result.structured_content
    return {"text": " ".join(getattr(c, "text", "") for c in result.content)}


_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


async def _protected_resource(http: Any, endpoint: str, challenge: str) -> dict[str, Any]:
    """What a secured instance tells anyone: its RFC 9728 metadata, named by its 401 challenge. Fetched from the
    endpoint the Foundry reached (the metadata's path on the same origin), not the public name in the challenge."""
    found = _RESOURCE_METADATA.search(challenge)
    if found is None:
        raise RuntimeError(f"the instance refused the call (401) without naming its resource metadata: {challenge!r}")
    url = urljoin(endpoint, urlsplit(found[1]).path)
    response = await http.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"the instance refused the call (401); its metadata {url} gave {response.status_code}")
    metadata = response.json()
    return {
        "auth_required": True,
        "resource": metadata.get("resource"),
        "authorization_servers": metadata.get("authorization_servers", []),
        "note": "the runtime answers; its status tool needs a token with the agentfoundry/read scope",
    }
