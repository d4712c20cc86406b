"""The thresholds of each instance's CloudWatch alarms: defaults fit for the environment, then the template's
`spec.deploy.alarms` and the `alarms` of every matching `spec.deploy.overrides` entry (later ones win), field by
field. Pure; pydantic alone. The alarms themselves are built by constructs/af_agent_runtime_alarms.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from foundry.manifests.platform_settings import PROD_ENVIRONMENTS
from instance_contract.schema import Strict

Percent = Annotated[float, Field(gt=0, le=100)]
ResponseSeconds = Annotated[float, Field(gt=0, le=4000)]
UnhealthyHosts = Annotated[int, Field(ge=1, le=100)]
EvaluationMinutes = Annotated[int, Field(ge=1, le=60)]


class AlarmThresholds(Strict):
    """When each alarm of an instance fires; each is judged over one-minute periods."""

    target_5xx_percent: Percent
    """The target group's 5xx answers, as a percentage of its requests."""
    p95_response_seconds: ResponseSeconds
    """The target group's p95 target response time."""
    unhealthy_hosts: UnhealthyHosts
    """Unhealthy targets (tasks) at or above this count."""
    error_rate_percent: Percent
    """The runtime's own error rate: agentfoundry.errors / agentfoundry.requests (namespace AgentFoundry)."""
    evaluation_minutes: EvaluationMinutes
    """How many consecutive one-minute periods must breach before an alarm fires."""


class AlarmOverrides(Strict):
    """Alarm thresholds to change; fields left out keep the value they had."""

    target_5xx_percent: Percent | None = None
    p95_response_seconds: ResponseSeconds | None = None
    unhealthy_hosts: UnhealthyHosts | None = None
    error_rate_percent: Percent | None = None
    evaluation_minutes: EvaluationMinutes | None = None


PRODUCTION_ALARMS = AlarmThresholds(
    target_5xx_percent=1,
    p95_response_seconds=30,
    unhealthy_hosts=1,
    error_rate_percent=2,
    evaluation_minutes=3,
)
"""A tenant's production: a few failed calls in a hundred for three minutes pages someone. p95 of 30 s leaves room
for a multi-agent turn with several model calls."""
NON_PRODUCTION_ALARMS = AlarmThresholds(
    target_5xx_percent=5,
    p95_response_seconds=40,
    unhealthy_hosts=1,
    error_rate_percent=10,
    evaluation_minutes=5,
)
"""Development and staging: looser, so a half-finished agent does not page, yet a release that fails every call
still stops its rollout. p95 stays below the default request time limit (50 s), which ends every slower request."""


def environment_alarm_defaults(environment: str) -> AlarmThresholds:
    """The defaults for an environment: production's for `prod`/`production`, the looser ones elsewhere."""
    return PRODUCTION_ALARMS if environment in PROD_ENVIRONMENTS else NON_PRODUCTION_ALARMS


def apply_alarm_overrides(thresholds: AlarmThresholds, *overrides: AlarmOverrides | None) -> AlarmThresholds:
    """Each override's given fields, in order (later ones win)."""
    values = thresholds.model_dump()
    for override in overrides:
        if override is not None:
            values.update(override.model_dump(exclude_none=True))
    return AlarmThresholds.model_validate(values)
