"""The files people write in `agents/`: environment manifests, the instance template and platform settings.

The models the runtime also reads (agent specs, the resolved instance manifest and their value types) live in the
shared `instance_contract` package and are re-exported here, so control-plane code has one place to import from.
This module depends on pydantic alone (never aws-cdk-lib). Unknown keys are rejected everywhere.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

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
    GovernancePolicy,
    InstanceAgent,
    InstanceIdentity,
    InstanceKey,
    InstanceMetadata,
    InstanceSpec,
    McpToolConfig,
    ModelSettings,
    NonEmpty,
    SecretName,
    SemVer,
    Strict,
    SystemRole,
    WorkerRouting,
)

# --- Environment manifest (kind: AgentManifest) -----------------------------------------------------------


class ManifestMetadata(Strict):
    description: NonEmpty
    generated_at: NonEmpty
    version: SemVer


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


class TemplateAgent(Strict):
    agent_id: DnsId
    role: SystemRole


class CustomAgentRef(Strict):
    agent_id: DnsId


class DeployOverride(Strict):
    """Sizing for the instances that match; fields left out keep the default."""

    environment: DnsId | None = None
    organization_id: DnsId | None = None
    domain_id: DnsId | None = None
    instance_id: DnsId | None = None
    cpu: Literal[256, 512, 1024, 2048, 4096] | None = None
    memory: Annotated[int, Field(ge=512, le=30720)] | None = None
    min_tasks: Annotated[int, Field(ge=1, le=100)] | None = None
    max_tasks: Annotated[int, Field(ge=1, le=100)] | None = None
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] | None = None


class TemplateDeploy(Strict):
    defaults: DeploySettings
    overrides: list[DeployOverride] = Field(default_factory=list)


class TemplateSpec(Strict):
    system_agents: list[TemplateAgent]
    custom_agents: list[CustomAgentRef] = Field(default_factory=list)
    deploy: TemplateDeploy
    secrets: list[SecretName] = Field(default_factory=list)
    mcp: McpToolConfig = Field(default_factory=McpToolConfig)

    @field_validator("system_agents")
    @classmethod
    def _every_role_once(cls, agents: list[TemplateAgent]) -> list[TemplateAgent]:
        roles = [a.role for a in agents]
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


# --- Per-environment platform settings (kind: PlatformSettings) --------------------------------------------

# Fleet rollouts: the `rollout` block of each environment (`python -m foundry rollout`).

ROLLOUT_MAX_CONCURRENCY = 25
"""Instance stacks deployed at once, at most. Each stack deploy is one CloudFormation stack operation (about 30
resources in flight against the account's ConcurrentResourcesLimit of 2,500), one Route 53 change batch (the
account's request bucket refills at 10 requests/s) and one ECS deployment launching the instance's tasks (Fargate
launches 20 tasks/s sustained, 100 in a burst, per account and region): 25 at once keeps every one of them well
inside its limit, with room for other work in the account. docs/deploy.md explains the numbers."""
PROD_ENVIRONMENTS = frozenset({"prod", "production"})
"""Environments whose rollout must start with a canary wave."""

InstanceSelector = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?/[a-z0-9]([a-z0-9-]*[a-z0-9])?/[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
    ),
]


class CanarySelection(Strict):
    """The first wave: the named instances (those the rollout deploys), else the first `count` in sorted order."""

    instances: list[InstanceSelector] = Field(default_factory=list)
    count: Annotated[int, Field(ge=0, le=100)] = 1

    @property
    def enabled(self) -> bool:
        return bool(self.instances) or self.count > 0


class RolloutPolicy(Strict):
    """How `python -m foundry rollout` deploys an environment's instances: waves growing by `growth_factor`
    after the canary, `concurrency` stacks at a time, each wave healthy for `bake_seconds` before the next."""

    canary: CanarySelection = Field(default_factory=CanarySelection)
    growth_factor: Annotated[float, Field(ge=1.5, le=10)] = 2.0
    max_wave_size: Annotated[int, Field(ge=1)] | None = None
    concurrency: Annotated[int, Field(ge=1, le=ROLLOUT_MAX_CONCURRENCY)] = 10
    bake_seconds: Annotated[int, Field(ge=0, le=86_400)] = 900
    health_interval_seconds: Annotated[int, Field(ge=5, le=600)] = 30
    settle_seconds: Annotated[int, Field(ge=0, le=7_200)] = 600
    """How long a freshly deployed instance may take to read healthy the first time (ECS tasks starting, targets
    registering) before the gate counts it as failed."""
    deploy_timeout_seconds: Annotated[int, Field(ge=60, le=14_400)] = 3600


class VpcSettings(Strict):
    """Create a VPC (cidr) or import an existing one by id; never both."""

    vpc_id: Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = None
    cidr: Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")] | None = None
    max_azs: Annotated[int, Field(ge=2, le=3)] = 2
    nat_gateways: Annotated[int, Field(ge=0, le=3)] = 1
    private_subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(
        default_factory=list
    )
    availability_zones: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")]] = Field(
        default_factory=list
    )
    public_subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(
        default_factory=list
    )
    """Only for an imported VPC with an internet-facing load balancer, which must sit in public subnets."""

    @model_validator(mode="after")
    def _check(self) -> VpcSettings:
        if (self.vpc_id is None) == (self.cidr is None):
            raise ValueError("give exactly one of vpc_id (import) or cidr (create)")
        if self.vpc_id and (not self.private_subnet_ids or not self.availability_zones):
            raise ValueError("an imported vpc_id needs private_subnet_ids and availability_zones (no look-ups)")
        if self.cidr and self.public_subnet_ids:
            raise ValueError("public_subnet_ids is only for an imported vpc_id; a created VPC makes its own")
        for label, ids in (
            ("private_subnet_ids", self.private_subnet_ids),
            ("public_subnet_ids", self.public_subnet_ids),
        ):
            if ids and len(ids) != len(self.availability_zones):
                raise ValueError(
                    f"{label} lists {len(ids)} subnets for {len(self.availability_zones)} availability_zones; "
                    "give one subnet per availability zone, in the same order"
                )
        return self


class ZoneSettings(Strict):
    """The hosted zone that holds instance hostnames: created here, or imported by id."""

    name: Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")]
    private: bool
    hosted_zone_id: Annotated[str, StringConstraints(pattern=r"^Z[0-9A-Z]{4,32}$")] | None = None


class LoadBalancerSettings(Strict):
    internet_facing: bool
    certificate_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:")] | None = None
    plain_http: bool = False
    """Only for an internal dev environment without a certificate: serve HTTP on port 80, no TLS."""
    instances_per_shard: Annotated[int, Field(ge=1, le=100)] = 100
    idle_timeout_seconds: Annotated[int, Field(ge=1, le=4000)] = 60

    @model_validator(mode="after")
    def _check(self) -> LoadBalancerSettings:
        if self.plain_http:
            if self.internet_facing:
                raise ValueError("plain_http is allowed only on an internal load balancer")
            if self.certificate_arn:
                raise ValueError("plain_http and certificate_arn exclude each other")
        elif not self.certificate_arn:
            raise ValueError("certificate_arn (a wildcard certificate for the zone) is required unless plain_http")
        return self


class EnvironmentSettings(Strict):
    account: Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    vpc: VpcSettings
    zone: ZoneSettings
    load_balancer: LoadBalancerSettings
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653] = 30
    runtime_image: NonEmpty | None = None
    """A prebuilt runtime image URI; left out, the image is built from runtime/Dockerfile as a CDK asset."""

    @model_validator(mode="after")
    def _check(self) -> EnvironmentSettings:
        if self.vpc.vpc_id and self.load_balancer.internet_facing and not self.vpc.public_subnet_ids:
            raise ValueError(
                "an internet-facing load balancer in an imported VPC needs vpc.public_subnet_ids "
                "(one per availability zone)"
            )
        return self


class PlatformSpec(Strict):
    environments: dict[DnsId, EnvironmentSettings]

    @field_validator("environments")
    @classmethod
    def _prod_rolls_out_behind_a_canary(
        cls, environments: dict[str, EnvironmentSettings]
    ) -> dict[str, EnvironmentSettings]:
        for name, settings in environments.items():
            if name in PROD_ENVIRONMENTS and not settings.rollout.canary.enabled:
                raise ValueError(
                    f"environment {name}: rollout.canary names no instance and has count 0; a production rollout "
                    "must start with a canary wave (set rollout.canary.count >= 1 or list rollout.canary.instances)"
                )
        return environments


class PlatformSettings(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["PlatformSettings"]
    spec: PlatformSpec


KINDS: dict[str, type[Strict]] = {
    "AgentManifest": AgentManifest,
    "AgentInstanceTemplate": AgentInstanceTemplate,
    "AgentSpec": AgentSpec,
    "AgentInstance": AgentInstance,
    "PlatformSettings": PlatformSettings,
}

__all__ = [
    "API_VERSION",
    "DNS_LABEL_PATTERN",
    "FARGATE_MEMORY",
    "KINDS",
    "SECRET_NAME_PATTERN",
    "SEMVER_PATTERN",
    "SYSTEM_ROLES",
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
    "EnvironmentSettings",
    "GovernancePolicy",
    "InstanceAgent",
    "InstanceIdentity",
    "InstanceKey",
    "InstanceMetadata",
    "InstanceSpec",
    "LoadBalancerSettings",
    "ManifestEntry",
    "ManifestMetadata",
    "ManifestSpec",
    "McpToolConfig",
    "ModelSettings",
    "NonEmpty",
    "PlatformSettings",
    "PlatformSpec",
    "SecretName",
    "SemVer",
    "Strict",
    "SystemRole",
    "TemplateAgent",
    "TemplateDeploy",
    "TemplateMetadata",
    "TemplateSpec",
    "VpcSettings",
    "WorkerRouting",
    "ZoneSettings",
]
