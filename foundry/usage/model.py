"""The rows `python -m foundry usage` prints (and `--json` and `foundry.get_instance_usage` return): one per instance,
with its usage as the instance answered it, its compute and what both cost, plus the environment's totals."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, Field

from instance_contract.usage import UsageReport

RowStatus = Literal["ok", "unreachable", "refused", "not_deployed"]
"""`ok`: the instance answered. `unreachable`: its endpoint did not answer (or AWS could not say where it is).
`refused`: it answered with an error (a missing or insufficient token). `not_deployed`: no stack, no endpoint."""
ComputeSource = Literal["measured", "estimate", "none"]


class ModelCost(BaseModel):
    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    """USD; None when the model has no price in platform.yaml (unknown, never taken as 0)."""


class ComputeUsage(BaseModel):
    """The instance's Fargate tasks over the window: task-hours, and the vCPU-hours and GB-hours they make."""

    source: ComputeSource
    """`measured`: ECS Container Insights' RunningTaskCount (hourly averages). `estimate`: the template's minimum
    tasks times the window's elapsed hours (times the share its schedule runs; 0 when paused). `none`: not deployed."""
    task_hours: float
    vcpu_hours: float
    gb_hours: float
    cost: float
    note: str
    """How the figure was found, for people (e.g. why it is an estimate)."""


class InstanceUsage(BaseModel):
    environment: str
    instance: str
    status: RowStatus
    error: str | None = None
    endpoint: str | None = None
    usage: UsageReport | None = None
    """The instance's own answer (None unless status is ok)."""
    models: list[ModelCost] = Field(default_factory=list)
    compute: ComputeUsage
    token_cost: float | None
    """USD for every model's tokens; None when unknown (not answered, or a model without a price)."""
    total_cost: float | None
    """token_cost + compute.cost; None when token_cost is unknown."""


class UsageTotals(BaseModel):
    requests: int
    input_tokens: int
    output_tokens: int
    tool_calls: int
    task_hours: float
    vcpu_hours: float
    gb_hours: float
    token_cost: float
    """The sum of the known token costs."""
    compute_cost: float
    total_cost: float
    complete: bool
    """False when a row's tokens or cost are unknown: the totals are then a lower bound."""


class EnvironmentUsage(BaseModel):
    environment: str
    since: datetime.datetime
    until: datetime.datetime
    pricing_taken: datetime.date
    """When the prices in platform.yaml were recorded."""
    instances: list[InstanceUsage]
    totals: UsageTotals
    partial: bool
    """Some instance did not answer (its row says why)."""
