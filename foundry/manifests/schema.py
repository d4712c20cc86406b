"""The files people write in `agents/`: environment manifests, the instance template and platform settings.

The models the runtime also reads (agent specs, the resolved instance manifest and their value types) live in the
shared `instance_contract` package and are re-exported here, so control-plane code has one place to import from.
This module depends on pydantic alone (never aws-cdk-lib). Unknown keys are rejected everywhere.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

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
    ExternalMcpServer,
    GovernancePolicy,
    InstanceAgent,
    InstanceIdentity,
    InstanceKey,
    InstanceMetadata,
    InstanceSpec,
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

IMAGE_REPOSITORY_PATTERN = (
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:\d{1,5})?/"
    r"(\*|[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(/\*)?)$"
)
ImageRepositoryPattern = Annotated[str, StringConstraints(pattern=IMAGE_REPOSITORY_PATTERN, max_length=512)]
"""REGISTRY/REPOSITORY, REGISTRY/NAMESPACE/* or REGISTRY/* (foundry/deploy/image_reference.py matches them)."""

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


DEFAULT_DEPLOY = DeploySettings(cpu=256, memory=512, min_tasks=1, max_tasks=2, cpu_target_percent=60)
"""Sizing of an instance when the template has no `deploy` section: the smallest Fargate task, 1 to 2 tasks."""


class TemplateDeploy(Strict):
    defaults: DeploySettings = DEFAULT_DEPLOY
    overrides: list[DeployOverride] = Field(default_factory=list)


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


class ThreadStateSettings(Strict):
    """Each instance's thread-state table (constructs/af_instance_state.py) in this environment."""

    point_in_time_recovery: bool | None = None
    """Continuous backups (restore to any second of the last 35 days). Unset: on, except in an environment whose
    load balancer is plain_http (the schema allows that only for an internal dev environment)."""


# --- Caller authentication of instances (issue 14): who may call an instance's /mcp ----------------------------

ClaimName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:./-]{1,256}$")]
"""A JWT claim name; Auth0's namespaced custom claims are URLs (https://example.com/org)."""
HttpsUrl = Annotated[
    str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s?#]*)?$", max_length=2048)
]


class TokenIssuer(Strict):
    """An issuer whose access tokens (JWTs) callers present: Amazon Cognito, Microsoft Entra ID, Okta, Auth0 or any
    issuer with OpenID Connect discovery or RFC 8414 metadata."""

    issuer: HttpsUrl
    """The `iss` of its tokens, exactly (Entra ID: https://login.microsoftonline.com/<tenant>/v2.0)."""
    jwks_uri: HttpsUrl | None = None
    """Left out: read from the issuer's discovery document."""
    org_claim: ClaimName = "org"
    """The claim that names the caller's organization; it must equal the instance's organization id."""
    audience: NonEmpty | None = None
    """The audience tokens are issued for; left out: https://<instance hostname>/mcp."""
    audience_claim: Literal["aud", "client_id"] = "aud"
    """`client_id` for Amazon Cognito, whose access tokens carry no `aud` (then `audience` is the app client id)."""

    @model_validator(mode="after")
    def _check(self) -> TokenIssuer:
        if self.audience_claim == "client_id" and self.audience is None:
            raise ValueError("audience_claim: client_id needs audience (the app client id tokens are issued to)")
        return self


class InstanceAuthSettings(Strict):
    """How an environment's instances check their callers (the runtime's AUTH_* variables)."""

    mode: Literal["jwt", "none"] = "jwt"
    """`none` turns caller authentication off: only for an environment whose load balancer is internal."""
    issuer: TokenIssuer | None = None
    """Left out (mode jwt): the environment's platform stack provides one, an Amazon Cognito user pool."""
    organizations: dict[DnsId, TokenIssuer] = Field(default_factory=dict)
    """A tenant's own identity provider, by organization id; it replaces `issuer` for that organization's instances."""

    @model_validator(mode="after")
    def _check(self) -> InstanceAuthSettings:
        if self.mode == "none" and (self.issuer is not None or self.organizations):
            raise ValueError("mode: none checks no tokens: leave out issuer and organizations, or use mode: jwt")
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
    thread_state: ThreadStateSettings = Field(default_factory=lambda: ThreadStateSettings())

    @property
    def state_point_in_time_recovery(self) -> bool:
        """What the instance stacks pass to AfInstanceState: the setting, or the environment's default."""
        if self.thread_state.point_in_time_recovery is not None:
            return self.thread_state.point_in_time_recovery
        return not self.load_balancer.plain_http

    # --- caller authentication (issue 14) ---
    auth: InstanceAuthSettings = Field(default_factory=InstanceAuthSettings)
    """Who may call the instances: token issuers (per environment, optionally per organization) or mode none."""

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
        if self.auth.mode == "none" and self.load_balancer.internet_facing:
            raise ValueError(
                "auth.mode: none is allowed only for an environment whose load balancer is internal "
                "(load_balancer.internet_facing: false); this one faces the internet: name a token issuer under "
                "auth.issuer, or leave auth out to use the platform's Cognito user pool"
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
    "EnvironmentSettings",
    "ExternalMcpServer",
    "GovernancePolicy",
    "InstanceAgent",
    "InstanceAuthSettings",
    "InstanceIdentity",
    "InstanceKey",
    "InstanceMetadata",
    "InstanceSpec",
    "LoadBalancerSettings",
    "ManifestEntry",
    "ManifestMetadata",
    "ManifestSpec",
    "McpServerOverride",
    "McpToolConfig",
    "ModelSettings",
    "NonEmpty",
    "OverrideScope",
    "PlatformSettings",
    "PlatformSpec",
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
    "ThreadStateSettings",
    "TokenIssuer",
    "VpcSettings",
    "WorkerRouting",
    "ZoneSettings",
]
