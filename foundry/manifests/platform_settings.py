"""The per-environment platform settings people write in `agents/platform.yaml` (kind: PlatformSettings).

Network, hosted zone, load balancer, thread state, caller authentication, the image policy and the rollout policy
of each environment: what the platform stack builds and what `python -m foundry rollout` follows. Apart from
`foundry.manifests.schema` (the environment manifests and the instance template) because it is read by other
parts: the CDK stacks and constructs, the rollout and the MCP tool checks. Depends on pydantic alone (never
aws-cdk-lib). Unknown keys are rejected everywhere.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from instance_contract.schema import DnsId, EgressSettings, NonEmpty, Strict

IMAGE_REPOSITORY_PATTERN = (
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:\d{1,5})?/"
    r"(\*|[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(/\*)?)$"
)
ImageRepositoryPattern = Annotated[str, StringConstraints(pattern=IMAGE_REPOSITORY_PATTERN, max_length=512)]
"""REGISTRY/REPOSITORY, REGISTRY/NAMESPACE/* or REGISTRY/* (foundry/deploy/image_reference.py matches them)."""


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
    app_roles_as_scopes: bool = False
    """True for Microsoft Entra ID with machine callers: an app-only token (client credentials; no `scp`) carries the
    app roles granted to the calling application in `roles`, and these are then read as its scopes (define app roles
    whose values are the scopes, e.g. `agentfoundry/invoke`). A token with `scp` (a user's) is read as before, its
    `roles` never. Off by default: another issuer's `roles` may be a user's roles; AUTH_APP_ROLES_AS_SCOPES."""

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
    max_token_lifetime_seconds: Annotated[int, Field(ge=60, le=2_592_000)] = 86_400
    """The longest `exp - iat` an instance accepts (a token without `iat`: `exp - now`);
    AUTH_MAX_TOKEN_LIFETIME_SECONDS."""
    jwks_refresh_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    """How often an instance reads its issuer's key set again: a key the issuer removed stops working within this
    interval, even for tokens already accepted; AUTH_JWKS_MAX_AGE_SECONDS."""

    @model_validator(mode="after")
    def _check(self) -> InstanceAuthSettings:
        if self.mode == "none" and (self.issuer is not None or self.organizations):
            raise ValueError("mode: none checks no tokens: leave out issuer and organizations, or use mode: jwt")
        return self


# --- Compute capacity and prices (issue 24): what an instance's tasks run on and what they cost ---------------

Capacity = Literal["on_demand", "spot", "spot_with_fallback"]
"""`on_demand`: Fargate. `spot`: Fargate Spot only (tasks may be stopped with two minutes' notice).
`spot_with_fallback`: the first task of each service on Fargate, the others on Fargate Spot, so an instance keeps
one task through a Spot interruption."""


class FargatePrices(Strict):
    """USD per hour of a running task's vCPU and memory (Linux/x86_64)."""

    vcpu_hour: Annotated[float, Field(ge=0)]
    gb_hour: Annotated[float, Field(ge=0)]


class ModelPrices(Strict):
    """USD per million tokens of one model (Amazon Bedrock on-demand, in and out)."""

    input_per_million: Annotated[float, Field(ge=0)]
    output_per_million: Annotated[float, Field(ge=0)]


ModelId = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^\S+$")]
DEFAULT_MODEL_PRICES: dict[str, ModelPrices] = {
    "amazon.nova-micro-v1:0": ModelPrices(input_per_million=0.035, output_per_million=0.14),
    "amazon.nova-lite-v1:0": ModelPrices(input_per_million=0.06, output_per_million=0.24),
    "amazon.nova-pro-v1:0": ModelPrices(input_per_million=0.8, output_per_million=3.2),
    "anthropic.claude-3-haiku-20240307-v1:0": ModelPrices(input_per_million=0.25, output_per_million=1.25),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ModelPrices(input_per_million=0.8, output_per_million=4.0),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": ModelPrices(input_per_million=3.0, output_per_million=15.0),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": ModelPrices(input_per_million=3.0, output_per_million=15.0),
    "anthropic.claude-3-7-sonnet-20250219-v1:0": ModelPrices(input_per_million=3.0, output_per_million=15.0),
    "anthropic.claude-sonnet-4-20250514-v1:0": ModelPrices(input_per_million=3.0, output_per_million=15.0),
}
"""Amazon Bedrock's on-demand list prices in us-east-1 (USD per million tokens, as of `taken`)."""


class PricingSettings(Strict):
    """Prices `python -m foundry plan` estimates the always-on compute cost with, and `python -m foundry usage` an
    instance's cost. The defaults are AWS's us-east-1 list prices as recorded on `taken`: Fargate (Linux/x86_64;
    Spot prices move, so they are an estimate) and Amazon Bedrock on-demand tokens per model id."""

    taken: datetime.date = datetime.date(2026, 12, 2)
    """When these prices were recorded: check them against the AWS Fargate and Bedrock pricing pages and update."""
    fargate: FargatePrices = FargatePrices(vcpu_hour=0.04048, gb_hour=0.004445)
    fargate_spot: FargatePrices = FargatePrices(vcpu_hour=0.01214, gb_hour=0.00133)
    models: dict[ModelId, ModelPrices] = Field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))
    """Bedrock model id -> token prices. Listing `models` replaces the defaults; a model not listed is priced as
    unknown (never 0). The offline provider calls no model and costs nothing."""

    @field_validator("taken", mode="before")
    @classmethod
    def _date_from_yaml(cls, value: object) -> object:
        """YAML gives a date for 2026-12-02 and a string for '2026-12-02': both are the same day."""
        return datetime.date.fromisoformat(value) if isinstance(value, str) else value


# --- Encryption at rest of an instance's data (issue 24) ----------------------------------------------------

Encryption = Literal["aws_managed", "per_instance_key"]
"""`aws_managed`: AWS's own keys (no charge). `per_instance_key`: one customer-managed KMS key per instance for its
state table, secrets and logs (about USD 1 a month per key plus requests), so offboarding can schedule the key's
deletion and leave what is retained unreadable (docs/deploy.md, "Offboarding")."""
KEY_PENDING_WINDOW_DAYS = 30
"""The days between scheduling an instance key's deletion and the deletion (KMS allows 7 to 30): the time to
change one's mind, with `aws kms cancel-key-deletion`."""


# --- Alarm notifications (issue 22): who hears of an instance's alarms --------------------------------------


class AlarmSubscriber(Strict):
    """One subscriber of the environment's alarm topic (SNS): an e-mail address, an HTTPS endpoint (a paging
    service's webhook) or an SQS queue in the environment's account and region."""

    protocol: Literal["email", "https", "sqs"]
    endpoint: NonEmpty
    """An address for email, an https:// URL for https, a queue ARN for sqs."""

    @model_validator(mode="after")
    def _check(self) -> AlarmSubscriber:
        rules = {
            "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address"),
            "https": (r"^https://[^\s]+$", "an https:// URL"),
            "sqs": (r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$", "an SQS queue ARN"),
        }
        pattern, what = rules[self.protocol]
        if re.match(pattern, self.endpoint) is None:
            raise ValueError(f"endpoint {self.endpoint!r} is not {what} (protocol {self.protocol})")
        return self


class AlarmNotifications(Strict):
    """The environment's alarm topic: every instance alarm's ALARM and OK go to it (docs/deploy.md, "Alarms")."""

    subscribers: list[AlarmSubscriber] = Field(default_factory=list)


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
    alarms: AlarmNotifications = Field(default_factory=lambda: AlarmNotifications())
    """Who is told when an instance's alarm fires (the thresholds are in the template's deploy settings)."""

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

    egress: EgressSettings = Field(default_factory=EgressSettings)
    """Where instances may connect: external MCP servers are https to public DNS names unless
    `allow_private_targets: true` (local development and tests only)."""

    capacity: Capacity = "on_demand"
    """What the instances' tasks run on: Fargate Spot is cheaper and may be interrupted (docs/deploy.md)."""
    allow_spot_in_production: bool = False
    """A production environment (prod, production) refuses Spot capacity unless this says so."""

    encryption: Encryption = "aws_managed"
    """How instances' state tables, secrets and logs are encrypted: AWS-managed keys, or one KMS key per instance
    (about USD 1 a month each: 1,000 instances cost about USD 1,000 a month more; docs/deploy.md)."""
    key_pending_window_days: Annotated[int, Field(ge=7, le=30)] = KEY_PENDING_WINDOW_DAYS
    """With per_instance_key: how long after offboarding schedules an instance key's deletion the key is deleted
    (and the retained table, logs and secret versions become unreadable)."""

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
    pricing: PricingSettings = Field(default_factory=PricingSettings)

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
            if name in PROD_ENVIRONMENTS and settings.capacity != "on_demand" and not settings.allow_spot_in_production:
                raise ValueError(
                    f"environment {name}: capacity {settings.capacity} puts a production environment's tasks on "
                    "Fargate Spot, which AWS may stop with two minutes' notice; use capacity: on_demand, or set "
                    "allow_spot_in_production: true to accept that"
                )
        return environments


class PlatformSettings(Strict):
    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["PlatformSettings"]
    spec: PlatformSpec
