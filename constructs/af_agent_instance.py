"""One agent instance as a reusable CDK construct (L3), made of aws-cdk-lib L2 constructs.

`AgentInstance` runs the one runtime image on Fargate for one (organization, domain, instance): its Secrets Manager
secrets, its bundle as an S3 asset, a task definition and service (circuit breaker with rollback, CPU
autoscaling), a target group with a host-header rule on its ALB shard's listener, an alias record, a security group
and a log group. Platform values (VPC, subnets, zone, listener, load balancer) arrive as plain values or tokens in
`AgentInstancePlatform` and are handed to the L2 import helpers; the construct reads no environment, file or AWS.

This module is the one place that knows the runtime's port, health paths and environment variables (the contract
with runtime/). Extend an instance the CDK way: `Tags.of(instance)`, `Aspects.of(instance)`,
`RemovalPolicies.of(instance)`, grants to `instance.task_role`, `instance.container.add_environment(...)`, or an
escape hatch on `instance.service.node.default_child` (docs/cdk.md, "Extending an instance").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jsii
from aws_cdk import Annotations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct
from constructs import af_shared_values as shared
from constructs.af_instance_state import AfInstanceState
from constructs.af_nag import acknowledge
from foundry.manifests.bedrock_models import BedrockModel
from foundry.manifests.schema import DeploySettings

CONTAINER_NAME = "runtime"
CONTAINER_PORT = 8080
READY_PATH = "/readyz"
"""200 once the bundle is loaded and the graph built, 503 while draining: what the target group checks."""
MCP_PATH = "/mcp"
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"
"""RFC 9728 metadata (open): where a client learns the instance's authorization server."""
FORWARDED_PATHS = (MCP_PATH, PROTECTED_RESOURCE_PATH, f"{PROTECTED_RESOURCE_PATH}/*")
"""All the listener rule forwards: /metrics, /healthz and /readyz stay inside the VPC (the target group's health
check reaches /readyz directly)."""
STATE_ID = "State"
"""The thread-state construct's id: never change it (a new logical id replaces the table, with every thread)."""
HEALTH_CHECK_GRACE_SECONDS = 60
HEALTH_CHECK_COMMAND = ["CMD", "python", "-m", "runtime", "healthcheck"]
"""The container's own health check: exits 0 when the runtime's local /healthz answers."""
SCRATCH_VOLUME = "tmp"
ECS_TASKS = "ecs-tasks.amazonaws.com"
SCRATCH_PATH = "/tmp"  # noqa: S108 - the container's own task-local volume, not a shared host directory
"""The only writable path of the container (task-local storage); the root filesystem is read-only."""

_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[a-z0-9._/-]+)[:@]"
)
IAM5_REASON = (
    "ecr:GetAuthorizationToken has no resource-level permissions in IAM; the image pull itself is limited "
    "to the runtime repository"
)
ECS2_REASON = (
    "the environment variables are the instance's identity and bundle location (the runtime contract); "
    "every secret is injected from Secrets Manager, never as a variable"
)
SMG4_REASON = (
    "these hold credentials issued by third parties (model providers, ticket systems) that operators set "
    "and rotate at the issuer; Secrets Manager cannot rotate them itself"
)


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
class InstanceIdentity:
    organization_id: str
    domain_id: str
    environment: str
    instance_id: str
    hostname: str

    @property
    def selector(self) -> str:
        return f"{self.organization_id}/{self.domain_id}/{self.instance_id}"


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
class AgentInstancePlatform:
    """What the instance runs on, owned by the environment's platform stack."""

    cluster_name: str
    vpc_id: str
    availability_zones: Sequence[str]
    private_subnet_ids: Sequence[str]
    """One per availability zone, in the same order (values or tokens)."""
    hosted_zone_id: str
    zone_name: str
    shard: ShardAttributes


@dataclass(frozen=True, kw_only=True)
class AgentInstanceProps:
    identity: InstanceIdentity
    platform: AgentInstancePlatform
    image: RuntimeImage
    deploy: DeploySettings
    """cpu, memory, min/max tasks and the CPU target of autoscaling."""
    bundle_path: str
    """The bundle archive on disk (staged and published as a content-addressed S3 asset)."""
    bundle_hash: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret name in the manifest -> Secrets Manager name. Values are never in code or templates."""
    listener_priority: int
    log_retention_days: int
    bedrock_models: Sequence[BedrockModel] = ()
    """Exactly the foundation models the task role may invoke (foundry.manifests.bedrock_models)."""
    family: str
    """The task definition family (the stack name)."""
    region: str
    """The region the runtime runs in (AWS_REGION, the log driver's region)."""
    thread_state_point_in_time_recovery: bool = True
    """Continuous backups of the instance's thread-state table (the environment's setting)."""
    auth_environment: Mapping[str, str] = field(default_factory=lambda: {"AUTH_MODE": "none"})
    """The runtime's AUTH_* variables (foundry.manifests.instance_auth): who may call the instance. Values or tokens."""


@jsii.implements(route53_targets.IAliasRecordTargetProps)
class _EvaluateTargetHealth:
    """The record follows the health of the load balancer's targets (Route 53 answers only while it has some)."""

    @property
    def evaluate_target_health(self) -> bool:
        return True

    @property
    def hosted_zone_id(self) -> str | None:
        return None


def secret_construct_id(name: str) -> str:
    """'api-key' -> 'ApiKey'."""
    return "".join(part.capitalize() for part in name.split("-"))


def secret_env_var(name: str) -> str:
    """'api-key' -> 'SECRET_API_KEY': the variable ECS injects the value into (the runtime contract)."""
    return "SECRET_" + name.upper().replace("-", "_")


def ecr_repository(image_uri: str) -> tuple[str, str, str] | None:
    """(account, region, repository) of an ECR image URI, or None for another registry."""
    match = _ECR_IMAGE.match(image_uri)
    return None if match is None else (match["account"], match["region"], match["repo"])


class AgentInstance(Construct):
    """One agent instance. Public attributes are the L2 constructs, for composition and extension: `secrets`,
    `bundle`, `state` (the thread-state table), `log_group`, `task_role`, `execution_role`, `task_definition`,
    `container`, `security_group`, `service`, `scaling`, `target_group`, `listener_rule`, `record`."""

    def __init__(self, scope: Construct, id_: str, *, props: AgentInstanceProps) -> None:
        super().__init__(scope, id_)
        identity, platform, deploy = props.identity, props.platform, props.deploy
        who = identity.selector

        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=platform.vpc_id,
            availability_zones=list(platform.availability_zones),
            private_subnet_ids=list(platform.private_subnet_ids),
        )
        Annotations.of(vpc).acknowledge_warning(
            "@aws-cdk/aws-ec2:noSubnetRouteTableId",
            "tasks only place network interfaces in these subnets; no route table is ever read",
        )
        cluster = ecs.Cluster.from_cluster_attributes(self, "Cluster", cluster_name=platform.cluster_name, vpc=vpc)

        self.secrets: dict[str, secretsmanager.Secret] = {}
        for name in sorted(props.secrets):
            secret = secretsmanager.Secret(
                self,
                f"Secret{secret_construct_id(name)}",
                secret_name=props.secrets[name],
                description=f"Agent Foundry {identity.environment}/{who}: {name} "
                "(placeholder until an operator sets the value)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=32, exclude_punctuation=True
                ),
            )
            acknowledge(secret, "AwsSolutions-SMG4", SMG4_REASON)
            self.secrets[name] = secret

        self.bundle = s3_assets.Asset(self, "Bundle", path=props.bundle_path)
        self.bundle_uri = self.bundle.s3_object_url
        # The instance's own data: its threads outlive tasks, deploys and a deleted stack (RETAIN).
        # Tagged in the template itself (not only through stack tags), so cost allocation sees the tenant's table.
        self.state = AfInstanceState(
            self,
            STATE_ID,
            point_in_time_recovery=props.thread_state_point_in_time_recovery,
            tags={
                "agentfoundry:organization": identity.organization_id,
                "agentfoundry:domain": identity.domain_id,
                "agentfoundry:environment": identity.environment,
                "agentfoundry:instance": identity.instance_id,
            },
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention(props.log_retention_days))

        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            description=f"Starts the tasks of {who}",
            assumed_by=shared.service_principal(ECS_TASKS),
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            description=f"The runtime of {who}",
            assumed_by=shared.service_principal(ECS_TASKS).with_conditions(
                {"StringEquals": {"aws:SourceAccount": shared.account_id()}}
            ),
        )
        # Not Asset.grant_read: that grants the whole assets bucket. This instance reads its own object only.
        self.task_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bundle.bucket.arn_for_objects(self.bundle.s3_object_key)],
            )
        )
        self.state.grant_task(self.task_role)
        if props.bedrock_models:
            self.task_role.add_to_policy(
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    resources=[model.arn(shared.partition()) for model in props.bedrock_models],
                )
            )

        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=props.family,
            cpu=deploy.cpu,
            memory_limit_mib=deploy.memory,
            execution_role=self.execution_role,
            task_role=self.task_role,
            runtime_platform=shared.linux_x86_64(),
            volumes=[ecs.Volume(name=SCRATCH_VOLUME)],
        )
        acknowledge(self.task_definition, "AwsSolutions-ECS2", ECS2_REASON)
        acknowledge(self.execution_role, "AwsSolutions-IAM5[Resource::*]", IAM5_REASON)
        environment = {
            "ORG_ID": identity.organization_id,
            "DOMAIN_ID": identity.domain_id,
            "ENVIRONMENT": identity.environment,
            "INSTANCE_ID": identity.instance_id,
            "BUNDLE_URI": self.bundle_uri,
            "BUNDLE_HASH": props.bundle_hash,
            "PORT": str(CONTAINER_PORT),
            "ALLOWED_HOSTS": identity.hostname,
            "AWS_REGION": props.region,
            **self.state.task_environment,
            **props.auth_environment,
        }
        image, pulls_itself = self._image(props.image)
        self.container = self.task_definition.add_container(
            "Runtime",
            container_name=CONTAINER_NAME,
            image=image,
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment={key: environment[key] for key in sorted(environment)},
            secrets={
                secret_env_var(name): ecs.Secret.from_secrets_manager(self.secrets[name])
                for name in sorted(self.secrets)
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix=CONTAINER_NAME, log_group=self.log_group),
            readonly_root_filesystem=True,
            health_check=ecs.HealthCheck(
                command=HEALTH_CHECK_COMMAND,
                interval=shared.seconds(15),
                timeout=shared.seconds(5),
                retries=3,
                start_period=shared.seconds(30),
            ),
        )
        if pulls_itself:
            Annotations.of(self.container).acknowledge_warning(
                "@aws-cdk/aws-ecs:ecrImageRequiresPolicy",
                "the execution role is granted pulls from the prebuilt image's ECR repository (and only that one)",
            )
        self.container.add_mount_points(
            ecs.MountPoint(container_path=SCRATCH_PATH, source_volume=SCRATCH_VOLUME, read_only=False)
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Runtime tasks - only the ALB shard of the instance, on the container port",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(shared.any_ipv4(), shared.tcp_port(443), "AWS APIs (HTTPS)")

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            # No desired_count: autoscaling owns the task count, so a deploy keeps the scaled count.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=shared.seconds(HEALTH_CHECK_GRACE_SECONDS),
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
            security_groups=[self.security_group],
            enable_ecs_managed_tags=True,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.scaling = self.service.auto_scale_task_count(min_capacity=deploy.min_tasks, max_capacity=deploy.max_tasks)
        self.scaling.scale_on_cpu_utilization(
            "CpuScaling",
            policy_name="cpu-target",
            target_utilization_percent=deploy.cpu_target_percent,
            scale_in_cooldown=shared.seconds(120),
            scale_out_cooldown=shared.seconds(60),
        )

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=vpc,
            target_type=elbv2.TargetType.IP,
            protocol=elbv2.ApplicationProtocol.HTTP,
            port=CONTAINER_PORT,
            health_check=elbv2.HealthCheck(
                enabled=True,
                protocol=elbv2.Protocol.HTTP,
                path=READY_PATH,
                interval=shared.seconds(15),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
                healthy_http_codes="200",
            ),
            deregistration_delay=shared.seconds(30),
        )
        shard = platform.shard
        shard_security_group = ec2.SecurityGroup.from_security_group_id(
            self, "ShardSecurityGroup", shard.security_group_id, mutable=False
        )
        listener = elbv2.ApplicationListener.from_application_listener_attributes(
            self, "ShardListener", listener_arn=shard.listener_arn, security_group=shard_security_group
        )
        self.listener_rule = elbv2.ApplicationListenerRule(
            self,
            "ListenerRule",
            listener=listener,
            priority=props.listener_priority,
            conditions=[
                elbv2.ListenerCondition.host_headers([identity.hostname]),
                shared.path_patterns(FORWARDED_PATHS),
            ],
            target_groups=[self.target_group],
        )
        # Registers the tasks in the target group; the service waits for the rule (ECS only accepts a target group
        # a listener forwards to), and the tasks' group admits the shard's load balancer on the container port.
        self.service.attach_to_application_target_group(self.target_group)

        load_balancer = elbv2.ApplicationLoadBalancer.from_application_load_balancer_attributes(
            self,
            "ShardLoadBalancer",
            load_balancer_arn=shard.load_balancer_arn,
            security_group_id=shard.security_group_id,
            load_balancer_dns_name=shard.dns_name,
            load_balancer_canonical_hosted_zone_id=shard.canonical_hosted_zone_id,
        )
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=platform.hosted_zone_id, zone_name=platform.zone_name
        )
        self.record = route53.ARecord(
            self,
            "Alias",
            zone=zone,
            record_name=f"{identity.hostname}.",
            target=route53.RecordTarget.from_alias(
                route53_targets.LoadBalancerTarget(load_balancer, _EvaluateTargetHealth())
            ),
        )

    def _image(self, image: RuntimeImage) -> tuple[ecs.ContainerImage, bool]:
        """(the image, whether the execution role was granted pulls here). A prebuilt ECR image may be pulled from
        its repository only; an image asset grants the same itself."""
        if isinstance(image, ImageFromAsset):
            asset = ecs.ContainerImage.from_asset(
                image.directory, file=image.dockerfile, platform=ecr_assets.Platform.LINUX_AMD64
            )
            return asset, False
        repository = ecr_repository(image.uri)
        if repository is not None:
            account, region, name = repository
            ecr.Repository.from_repository_attributes(
                self,
                "RuntimeRepository",
                repository_arn=f"arn:{shared.partition()}:ecr:{region}:{account}:repository/{name}",
                repository_name=name,
            ).grant_pull(self.execution_role)
        return shared.registry_image(image.uri), repository is not None


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
