"""The lifecycle parts of an instance's runtime (constructs/af_agent_runtime.py): pausing, the off-hours schedule
and Fargate Spot capacity. Pure helpers over aws-cdk-lib L2 types; the runtime construct calls them.

A paused runtime keeps every stateful resource (state table, secrets, log group, record) under the same logical
id: only the service's task count, its scaling range and the listener rule's action change, so resuming is one
deploy with `state: active`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aws_cdk import TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from constructs.af_agent_runtime_props import Lifecycle, OffHours, TaskSizing

PAUSED_STATUS = 503
PAUSED_CONTENT_TYPE = "application/json"
FARGATE, FARGATE_SPOT = "FARGATE", "FARGATE_SPOT"


def paused_body(hostname: str) -> str:
    """The listener rule's answer while the instance is paused (a short JSON document, well under ALB's 1 KB)."""
    return json.dumps(
        {"error": "instance_paused", "instance": hostname, "message": "This instance is paused by its operator."},
        separators=(",", ":"),
    )


def effective_sizing(sizing: TaskSizing, lifecycle: Lifecycle) -> TaskSizing:
    """A paused runtime scales between 0 and 0: no policy or action can start a task."""
    return replace(sizing, min_tasks=0, max_tasks=0) if lifecycle.paused else sizing


def service_options(lifecycle: Lifecycle) -> dict[str, Any]:
    """Extra FargateService arguments: desired 0 when paused, a capacity provider strategy for Spot."""
    options: dict[str, Any] = {}
    if lifecycle.paused:
        options["desired_count"] = 0
    strategy = capacity_strategy(lifecycle.capacity)
    if strategy:
        options["capacity_provider_strategies"] = strategy
    return options


def capacity_strategy(capacity: str) -> list[ecs.CapacityProviderStrategy]:
    """On demand: none (the service's launch type, FARGATE). Spot: every task on FARGATE_SPOT. Spot with fallback:
    the first task on FARGATE (base 1), the rest on FARGATE_SPOT."""
    if capacity == "on_demand":
        return []
    if capacity == "spot":
        return [ecs.CapacityProviderStrategy(capacity_provider=FARGATE_SPOT, weight=1)]
    if capacity == "spot_with_fallback":
        return [
            ecs.CapacityProviderStrategy(capacity_provider=FARGATE, base=1, weight=0),
            ecs.CapacityProviderStrategy(capacity_provider=FARGATE_SPOT, weight=1),
        ]
    raise ValueError(f"capacity {capacity!r} is not one of on_demand, spot, spot_with_fallback")


def rule_action(target_group: elbv2.IApplicationTargetGroup, *, paused: bool, hostname: str) -> elbv2.ListenerAction:
    """Forward to the tasks, or, paused, answer 503 with the paused document on the same host rule."""
    if paused:
        return elbv2.ListenerAction.fixed_response(
            PAUSED_STATUS, content_type=PAUSED_CONTENT_TYPE, message_body=paused_body(hostname)
        )
    return elbv2.ListenerAction.forward([target_group])


def add_off_hours(scaling: ecs.ScalableTaskCount, sizing: TaskSizing, lifecycle: Lifecycle) -> None:
    """Two scheduled actions: `Stop` sets the range to 0..0, `Start` back to min..max. None while paused."""
    off_hours = lifecycle.off_hours
    if off_hours is None or lifecycle.paused:
        return
    _schedule(scaling, "Stop", off_hours, off_hours.stop, 0, 0)
    _schedule(scaling, "Start", off_hours, off_hours.start, sizing.min_tasks, sizing.max_tasks)


def _schedule(
    scaling: ecs.ScalableTaskCount, id_: str, off_hours: OffHours, cron: appscaling.CronOptions, low: int, high: int
) -> None:
    scaling.scale_on_schedule(
        id_,
        schedule=appscaling.Schedule.cron(
            minute=cron.minute, hour=cron.hour, day=cron.day, month=cron.month, week_day=cron.week_day
        ),
        time_zone=TimeZone.of(off_hours.time_zone),
        min_capacity=low,
        max_capacity=high,
    )
