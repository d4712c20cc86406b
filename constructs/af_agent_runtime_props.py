"""The props of `AfAgentRuntime` (constructs/af_agent_runtime.py): plain, frozen values of the construct's own.

Nothing here knows the control plane's manifests: `stacks/instance_stack.py` converts them into these values, so
the construct can be built (and tested) from hand-made props in any stack. Platform values may be deploy-time
tokens (SSM parameter references) as well as literals. The pure rules over these values (secret construct ids,
ECR image URIs, log retention periods) live here too, so the stack and the construct share one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_logs as logs


@dataclass(frozen=True)
class ImageFromAsset:
    """Build runtime/Dockerfile as a CDK image asset (the build context is `directory`, the repository root)."""

    directory: str
    dockerfile: str


@dataclass(frozen=True)
class ImageFromUri:
    """A prebuilt image, e.g. pushed by a pipeline: `-c runtimeImage=URI`."""

    uri: str


RuntimeImage = ImageFromAsset | ImageFromUri


@dataclass(frozen=True, kw_only=True)
class RuntimeIdentity:
    """Who the runtime is: its identity variables, its tags and the hostname its listener rule matches."""

    organization_id: str
    domain_id: str
    environment: str
    instance_id: str
    hostname: str

    @property
    def selector(self) -> str:
        return f"{self.organization_id}/{self.domain_id}/{self.instance_id}"

    @property
    def tags(self) -> dict[str, str]:
        """The instance's tags, for resources that carry them in the template itself (not only as stack tags)."""
        return {
            "agentfoundry:organization": self.organization_id,
            "agentfoundry:domain": self.domain_id,
            "agentfoundry:environment": self.environment,
            "agentfoundry:instance": self.instance_id,
        }


@dataclass(frozen=True, kw_only=True)
class ShardAttributes:
    """The instance's ALB shard: the listener its rule joins and the load balancer its record aliases. Values
    or deploy-time tokens (SSM parameter references)."""

    listener_arn: str
    load_balancer_arn: str
    security_group_id: str
    dns_name: str
    canonical_hosted_zone_id: str


@dataclass(frozen=True, kw_only=True)
class RuntimePlatform:
    """What the runtime runs on, owned by the environment's platform stack."""

    cluster_name: str
    vpc_id: str
    availability_zones: Sequence[str]
    private_subnet_ids: Sequence[str]
    """One per availability zone, in the same order (values or tokens)."""
    hosted_zone_id: str
    zone_name: str
    shard: ShardAttributes


@dataclass(frozen=True, kw_only=True)
class TaskSizing:
    """Fargate sizing and CPU target-tracking autoscaling. `cpu`/`memory_mib` must be a pair Fargate offers."""

    cpu: int
    """CPU units (256 = 0.25 vCPU)."""
    memory_mib: int
    min_tasks: int
    max_tasks: int
    cpu_target_percent: int
    """The average CPU utilization autoscaling keeps the service at."""


@dataclass(frozen=True, kw_only=True)
class OffHours:
    """Scheduled actions of the service's scalable target: 0 tasks from `stop`, min..max tasks again from `start`,
    both in `time_zone` (an IANA name)."""

    stop: appscaling.CronOptions
    start: appscaling.CronOptions
    time_zone: str


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """Whether the runtime runs, when, and on which Fargate capacity."""

    paused: bool = False
    """No task runs (desired 0, scaling 0..0, no scheduled action) and the listener rule answers 503 itself."""
    off_hours: OffHours | None = None
    capacity: str = "on_demand"
    """`on_demand` (Fargate), `spot` (Fargate Spot only) or `spot_with_fallback` (the first task on Fargate, the
    others on Fargate Spot). Spot needs the cluster's Fargate capacity providers (the platform stack enables them)."""


@dataclass(frozen=True, kw_only=True)
class InstanceKey:
    """A customer-managed KMS key of the instance's own for its state table, secrets and log groups (rotated yearly,
    retained when the stack is deleted, so that offboarding can schedule its deletion after exporting the data)."""

    pending_window_days: int = 30
    """The waiting period (7 to 30 days) of a scheduled deletion of the key."""

    def alias(self, identity: RuntimeIdentity) -> str:
        """'alias/agentfoundry/dev/acme/retail/dev': the key's name in KMS, naming the instance."""
        return f"alias/agentfoundry/{identity.environment}/{identity.selector}"


@dataclass(frozen=True, order=True, kw_only=True)
class BedrockFoundationModel:
    """One Amazon Bedrock foundation model the task role may invoke, in the region it is called in."""

    region: str
    model_id: str

    def arn(self, partition: str) -> str:
        return f"arn:{partition}:bedrock:{self.region}::foundation-model/{self.model_id}"


@dataclass(frozen=True, kw_only=True)
class TelemetryCollector:
    """The AWS Distro for OpenTelemetry collector each task runs beside the runtime (non-essential)."""

    image: str
    """A pinned image, e.g. public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0."""
    config_yaml: str
    """The collector's configuration (constructs/af_otel_collector.yaml), passed as AOT_CONFIG_CONTENT."""
    memory_limit_mib: int = 128
    """The collector's hard memory limit: it is stopped (and only it) before it can starve the runtime."""


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    """When the instance's alarms fire (one-minute periods; constructs/af_agent_runtime_alarms.py)."""

    target_5xx_percent: float
    p95_response_seconds: float
    unhealthy_hosts: int
    error_rate_percent: float
    evaluation_minutes: int


@dataclass(frozen=True, kw_only=True)
class AgentRuntimeProps:
    identity: RuntimeIdentity
    platform: RuntimePlatform
    image: RuntimeImage
    sizing: TaskSizing
    bundle_path: str
    """The bundle archive on disk (staged and published as a content-addressed S3 asset)."""
    bundle_hash: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret name in the manifest -> Secrets Manager name. Values are never in code or templates."""
    listener_priority: int
    log_retention_days: int
    bedrock_models: Sequence[BedrockFoundationModel] = ()
    """Exactly the foundation models the task role may invoke, in the order its policy lists them."""
    family: str
    """The task definition family (the stack name)."""
    region: str
    """The region the runtime runs in (AWS_REGION, the log driver's region)."""
    thread_state_point_in_time_recovery: bool = True
    """Continuous backups of the instance's thread-state table (the environment's setting)."""
    auth_environment: Mapping[str, str]
    """The runtime's AUTH_* variables: who may call the instance. Values or tokens. Required, with no default: a
    runtime open to every caller must say so (`{"AUTH_MODE": "none"}`), never be one because auth was forgotten."""
    telemetry: TelemetryCollector
    """The OpenTelemetry collector beside the runtime: traces to X-Ray, metrics to CloudWatch."""
    alarms: AlarmThresholds
    alarm_topic_arn: str | None = None
    """The environment's alarm topic (SNS): every alarm's ALARM and OK go there. None: the alarms notify no one."""
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    """Paused, off-hours schedule and capacity; the default runs always, on demand."""
    encryption_key: InstanceKey | None = None
    """A KMS key of the instance's own for its table, secrets and logs; None: AWS-managed encryption."""


def check_auth_environment(selector: str, auth_environment: Mapping[str, str]) -> None:
    """The explicit auth choice the runtime needs: an issuer (AUTH_ISSUER) or AUTH_MODE=none, not both, not neither.
    Raised at synth, so a template never ships a runtime that refuses to start or serves everyone by accident."""
    mode = auth_environment.get("AUTH_MODE")
    issuer = auth_environment.get("AUTH_ISSUER")
    where = f"instance {selector}: auth_environment"
    if mode not in (None, "jwt", "none"):
        raise ValueError(f"{where}: AUTH_MODE must be 'jwt' or 'none', got {mode!r}")
    if mode == "none" and issuer:
        raise ValueError(f"{where}: AUTH_MODE=none and AUTH_ISSUER exclude each other")
    if mode != "none" and not issuer:
        raise ValueError(
            f"{where} chooses no caller authentication ({dict(auth_environment)!r}): pass AUTH_ISSUER and the other "
            "AUTH_* variables (foundry.manifests.instance_auth resolves them from agents/platform.yaml), or, only "
            "behind an internal load balancer, {'AUTH_MODE': 'none'} explicitly"
        )


ALARM_KINDS = ("target-5xx-rate", "target-p95-response-time", "unhealthy-hosts", "runtime-error-rate")
"""The instance's alarms, by the suffix of their names."""
DEPLOYMENT_ALARM_KINDS = ("target-5xx-rate", "runtime-error-rate")
"""The error alarms: the ECS service rolls a deployment back when one of them fires during it."""


def alarm_name(family: str, kind: str) -> str:
    """'af-dev-acme-retail-dev', 'target-5xx-rate' -> 'af-dev-acme-retail-dev-target-5xx-rate'."""
    return f"{family}-{kind}"


def secret_construct_id(name: str) -> str:
    """'api-key' -> 'ApiKey'."""
    return "".join(part.capitalize() for part in name.split("-"))


_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[a-z0-9._/-]+)[:@]"
)


def ecr_repository(image_uri: str) -> tuple[str, str, str] | None:
    """(account, region, repository) of an ECR image URI, or None for another registry."""
    match = _ECR_IMAGE.match(image_uri)
    return None if match is None else (match["account"], match["region"], match["repo"])


_RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def log_retention(days: int) -> logs.RetentionDays:
    """CloudWatch Logs' retention periods (the settings schema allows only these)."""
    if days not in _RETENTION_DAYS:
        raise ValueError(f"log retention of {days} days is not one CloudWatch Logs offers: {sorted(_RETENTION_DAYS)}")
    return logs.RetentionDays[_RETENTION_DAYS[days]]
