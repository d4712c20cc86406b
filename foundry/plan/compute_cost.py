"""The always-on compute cost of an instance and of an environment, per month, from the plan's plain data
(issue 24): what `python -m foundry plan` adds to its table.

An instance costs its minimum task count (what runs with no load) times its task size (vCPU and GB) times the
Fargate price of its environment's capacity, times the hours it runs: 0 when paused, its schedule's running
hours, else 730. Scaling out under load and everything besides Fargate (load balancer, NAT, DynamoDB, logs, model
tokens) is not in it: this is the floor a change adds or removes. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foundry.manifests.platform_settings import FargatePrices, PricingSettings
from foundry.plan.model import CostChange, FleetState
from foundry.plan.running_hours import HOURS_PER_MONTH, running_hours_per_month


def task_hour_price(cpu_units: int, memory_mib: int, prices: FargatePrices) -> float:
    """USD for one task of this size for one hour."""
    return cpu_units / 1024 * prices.vcpu_hour + memory_mib / 1024 * prices.gb_hour


def instance_monthly_cost(
    manifest: Mapping[str, Any], environment: Mapping[str, Any], pricing: PricingSettings
) -> float:
    """One instance (its resolved manifest as plain data) in its environment (platform settings as plain data)."""
    deploy = manifest["spec"]["deploy"]
    if deploy.get("state", "active") == "paused":
        return 0.0
    schedule = deploy.get("schedule")
    hours = HOURS_PER_MONTH if schedule is None else running_hours_per_month(schedule["stop"], schedule["start"])
    tasks = int(deploy["min_tasks"])
    capacity = environment.get("capacity", "on_demand")
    return tasks_hour_price(tasks, int(deploy["cpu"]), int(deploy["memory"]), capacity, pricing) * hours


def tasks_hour_price(tasks: float, cpu_units: int, memory_mib: int, capacity: str, pricing: PricingSettings) -> float:
    """USD for `tasks` tasks (an hour's average may be fractional) running one hour on the environment's capacity:
    with `spot_with_fallback` the first task is on demand and the rest on Spot."""
    on_demand = task_hour_price(cpu_units, memory_mib, pricing.fargate)
    spot = task_hour_price(cpu_units, memory_mib, pricing.fargate_spot)
    if capacity == "spot":
        return tasks * spot
    if capacity == "spot_with_fallback":
        return min(tasks, 1.0) * on_demand + max(tasks - 1.0, 0.0) * spot
    return tasks * on_demand


def environment_monthly_cost(state: FleetState, env: str, pricing: PricingSettings) -> float:
    """Every instance of `env` in this fleet; 0 for an environment the fleet does not have."""
    settings = state.environments.get(env)
    if settings is None:
        return 0.0
    manifests = [i.manifest for (e, _), i in sorted(state.instances.items()) if e == env]
    return sum(instance_monthly_cost(manifest, settings, pricing) for manifest in manifests)


def cost_change(base: FleetState, head: FleetState, env: str) -> CostChange:
    """Both revisions at the head's prices (the defaults where it names none), so the change is the fleet's own,
    not a price update's."""
    pricing = PricingSettings.model_validate(head.pricing) if head.pricing is not None else PricingSettings()
    return CostChange(
        before=environment_monthly_cost(base, env, pricing),
        after=environment_monthly_cost(head, env, pricing),
        pricing_taken=pricing.taken.isoformat(),
    )
