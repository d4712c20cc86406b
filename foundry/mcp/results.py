"""The typed results of `foundry.deploy_instance` and `foundry.get_instance_status`, as pydantic models so that the
SDK publishes their output schemas.

The deployer and the status reader return dataclasses (`DeployResult`, `InstanceStatus`); these models carry the
same fields in the same order (nested parts keep their dataclass types, which pydantic serialises as the same
objects), so the structured content is what `dataclasses.asdict` gave. A test holds the field lists equal: a field
added to a dataclass must be added here too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict

from foundry.aws.cloudformation import Failure
from foundry.aws.instance_metrics import InstanceMetrics
from foundry.aws.instance_status import AlarmState, ServiceState, StackState, TargetState, Verdict
from foundry.deploy.interruption import Interruption
from foundry.deploy.platform_gate import PlatformCheck
from foundry.deploy.request import DeployResult, Outcome
from foundry.deploy.status import DeployedStatus


class DeployInstanceResult(BaseModel):
    """How one deploy (or dry run) ended; `foundry.deploy.deployer.DeployResult` documents every field."""

    model_config = ConfigDict(from_attributes=True)

    outcome: Outcome
    environment: str
    instance: str
    hostname: str
    stacks: list[str]
    outputs: dict[str, dict[str, str]]
    synthesized_stacks: list[str]
    diff: str | None
    diff_exit_code: int | None
    failure: Failure | None
    platform: PlatformCheck | None
    stack_status: str | None
    locked_until_settled: bool
    commands: list[list[str]]
    log_tail: list[str]
    work_dir: str

    @classmethod
    def of(cls, result: DeployResult) -> DeployInstanceResult:
        return cls.model_validate(result)


class InstanceStatusResult(BaseModel):
    """An instance's status as AWS and its own endpoint tell it (`foundry.aws.instance_status.InstanceStatus`),
    and what this server knows of its deploys."""

    model_config = ConfigDict(from_attributes=True)

    environment: str
    instance: str
    hostname: str
    stack_name: str
    verdict: Verdict
    reasons: list[str]
    stack: StackState | None
    service: ServiceState | None
    targets: list[TargetState]
    instance_endpoint: str | None
    instance_status: dict[str, Any] | None
    instance_status_error: str | None
    errors: list[str]
    alarms: list[AlarmState]
    """The instance's CloudWatch alarms and their states (an alarm in ALARM also makes the verdict degraded)."""
    alarms_error: str | None
    """Why the alarms could not be read (then `alarms` is empty)."""
    metrics: InstanceMetrics | None
    """The last hour's requests, errors, error rate, p95 turn duration and tokens (CloudWatch GetMetricData)."""
    deploy_lock: str | None
    """Who holds the instance's deploy lock right now and why (a deploy, the watch of a stopped one, a rollout)."""
    last_interrupted_deploy: Interruption | None
    """The last deploy whose cdk was stopped, and how CloudFormation ended it."""

    @classmethod
    def of(cls, report: DeployedStatus) -> InstanceStatusResult:
        status = report.status
        return cls.model_validate(
            {
                **{field.name: getattr(status, field.name) for field in dataclasses.fields(status)},
                "deploy_lock": report.deploy_lock,
                "last_interrupted_deploy": report.last_interrupted_deploy,
            }
        )
