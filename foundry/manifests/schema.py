"""The files people write in `agents/`: environment manifests and the instance template; `KINDS` names every kind.

The per-environment platform settings (agents/platform.yaml) are in `foundry.manifests.platform_settings`. The
models the runtime also reads (agent specs, the resolved instance manifest and their value types) live in the
shared `instance_contract` package and are re-exported here, so control-plane code has one place to import from.
This module depends on pydantic alone (never aws-cdk-lib). Unknown keys are rejected everywhere.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

from foundry.manifests.alarm_settings import AlarmOverrides
from foundry.manifests.platform_settings import PlatformSettings
from instance_contract.off_hours import CheckedOffHoursSchedule, checked_time_zone
from instance_contract.schema import (
    API_VERSION,
    DNS_LABEL_PATTERN,
    FARGATE_MEMORY,
    SECRET_NAME_PATTERN,
    SEMVER_PATTERN,
    SYSTEM_ROLES,
    AgentInstance,
    AgentRole,
    AgentSpec,
    AgentSpecBody,
    AgentSpecMetadata,
    BackendTool,
    DeploySettings,
    DnsId,
    EgressSettings,
    ExternalMcpServer,
    GovernancePolicy,
    InstanceAgent,
    InstanceIdentity,
    InstanceKey,
    InstanceMetadata,
    InstanceSpec,
    LifecycleState,
    McpToolConfig,
    ModelSettings,
    NonEmpty,
    RequestLimits,
    SecretName,
    SemVer,
    Strict,
    SystemRole,
    WorkerRouting,
    unique_server_names,
)

# --- Environment manifest (kind: AgentManifest) -----------------------------------------------------------

RFC3339_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
"""RFC 3339 `date-time`: a date, a time and a time zone (Z or an offset); nothing vaguer."""


def _timestamp_text(value: Any) -> Any:
    """An unquoted YAML timestamp arrives as a datetime: keep it if it has a time zone, in RFC 3339 form."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.isoformat().replace("+00:00", "Z")
    return value


def _real_date(value: str) -> str:
    try:
        datetime.date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"found {value!r}, which is not a calendar date; expected an RFC 3339 timestamp") from None
    return value


Rfc3339Timestamp = Annotated[
    str,
    BeforeValidator(_timestamp_text),
    StringConstraints(pattern=RFC3339_PATTERN),
    Field(json_schema_extra={"format": "date-time"}),
]


class ManifestMetadata(Strict):
    description: NonEmpty
    generated_at: Rfc3339Timestamp
    """When the manifest was generated: RFC 3339 with a time zone, e.g. '2026-11-20T00:00:00Z'."""
    version: SemVer

    @field_validator("generated_at")
    @classmethod
    def _calendar_date(cls, value: str) -> str:
        return _real_date(value)


class ManifestEntry(Strict):
    """One agent bound to one (organization, domain, environment, instance)."""

    agent_id: DnsId
    yaml_path: NonEmpty
    organization_id: DnsId
    organization_name: NonEmpty
    domain_id: DnsId
    domain_name: NonEmpty
    environment: DnsId
    instance_id: DnsId
    is_system_agent: bool
    system_tier: Annotated[int, Field(ge=0, le=9)]
    version: SemVer
    author: NonEmpty
    last_editor: NonEmpty
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=list)

    @property
    def instance_key(self) -> InstanceKey:
        return InstanceKey(self.organization_id, self.domain_id, self.instance_id)


class ManifestSpec(Strict):
    entries: list[ManifestEntry]


class AgentManifest(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815 - the file's own key
    kind: Literal["AgentManifest"]
    metadata: ManifestMetadata
    spec: ManifestSpec


# --- Instance template (kind: AgentInstanceTemplate) ------------------------------------------------------


WELL_KNOWN_SYSTEM_AGENTS: dict[str, SystemRole] = {
    "io-agent": "io",
    "supervisor-agent": "supervisor",
    "context-agent": "context",
    "coherence-agent": "coherence",
    "exception-agent": "exception",
    "observability-agent": "observability",
    "governance-agent": "governance",
}
"""The design's ids of the seven system agents: a template that uses them may leave `role` out."""


class TemplateAgent(Strict):
    agent_id: DnsId
    role: SystemRole | None = None
    """Left out, it follows from a well-known id (io-agent -> io, supervisor-agent -> supervisor, ...)."""

    @model_validator(mode="after")
    def _role_known(self) -> TemplateAgent:
        known = WELL_KNOWN_SYSTEM_AGENTS.get(self.agent_id)
        if self.role is None and known is None:
            raise ValueError(
                f"{self.agent_id!r} is not a well-known system agent id ({', '.join(WELL_KNOWN_SYSTEM_AGENTS)}); "
                f"give its role (one of {', '.join(SYSTEM_ROLES)})"
            )
        if self.role is not None and known is not None and self.role != known:
            raise ValueError(
                f"{self.agent_id!r} is the well-known id of the {known} agent; role {self.role!r} contradicts it "
                "(leave role out, or give another agent_id)"
            )
        return self

    @property
    def system_role(self) -> SystemRole:
        """The role given, or the one its well-known id implies (the validator guarantees one of them)."""
        if self.role is not None:
            return self.role
        return WELL_KNOWN_SYSTEM_AGENTS[self.agent_id]


class CustomAgentRef(Strict):
    agent_id: DnsId


class OverrideScope(Strict):
    """Which instances an override applies to: each field left out matches every value."""

    environment: DnsId | None = None
    organization_id: DnsId | None = None
    domain_id: DnsId | None = None
    instance_id: DnsId | None = None

    def applies_to(self, environment: str, key: InstanceKey) -> bool:
        return (
            self.environment in (None, environment)
            and self.organization_id in (None, key.organization_id)
            and self.domain_id in (None, key.domain_id)
            and self.instance_id in (None, key.instance_id)
        )


class DeployOverride(OverrideScope):
    """Sizing for the instances that match; fields left out keep the default."""

    cpu: Literal[256, 512, 1024, 2048, 4096] | None = None
    memory: Annotated[int, Field(ge=512, le=30720)] | None = None
    min_tasks: Annotated[int, Field(ge=1, le=100)] | None = None
    max_tasks: Annotated[int, Field(ge=1, le=100)] | None = None
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] | None = None
    state: LifecycleState | None = None
    """`paused` stops the matching instances (no task, a 503 answer) and keeps their data; `active` resumes them."""
    schedule: CheckedOffHoursSchedule | None = None
    alarms: AlarmOverrides | None = None
    """Alarm thresholds for the instances that match (fields left out keep the value they had)."""


DEFAULT_DEPLOY = DeploySettings(cpu=256, memory=512, min_tasks=1, max_tasks=2, cpu_target_percent=60)
"""Sizing of an instance when the template has no `deploy` section: the smallest Fargate task, 1 to 2 tasks."""


class TemplateDeploy(Strict):
    defaults: DeploySettings = DEFAULT_DEPLOY
    alarms: AlarmOverrides = Field(default_factory=AlarmOverrides)
    """Alarm thresholds of every instance, over the environment's defaults (foundry/manifests/alarm_settings.py)."""
    overrides: list[DeployOverride] = Field(default_factory=list)

    @field_validator("defaults")
    @classmethod
    def _known_time_zone(cls, defaults: DeploySettings) -> DeploySettings:
        """The time zone database check the shared model leaves to the control plane (overrides have it too)."""
        if defaults.schedule is not None:
            checked_time_zone(defaults.schedule.time_zone)
        return defaults


class McpServerOverride(OverrideScope):
    """External MCP servers for the instances that match (each tenant may have its own ticketing system): a
    server here replaces the template's server of the same name, or adds one."""

    servers: list[ExternalMcpServer] = Field(min_length=1)

    @field_validator("servers")
    @classmethod
    def _unique(cls, servers: list[ExternalMcpServer]) -> list[ExternalMcpServer]:
        return unique_server_names(servers)


class TemplateMcp(McpToolConfig):
    """The instance's `mcp` settings, with external servers overridable per environment, organization, domain or
    instance the way `deploy` settings are (later matching overrides win)."""

    server_overrides: list[McpServerOverride] = Field(default_factory=list)


class TemplateSpec(Strict):
    system_agents: list[TemplateAgent]
    custom_agents: list[CustomAgentRef] = Field(default_factory=list)
    deploy: TemplateDeploy = TemplateDeploy()
    secrets: list[SecretName] = Field(default_factory=list)
    mcp: TemplateMcp = TemplateMcp()
    limits: RequestLimits = RequestLimits()
    """Input size and time limits of every request (the governance policy may only be stricter)."""

    @field_validator("system_agents")
    @classmethod
    def _every_role_once(cls, agents: list[TemplateAgent]) -> list[TemplateAgent]:
        roles = [a.system_role for a in agents]
        missing = [r for r in SYSTEM_ROLES if r not in roles]
        if missing:
            raise ValueError(f"the template must name an agent for every system role; missing: {', '.join(missing)}")
        duplicates = sorted({r for r in roles if roles.count(r) > 1})
        if duplicates:
            raise ValueError(f"a system role is given twice: {', '.join(duplicates)}")
        return agents


class TemplateMetadata(Strict):
    description: NonEmpty
    version: SemVer


class AgentInstanceTemplate(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["AgentInstanceTemplate"]
    metadata: TemplateMetadata
    spec: TemplateSpec


KINDS: dict[str, type[Strict]] = {
    "AgentManifest": AgentManifest,
    "AgentInstanceTemplate": AgentInstanceTemplate,
    "AgentSpec": AgentSpec,
    "AgentInstance": AgentInstance,
    "PlatformSettings": PlatformSettings,
}

__all__ = [
    "API_VERSION",
    "DEFAULT_DEPLOY",
    "DNS_LABEL_PATTERN",
    "FARGATE_MEMORY",
    "KINDS",
    "RFC3339_PATTERN",
    "SECRET_NAME_PATTERN",
    "SEMVER_PATTERN",
    "SYSTEM_ROLES",
    "WELL_KNOWN_SYSTEM_AGENTS",
    "AgentInstance",
    "AgentInstanceTemplate",
    "AgentManifest",
    "AgentRole",
    "AgentSpec",
    "AgentSpecBody",
    "AgentSpecMetadata",
    "BackendTool",
    "CustomAgentRef",
    "DeployOverride",
    "DeploySettings",
    "DnsId",
    "EgressSettings",
    "ExternalMcpServer",
    "GovernancePolicy",
    "InstanceAgent",
    "InstanceIdentity",
    "InstanceKey",
    "InstanceMetadata",
    "InstanceSpec",
    "ManifestEntry",
    "ManifestMetadata",
    "ManifestSpec",
    "McpServerOverride",
    "McpToolConfig",
    "ModelSettings",
    "NonEmpty",
    "OverrideScope",
    "RequestLimits",
    "Rfc3339Timestamp",
    "SecretName",
    "SemVer",
    "Strict",
    "SystemRole",
    "TemplateAgent",
    "TemplateDeploy",
    "TemplateMcp",
    "TemplateMetadata",
    "TemplateSpec",
    "WorkerRouting",
]
