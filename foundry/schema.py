"""The manifest contract: every file a person writes in `agents/`, and the instance manifest resolved from them.

The CDK app, the Foundry MCP server and the instance runtime all import this module, so it depends on pydantic
alone (never aws-cdk-lib). Unknown keys are rejected everywhere: a typo must fail, not be ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

API_VERSION = "agent-foundry/v1"

DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SECRET_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"  # noqa: S105 - a name pattern, not a secret

DnsId = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
SemVer = Annotated[str, StringConstraints(pattern=SEMVER_PATTERN)]
SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN)]
BackendTool = Literal["model_generate", "memory_read", "memory_append", "context_get"]
"""Tools of the instance's backend MCP server: the only way agents reach models and stores."""
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
IMAGE_REPOSITORY_PATTERN = (
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:\d{1,5})?/"
    r"(\*|[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(/\*)?)$"
)
ImageRepositoryPattern = Annotated[str, StringConstraints(pattern=IMAGE_REPOSITORY_PATTERN, max_length=512)]
"""REGISTRY/REPOSITORY, REGISTRY/NAMESPACE/* or REGISTRY/* (foundry/image_reference.py matches them)."""

SystemRole = Literal["io", "governance", "context", "supervisor", "coherence", "exception", "observability"]
AgentRole = Literal["io", "governance", "context", "supervisor", "coherence", "exception", "observability", "worker"]
SYSTEM_ROLES: tuple[SystemRole, ...] = (
    "io",
    "governance",
    "context",
    "supervisor",
    "coherence",
    "exception",
    "observability",
)


class Strict(BaseModel):
    """Base for every file people write: unknown keys are an error, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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


class DeploySettings(Strict):
    """Fargate sizing and scaling of one instance. CPU/memory must be a valid Fargate pair."""

    cpu: Literal[256, 512, 1024, 2048, 4096]
    memory: Annotated[int, Field(ge=512, le=30720)]
    min_tasks: Annotated[int, Field(ge=1, le=100)]
    max_tasks: Annotated[int, Field(ge=1, le=100)]
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] = 60

    @model_validator(mode="after")
    def _check(self) -> DeploySettings:
        if self.max_tasks < self.min_tasks:
            raise ValueError(f"max_tasks ({self.max_tasks}) is below min_tasks ({self.min_tasks})")
        allowed = FARGATE_MEMORY[self.cpu]
        if self.memory not in allowed:
            raise ValueError(
                f"memory {self.memory} is not valid with cpu {self.cpu}; allowed: {', '.join(str(m) for m in allowed)}"
            )
        return self


FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


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


class McpToolConfig(Strict):
    """How the instance's backend MCP server reaches models and memory. No credentials here, ever."""

    model_provider: Literal["offline", "bedrock"] = "offline"
    bedrock_model_id: NonEmpty | None = None
    bedrock_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    memory_store: Literal["in-process"] = "in-process"
    max_history_messages: Annotated[int, Field(ge=0, le=1000)] = 20

    @model_validator(mode="after")
    def _check(self) -> McpToolConfig:
        if self.model_provider == "bedrock" and not self.bedrock_model_id:
            raise ValueError("model_provider 'bedrock' needs bedrock_model_id")
        return self


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


# --- Agent spec (kind: AgentSpec) -------------------------------------------------------------------------


class ModelSettings(Strict):
    provider: Literal["offline", "bedrock", "inherit"] = "inherit"
    model_id: NonEmpty | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    max_tokens: Annotated[int, Field(ge=1, le=200_000)] = 512


class GovernancePolicy(Strict):
    """The input policy the governance agent enforces before anything else runs."""

    max_input_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 8000
    blocked_patterns: list[NonEmpty] = Field(default_factory=list)
    blocked_tenants: list[DnsId] = Field(default_factory=list)

    @field_validator("blocked_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns


class WorkerRouting(Strict):
    """What the supervisor routes to this worker: any keyword found in the message selects it."""

    description: NonEmpty
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(min_length=1)
    default: bool = False


class AgentSpecBody(Strict):
    role: AgentRole
    description: NonEmpty
    model: ModelSettings = Field(default_factory=ModelSettings)
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    tools: list[BackendTool] = Field(default_factory=list)
    routing: WorkerRouting | None = None
    policy: GovernancePolicy | None = None
    secrets: list[SecretName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AgentSpecBody:
        if self.role == "worker" and self.routing is None:
            raise ValueError("a worker needs routing (description and keywords) so the supervisor can reach it")
        if self.role != "worker" and self.routing is not None:
            raise ValueError(f"routing is only for workers, not for role {self.role!r}")
        if self.policy is not None and self.role != "governance":
            raise ValueError(f"policy is only for the governance agent, not for role {self.role!r}")
        return self


class AgentSpecMetadata(Strict):
    agent_id: DnsId
    version: SemVer


class AgentSpec(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["AgentSpec"]
    metadata: AgentSpecMetadata
    spec: AgentSpecBody


# --- Concrete instance manifest (kind: AgentInstance), produced by resolution ------------------------------


class InstanceKey(tuple[str, str, str]):
    """(organization_id, domain_id, instance_id): the identity of an instance within one environment."""

    def __new__(cls, organization_id: str, domain_id: str, instance_id: str) -> InstanceKey:
        return super().__new__(cls, (organization_id, domain_id, instance_id))

    @property
    def organization_id(self) -> str:
        return self[0]

    @property
    def domain_id(self) -> str:
        return self[1]

    @property
    def instance_id(self) -> str:
        return self[2]

    @property
    def selector(self) -> str:
        return f"{self[0]}/{self[1]}/{self[2]}"


class InstanceIdentity(Strict):
    organization_id: DnsId
    organization_name: NonEmpty
    domain_id: DnsId
    domain_name: NonEmpty
    environment: DnsId
    instance_id: DnsId

    @property
    def key(self) -> InstanceKey:
        return InstanceKey(self.organization_id, self.domain_id, self.instance_id)


class InstanceAgent(Strict):
    agent_id: DnsId
    role: AgentRole
    version: SemVer
    spec_path: NonEmpty
    """Path of the agent spec inside the bundle (and relative to `agents/` in the repo)."""


class InstanceSpec(Strict):
    identity: InstanceIdentity
    hostname: NonEmpty
    stack_name: NonEmpty
    system_agents: list[InstanceAgent]
    custom_agents: list[InstanceAgent]
    deploy: DeploySettings
    secrets: list[SecretName]
    mcp: McpToolConfig

    @property
    def agents(self) -> list[InstanceAgent]:
        return [*self.system_agents, *self.custom_agents]


class InstanceMetadata(Strict):
    name: NonEmpty
    source_manifest: NonEmpty
    template: NonEmpty
    manifest_version: SemVer
    template_version: SemVer


class AgentInstance(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["AgentInstance"]
    metadata: InstanceMetadata
    spec: InstanceSpec


# --- Per-environment platform settings (kind: PlatformSettings) --------------------------------------------


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
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653] = 30
    runtime_image: NonEmpty | None = None
    """A prebuilt runtime image URI; left out, the image is built from runtime/Dockerfile as a CDK asset."""
    allowed_image_repositories: list[ImageRepositoryPattern] | None = Field(default=None, min_length=1)
    """The repositories a deploy through the Foundry MCP server may run (its `runtime_image` argument):
    `REGISTRY/REPOSITORY`, `REGISTRY/NAMESPACE/*` or `REGISTRY/*`. Left out: the environment's own ECR registry,
    `<account>.dkr.ecr.<region>.amazonaws.com/*`. The image runs with the instance's task role and secrets."""

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
