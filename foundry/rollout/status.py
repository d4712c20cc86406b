"""The last rollout of each environment as recorded in its deploy state (`foundry.rollout.state`): one environment's
full report (the same as `rollout --json`), or one headline per environment. Read-only; `foundry.get_rollout_status`
returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from foundry.rollout.report import report
from foundry.rollout.scheduler import InstanceState, RolloutStatus
from foundry.rollout.state import RolloutStore


class RolloutHeadline(BaseModel):
    """One environment's last rollout, in one line."""

    environment: str
    change: str
    change_id: str
    status: RolloutStatus
    totals: dict[str, int]


class RolloutWave(BaseModel):
    wave: int
    canary: bool
    size: int
    baked: bool
    states: dict[str, int]
    """Instances of the wave per state."""


class RolloutInstanceRow(BaseModel):
    instance: str
    stack: str
    wave: int
    state: InstanceState
    reason: str | None
    deploys: int


class RolloutStatusReport(BaseModel):
    """One of three shapes, and only that shape's keys are sent: without an environment, every environment's
    headline (count, rollouts); with one, its full report (ok ... instances, as `rollout --json` prints it); or,
    when none is recorded, environment, status 'none' and message. Every field is therefore optional."""

    count: int | None = None
    rollouts: list[RolloutHeadline] | None = None
    ok: bool | None = None
    environment: str | None = None
    change: str | None = None
    change_id: str | None = None
    status: RolloutStatus | Literal["none"] | None = None
    simulated: bool | None = None
    runs: int | None = None
    halted_wave: int | None = None
    halt_reason: str | None = None
    elapsed_seconds: float | None = None
    policy: dict[str, Any] | None = None
    """The environment's rollout policy the rollout ran with (agents/platform.yaml)."""
    notes: list[str] | None = None
    assembly: str | None = None
    """The cloud assembly every deploy of the rollout uses (`rollout --assembly`, or the one it synthesized)."""
    assembly_digest: str | None = None
    git_revision: str | None = None
    """The agents tree's commit when the rollout started (`-dirty`: with uncommitted changes)."""
    totals: dict[str, int] | None = None
    """Instances in all, and per state."""
    waves: list[RolloutWave] | None = None
    instances: list[RolloutInstanceRow] | None = None
    """In wave order."""
    message: str | None = None

    @model_serializer(mode="wrap")
    def _only_its_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The keys the report was built with, not the other shapes' (which would all be null)."""
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}


def rollout_status(
    store_of: Callable[[str], RolloutStore], environments: Sequence[str], environment: str | None
) -> RolloutStatusReport:
    """One environment's report, or (environment None) the headline of each of `environments` that has a record.
    `store_of` opens an environment's rollout records (real or simulated ones)."""
    if environment is None:
        rows: list[RolloutHeadline] = []
        for name in environments:
            rollout = store_of(name).load_as_is(name)
            if rollout is not None:
                rows.append(RolloutHeadline.model_validate(report(rollout)))
        return RolloutStatusReport(count=len(rows), rollouts=rows)
    rollout = store_of(environment).load_as_is(environment)
    if rollout is None:
        return RolloutStatusReport(
            environment=environment, status="none", message=f"no rollout of {environment} is recorded"
        )
    return RolloutStatusReport.model_validate(report(rollout))
