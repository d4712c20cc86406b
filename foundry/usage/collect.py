"""Asking the instances: for each one, where it answers (its stack's InstanceEndpoint output, or an endpoint the
operator names for a locally served instance), its `usage` tool's answer for the window, and its compute hours
(CloudWatch, else an estimate). An instance that does not answer is a row that says so; nothing here raises for
one instance's failure."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory
from foundry.aws.cloudformation import describe_stack, stack_outputs
from foundry.aws.running_tasks import hourly_running_tasks
from foundry.deploy.subject_data import InstanceAnsweredError, SubjectDataRefusedError, call_instance_tool
from foundry.fleet.model import Fleet
from foundry.manifests import naming
from foundry.manifests.platform_settings import EnvironmentSettings, PricingSettings
from foundry.manifests.resolve import ResolvedInstance
from foundry.usage.cost import estimated_compute, measured_compute, model_cost, no_compute, token_cost, totals
from foundry.usage.model import ComputeUsage, EnvironmentUsage, InstanceUsage, RowStatus
from instance_contract.usage import UsageReport, UsageWindow

USAGE_TOOL = "usage"
CALL_TIMEOUT_SECONDS = 20.0
CONCURRENCY = 8
"""Instances asked at once."""
DEFAULT_TOKEN_KEY = "*"  # noqa: S105 - the token file's key for every other instance, not a secret


@dataclass(frozen=True)
class UsageAsk:
    """How to reach the instances: tokens by ORG/DOMAIN/INSTANCE (`*` for every other one) and endpoints that
    replace a stack's InstanceEndpoint (locally served instances)."""

    tokens: Mapping[str, str] = field(default_factory=dict)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)

    def token_for(self, selector: str) -> str | None:
        return self.tokens.get(selector) or self.tokens.get(DEFAULT_TOKEN_KEY)


async def environment_usage(
    fleet: Fleet,
    environment: str,
    window: UsageWindow,
    ask: UsageAsk,
    clients: ClientFactory,
    *,
    instance: str | None = None,
) -> EnvironmentUsage:
    """Every instance of `environment` (or the one selected), asked side by side, in sorted order."""
    spec = fleet.tree.platform.model.spec
    settings, pricing = spec.environments[environment], spec.pricing
    chosen = sorted(
        (i for i in fleet.instances if i.environment == environment and instance in (None, i.key.selector)),
        key=lambda i: i.key.selector,
    )
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(resolved: ResolvedInstance) -> InstanceUsage:
        async with limit:
            return await instance_usage(resolved, window, ask, clients, settings=settings, pricing=pricing)

    rows = list(await asyncio.gather(*(one(i) for i in chosen)))
    return EnvironmentUsage(
        environment=environment,
        since=window.since,
        until=window.until,
        pricing_taken=pricing.taken,
        instances=rows,
        totals=totals(rows),
        partial=any(r.status != "ok" for r in rows),
    )


async def instance_usage(
    resolved: ResolvedInstance,
    window: UsageWindow,
    ask: UsageAsk,
    clients: ClientFactory,
    *,
    settings: EnvironmentSettings,
    pricing: PricingSettings,
) -> InstanceUsage:
    selector = resolved.key.selector
    stack_name = naming.instance_stack_name(resolved.environment, resolved.key)
    outputs, stack_error = await asyncio.to_thread(_stack_outputs, stack_name, settings.region, clients)
    endpoint = ask.endpoints.get(selector) or (outputs.get("InstanceEndpoint") if outputs is not None else None)
    compute = await asyncio.to_thread(_compute, resolved, outputs, stack_error, window, ask, clients, settings, pricing)
    status: RowStatus
    error: str | None = None
    report: UsageReport | None = None
    if endpoint is None:
        if stack_error is not None:
            status, error = "unreachable", f"where it answers is unknown: {stack_error}"
        elif outputs is None:
            status, error = "not_deployed", f"no stack {stack_name}"
        else:
            status, error = "unreachable", f"stack {stack_name} has no InstanceEndpoint output"
    else:
        token = None if settings.auth.mode == "none" else ask.token_for(selector)
        arguments = {"since": window.since.isoformat(), "until": window.until.isoformat()}
        try:
            answer = await call_instance_tool(
                endpoint, USAGE_TOOL, arguments, token, timeout_seconds=CALL_TIMEOUT_SECONDS
            )
            report = UsageReport.model_validate(answer)
            status = "ok"
        except InstanceAnsweredError as exc:
            hint = "" if token or settings.auth.mode == "none" else " (no token was given for this instance)"
            status, error = "refused", f"{exc}{hint}"
        except SubjectDataRefusedError as exc:
            status, error = "unreachable", str(exc)
        except ValueError as exc:  # an answer that is not a usage report (an older runtime)
            status, error = "refused", f"the instance's usage answer is not a usage report: {exc}"[:500]
    models = [model_cost(m, pricing) for m in report.models] if report else []
    tokens = token_cost(models) if report else None
    return InstanceUsage(
        environment=resolved.environment,
        instance=selector,
        status=status,
        error=error,
        endpoint=endpoint,
        usage=report,
        models=models,
        compute=compute,
        token_cost=tokens,
        total_cost=None if tokens is None else tokens + compute.cost,
    )


def _stack_outputs(stack_name: str, region: str, clients: ClientFactory) -> tuple[dict[str, str] | None, str | None]:
    """The instance stack's outputs (None: no stack), or why CloudFormation could not be read."""
    try:
        stack = describe_stack(clients("cloudformation", region), stack_name)
        return (stack_outputs(stack) if stack is not None else None), None
    except (ClientError, BotoCoreError) as exc:
        return None, f"cloudformation.describe_stacks: {exc}"


def _compute(
    resolved: ResolvedInstance,
    outputs: dict[str, str] | None,
    stack_error: str | None,
    window: UsageWindow,
    ask: UsageAsk,
    clients: ClientFactory,
    settings: EnvironmentSettings,
    pricing: PricingSettings,
) -> ComputeUsage:
    deploy = resolved.manifest.spec.deploy
    now = ask.now()

    def estimate(why: str) -> ComputeUsage:
        return estimated_compute(
            deploy, settings.capacity, pricing, since=window.since, until=window.until, now=now, why=why
        )

    if outputs is None:
        if stack_error is not None:
            return estimate("AWS could not be read")
        if resolved.key.selector in ask.endpoints:
            return estimate("no stack: a locally served instance")
        return no_compute("not deployed")
    cluster, service = outputs.get("ClusterName"), outputs.get("ServiceName")
    if not cluster or not service:
        return estimate("the stack has no ClusterName/ServiceName outputs")
    end = min(window.until, now)
    if end <= window.since:
        return measured_compute([], deploy, settings.capacity, pricing, "the window has not started")
    try:
        hourly = hourly_running_tasks(
            clients("cloudwatch", settings.region), cluster=cluster, service=service, since=window.since, until=end
        )
    except (ClientError, BotoCoreError) as exc:
        return estimate(f"cloudwatch.get_metric_data: {exc}"[:300])
    if not hourly:
        return estimate("no Container Insights data for the service")
    note = f"ECS Container Insights RunningTaskCount, {len(hourly)} hour(s) with data"
    return measured_compute(hourly, deploy, settings.capacity, pricing, note)
