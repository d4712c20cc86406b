"""Pricing an instance's usage (pure): tokens times the model's prices, and task-hours of its size times the
Fargate prices of its environment's capacity. A model without a price is unknown, never 0; the offline provider
calls no model and costs nothing."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from foundry.manifests.platform_settings import PricingSettings
from foundry.plan.compute_cost import tasks_hour_price
from foundry.plan.running_hours import HOURS_PER_MONTH, running_hours_per_month
from foundry.usage.model import ComputeUsage, InstanceUsage, ModelCost, UsageTotals
from instance_contract.schema import DeploySettings
from instance_contract.usage import ModelUsage

FREE_PROVIDERS = frozenset({"offline"})
"""Providers that call no model (the deterministic offline provider of tests and local runs)."""
MILLION = 1_000_000


def model_cost(usage: ModelUsage, pricing: PricingSettings) -> ModelCost:
    cost: float | None
    if usage.provider in FREE_PROVIDERS:
        cost = 0.0
    elif (prices := pricing.models.get(usage.model)) is not None:
        cost = (
            usage.input_tokens * prices.input_per_million + usage.output_tokens * prices.output_per_million
        ) / MILLION
    else:
        cost = None
    return ModelCost(**usage.model_dump(), cost=cost)


def token_cost(models: Sequence[ModelCost]) -> float | None:
    """The sum, or None if any model's price is unknown."""
    costs = [m.cost for m in models]
    return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)


def measured_compute(
    hourly_tasks: Sequence[float], deploy: DeploySettings, capacity: str, pricing: PricingSettings, note: str
) -> ComputeUsage:
    """From hourly averages of the running task count (each covers one hour)."""
    task_hours = sum(hourly_tasks)
    cost = sum(tasks_hour_price(t, deploy.cpu, deploy.memory, capacity, pricing) for t in hourly_tasks)
    return _compute("measured", task_hours, deploy, cost, note)


def estimated_compute(
    deploy: DeploySettings,
    capacity: str,
    pricing: PricingSettings,
    *,
    since: datetime.datetime,
    until: datetime.datetime,
    now: datetime.datetime,
    why: str,
) -> ComputeUsage:
    """The template's minimum tasks for the window's elapsed hours (up to now), times the share of the time its
    schedule runs the service; 0 when it is paused."""
    hours = max(0.0, (min(until, now) - since).total_seconds() / 3600)
    if deploy.state == "paused":
        share, how = 0.0, "paused: no task runs"
    elif deploy.schedule is not None:
        share = running_hours_per_month(deploy.schedule.stop, deploy.schedule.start) / HOURS_PER_MONTH
        how = f"{deploy.min_tasks} task(s) x {hours:g} h x {share:.0%} (its schedule's running share)"
    else:
        share, how = 1.0, f"{deploy.min_tasks} task(s) x {hours:g} h"
    tasks = deploy.min_tasks * share
    cost = tasks_hour_price(tasks, deploy.cpu, deploy.memory, capacity, pricing) * hours
    return _compute("estimate", tasks * hours, deploy, cost, f"estimate ({why}): {how}")


def no_compute(note: str) -> ComputeUsage:
    return ComputeUsage(source="none", task_hours=0.0, vcpu_hours=0.0, gb_hours=0.0, cost=0.0, note=note)


def _compute(source: str, task_hours: float, deploy: DeploySettings, cost: float, note: str) -> ComputeUsage:
    return ComputeUsage.model_validate(
        {
            "source": source,
            "task_hours": task_hours,
            "vcpu_hours": task_hours * deploy.cpu / 1024,
            "gb_hours": task_hours * deploy.memory / 1024,
            "cost": cost,
            "note": note,
        }
    )


def totals(rows: Sequence[InstanceUsage]) -> UsageTotals:
    reports = [r.usage for r in rows if r.usage is not None]
    token_costs = [r.token_cost for r in rows if r.token_cost is not None]
    compute_cost = sum(r.compute.cost for r in rows)
    return UsageTotals(
        requests=sum(u.requests for u in reports),
        input_tokens=sum(u.input_tokens for u in reports),
        output_tokens=sum(u.output_tokens for u in reports),
        tool_calls=sum(u.tool_calls for u in reports),
        task_hours=sum(r.compute.task_hours for r in rows),
        vcpu_hours=sum(r.compute.vcpu_hours for r in rows),
        gb_hours=sum(r.compute.gb_hours for r in rows),
        token_cost=sum(token_costs),
        compute_cost=compute_cost,
        total_cost=sum(token_costs) + compute_cost,
        complete=all(r.token_cost is not None for r in rows if r.status != "not_deployed"),
    )
