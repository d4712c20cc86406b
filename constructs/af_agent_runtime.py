"""One agent instance's runtime as a reusable CDK construct (L3), made of aws-cdk-lib L2 constructs.

`AfAgentRuntime` runs the one runtime image on Fargate for one (organization, domain, instance): its secrets, its
bundle as an S3 asset, its thread-state table, a task definition and service (circuit breaker with rollback, CPU
autoscaling), a target group with a host-header rule on its ALB shard's listener, an alias record, a security group
and a log group; an OpenTelemetry collector beside the runtime (traces to X-Ray, metrics to CloudWatch) and the
instance's CloudWatch alarms, the error alarms also rolling back an ECS deployment. Its props
(constructs/af_agent_runtime_props.py) are plain values of its own, platform values may be tokens; it reads no
environment, file or AWS. This module is the one place that knows the runtime's port, health paths and environment
variables (the contract with runtime/). Extending it: docs/cdk.md, "Extending an instance".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce

import jsii
from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct
from constructs import af_shared_values as shared
from constructs.af_agent_runtime_alarms import add_alarms
from constructs.af_agent_runtime_props import (
    DEPLOYMENT_ALARM_KINDS,
    AgentRuntimeProps,
    BedrockFoundationModel,
    ImageFromAsset,
    InstanceKey,
    RuntimeIdentity,
    RuntimeImage,
    RuntimePlatform,
    ShardAttributes,
    TaskSizing,
    alarm_name,
    check_auth_environment,
    ecr_repository,
    log_retention,
    secret_construct_id,
)
from constructs.af_agent_runtime_telemetry import add_collector, metric_dimensions, runtime_otel_environment
from constructs.af_instance_state import AfInstanceState
from constructs.af_nag import acknowledge
from constructs.af_runtime_lifecycle import add_off_hours, effective_sizing, rule_action, service_options
from instance_contract.mcp_sessions import SESSION_COOKIE, SESSION_IDLE_SECONDS

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
KEY_ID = "Key"
"""The instance key's construct id (only with `encryption_key`): never change it (a new key could not read the data
the old one encrypted)."""
STATE_ID = "State"
"""The thread-state construct's id: never change it (a new logical id replaces the table, with every thread)."""
HEALTH_CHECK_GRACE_SECONDS = 60
HEALTH_CHECK_COMMAND = ["CMD", "python", "-m", "runtime", "healthcheck"]
"""The container's own health check: exits 0 when the runtime's local /healthz answers."""
SCRATCH_VOLUME = "tmp"
ECS_TASKS = "ecs-tasks.amazonaws.com"
SCRATCH_PATH = "/tmp"  # noqa: S108 - the container's own task-local volume, not a shared host directory
"""The only writable path of the container (task-local storage); the root filesystem is read-only."""

IAM5_REASON = (
    "ecr:GetAuthorizationToken has no resource-level permissions in IAM; the image pull itself is limited "
    "to the runtime repository"
)
KMS_IAM5_REASON = (
    "DynamoDB's grant of a table encrypted with a customer-managed key: the actions cover data-key generation and "
    "re-encryption of the instance's own key only (the statement's resource is that one key)"
)
ECS2_REASON = (
    "the environment variables are the instance's identity and bundle location (the runtime contract); "
    "every secret is injected from Secrets Manager, never as a variable"
)
SMG4_REASON = (
    "these hold credentials issued by third parties (model providers, ticket systems) that operators set "
    "and rotate at the issuer; Secrets Manager cannot rotate them itself"
)


def secret_env_var(name: str) -> str:
    """'api-key' -> 'SECRET_API_KEY': the variable ECS injects the value into (the runtime contract)."""
    return "SECRET_" + name.upper().replace("-", "_")


@jsii.implements(ec2.IConnectable)
class AfAgentRuntime(Construct):
    """One agent instance's runtime. Public attributes are the L2 constructs, for composition and extension:
    `secrets`, `bundle`, `state` (the thread-state table), `log_group`, `task_role`, `execution_role`,
    `task_definition`, `container`, `collector` (the OpenTelemetry sidecar and its metrics log group),
    `security_group`, `service`, `scaling`, `target_group`, `listener_rule`, `record`, `alarms` (by kind),
    `lifecycle` (paused, off-hours, capacity: constructs/af_runtime_lifecycle.py), `key` (the instance's own KMS
    key, or None for AWS-managed encryption); `connections` and the `grant_*`
    methods give others access the CDK way.

    The steps run in a fixed order: it decides the order of resources and policy statements in the template."""

    def __init__(self, scope: Construct, id_: str, *, props: AgentRuntimeProps) -> None:
        super().__init__(scope, id_)
        check_auth_environment(props.identity.selector, props.auth_environment)
        self._connections: ec2.Connections | None = None
        identity, platform = props.identity, props.platform
        vpc, cluster = self._import_network(platform)
        self.key = self._add_key(identity, props.encryption_key, props.region)
        self.secrets = self._add_secrets(identity, props.secrets)
        self.bundle = s3_assets.Asset(self, "Bundle", path=props.bundle_path)
        self.bundle_uri = self.bundle.s3_object_url
        self.state = self._add_state(identity, point_in_time_recovery=props.thread_state_point_in_time_recovery)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention(props.log_retention_days), encryption_key=self.key
        )
        self.execution_role, self.task_role = self._add_roles(identity.selector, props.bedrock_models)
        if self.key is not None:
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                acknowledge(self.task_role, f"AwsSolutions-IAM5[Action::{action}]", KMS_IAM5_REASON)
        self.task_definition = self._add_task_definition(props.family, props.sizing)
        self.container = self._add_container(props)
        self.collector = add_collector(
            self,
            family=props.family,
            task_definition=self.task_definition,
            task_role=self.task_role,
            identity=identity,
            collector=props.telemetry,
            region=props.region,
            log_group=self.log_group,
            retention=log_retention(props.log_retention_days),
            encryption_key=self.key,
        )
        self.security_group = self._add_security_group(vpc)
        self.lifecycle = props.lifecycle
        self.service, self.scaling = self._add_service(cluster, vpc, effective_sizing(props.sizing, self.lifecycle))
        add_off_hours(self.scaling, props.sizing, self.lifecycle)
        self.target_group, self.listener_rule = self._add_routing(
            vpc, identity.hostname, platform.shard, props.listener_priority
        )
        self.record = self._add_record(platform, identity.hostname)
        self.alarms = add_alarms(
            self,
            family=props.family,
            target_group=self.target_group,
            load_balancer_arn=platform.shard.load_balancer_arn,
            runtime_dimensions=metric_dimensions(identity),
            thresholds=props.alarms,
            topic_arn=props.alarm_topic_arn,
        )
        # ECS rolls a deployment back when an error alarm fires during it (besides its circuit breaker). The names
        # are literals (a Ref would tie the service to the alarms' logical ids); the service waits for the alarms.
        self.service.enable_deployment_alarms(
            [alarm_name(props.family, kind) for kind in DEPLOYMENT_ALARM_KINDS],
            behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
        )
        self.service.node.add_dependency(*(self.alarms[kind] for kind in DEPLOYMENT_ALARM_KINDS))

    @property
    def connections(self) -> ec2.Connections:
        """The tasks' security group, with the container port as its default port:
        `runtime.connections.allow_default_port_from(peer)` lets `peer` reach the runtime (its shard's load balancer
        is admitted already). Outbound, the tasks reach HTTPS (443) only."""
        if self._connections is None:
            self._connections = ec2.Connections(
                security_groups=[self.security_group], default_port=shared.tcp_port(CONTAINER_PORT)
            )
        return self._connections

    def grant_read_state(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read of this runtime's thread-state table only (items, queries, scans, DescribeTable): for an export
        job or a support tool that reads conversations. The runtime's own task role reads and writes already."""
        return self.state.grant_read(grantee)

    def grant_read_secrets(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read of this runtime's Secrets Manager secrets, each by its ARN (GetSecretValue, DescribeSecret): for a
        sidecar or job that uses the same credentials. A runtime without secrets grants nothing."""
        grants = [self.secrets[name].grant_read(grantee) for name in sorted(self.secrets)]
        if not grants:
            return iam.Grant.drop(grantee, "read this runtime's secrets (it has none)")
        return reduce(iam.Grant.combine, grants)

    def _import_network(self, platform: RuntimePlatform) -> tuple[ec2.IVpc, ecs.ICluster]:
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
        return vpc, cluster

    def _add_key(self, identity: RuntimeIdentity, key: InstanceKey | None, region: str) -> kms.Key | None:
        """The instance's own KMS key, when its environment chooses one (None: AWS-managed encryption). Retained
        when the stack is deleted: offboarding exports the data, then schedules the key's deletion itself. The key
        policy admits CloudWatch Logs for this account's log groups in `region` (AWS requires it of a log group's
        key); the table and secrets grant their readers the key through their own grants."""
        if key is None:
            return None
        instance_key = kms.Key(
            self,
            KEY_ID,
            alias=key.alias(identity),
            description=f"Agent Foundry {identity.environment}/{identity.selector}: its state table, secrets and logs",
            enable_key_rotation=True,
            pending_window=Duration.days(key.pending_window_days),
            removal_policy=RemovalPolicy.RETAIN,
        )
        log_groups = f"arn:{shared.partition()}:logs:{region}:{shared.account_id()}:log-group:*"
        instance_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )
        return instance_key

    def _add_secrets(self, identity: RuntimeIdentity, names: Mapping[str, str]) -> dict[str, secretsmanager.Secret]:
        """One secret per manifest name, with a generated placeholder until an operator sets the real value."""
        secrets: dict[str, secretsmanager.Secret] = {}
        for name in sorted(names):
            secret = secretsmanager.Secret(
                self,
                f"Secret{secret_construct_id(name)}",
                secret_name=names[name],
                description=f"Agent Foundry {identity.environment}/{identity.selector}: {name} "
                "(placeholder until an operator sets the value)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=32, exclude_punctuation=True
                ),
                encryption_key=self.key,
            )
            acknowledge(secret, "AwsSolutions-SMG4", SMG4_REASON)
            secrets[name] = secret
        return secrets

    def _add_state(self, identity: RuntimeIdentity, *, point_in_time_recovery: bool) -> AfInstanceState:
        """The instance's own data: its threads outlive tasks, deploys and a deleted stack (RETAIN). Tagged in the
        template itself (not only through stack tags), so cost allocation sees the tenant's table."""
        return AfInstanceState(
            self, STATE_ID, point_in_time_recovery=point_in_time_recovery, tags=identity.tags, encryption_key=self.key
        )

    def _add_roles(self, who: str, bedrock_models: Sequence[BedrockFoundationModel]) -> tuple[iam.Role, iam.Role]:
        """(execution role, task role). The task role reads its own bundle object, reads and writes its state, and
        invokes exactly its Bedrock models; it is trusted only from the stack's own account."""
        tasks = shared.service_principal(ECS_TASKS)
        execution_role = iam.Role(self, "ExecutionRole", description=f"Starts the tasks of {who}", assumed_by=tasks)
        task_role = iam.Role(
            self,
            "TaskRole",
            description=f"The runtime of {who}",
            assumed_by=tasks.with_conditions({"StringEquals": {"aws:SourceAccount": shared.account_id()}}),
        )
        # Not Asset.grant_read: that grants the whole assets bucket. This instance reads its own object only.
        task_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bundle.bucket.arn_for_objects(self.bundle.s3_object_key)],
            )
        )
        self.state.grant_task(task_role)
        if bedrock_models:
            task_role.add_to_policy(
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    resources=[model.arn(shared.partition()) for model in bedrock_models],
                )
            )
        return execution_role, task_role

    def _add_task_definition(self, family: str, sizing: TaskSizing) -> ecs.FargateTaskDefinition:
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=family,
            cpu=sizing.cpu,
            memory_limit_mib=sizing.memory_mib,
            execution_role=self.execution_role,
            task_role=self.task_role,
            runtime_platform=shared.linux_x86_64(),
            volumes=[ecs.Volume(name=SCRATCH_VOLUME)],
        )
        acknowledge(task_definition, "AwsSolutions-ECS2", ECS2_REASON)
        acknowledge(self.execution_role, "AwsSolutions-IAM5[Resource::*]", IAM5_REASON)
        return task_definition

    def _add_container(self, props: AgentRuntimeProps) -> ecs.ContainerDefinition:
        """The runtime container: its identity and bundle as variables, its secrets injected by ECS, a read-only
        root filesystem with /tmp as the only writable path, and the runtime's own health check."""
        identity = props.identity
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
            **runtime_otel_environment(),
        }
        image, pulls_itself = self._image(props.image)
        container = self.task_definition.add_container(
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
            Annotations.of(container).acknowledge_warning(
                "@aws-cdk/aws-ecs:ecrImageRequiresPolicy",
                "the execution role is granted pulls from the prebuilt image's ECR repository (and only that one)",
            )
        container.add_mount_points(
            ecs.MountPoint(container_path=SCRATCH_PATH, source_volume=SCRATCH_VOLUME, read_only=False)
        )
        return container

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

    def _add_security_group(self, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Runtime tasks - only the ALB shard of the instance, on the container port",
            allow_all_outbound=False,
        )
        security_group.add_egress_rule(shared.any_ipv4(), shared.tcp_port(443), "AWS APIs (HTTPS)")
        return security_group

    def _add_service(
        self, cluster: ecs.ICluster, vpc: ec2.IVpc, sizing: TaskSizing
    ) -> tuple[ecs.FargateService, ecs.ScalableTaskCount]:
        """The service in private subnets, rolled back by its circuit breaker, scaled on CPU between min and max."""
        service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            # No desired_count: autoscaling owns the task count, so a deploy keeps the scaled count.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Only with a load balancer (ECS refuses it otherwise): a paused service has none.
            health_check_grace_period=None if self.lifecycle.paused else shared.seconds(HEALTH_CHECK_GRACE_SECONDS),
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            enable_ecs_managed_tags=True,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            **service_options(self.lifecycle),
        )
        scaling = service.auto_scale_task_count(min_capacity=sizing.min_tasks, max_capacity=sizing.max_tasks)
        scaling.scale_on_cpu_utilization(
            "CpuScaling",
            policy_name="cpu-target",
            target_utilization_percent=sizing.cpu_target_percent,
            scale_in_cooldown=shared.seconds(120),
            scale_out_cooldown=shared.seconds(60),
        )
        return service, scaling

    def _add_routing(
        self, vpc: ec2.IVpc, hostname: str, shard: ShardAttributes, priority: int
    ) -> tuple[elbv2.ApplicationTargetGroup, elbv2.ApplicationListenerRule]:
        """A target group on /readyz and a host-header rule on the shard's listener that forwards to it. The group
        sticks a client to a task only while the runtime marks its responses with the MCP session cookie (a session
        of a client asked for approvals inline, instance_contract.mcp_sessions); every other request is balanced."""
        target_group = elbv2.ApplicationTargetGroup(
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
            stickiness_cookie_name=SESSION_COOKIE,
            stickiness_cookie_duration=shared.seconds(SESSION_IDLE_SECONDS),
        )
        shard_security_group = ec2.SecurityGroup.from_security_group_id(
            self, "ShardSecurityGroup", shard.security_group_id, mutable=False
        )
        listener = elbv2.ApplicationListener.from_application_listener_attributes(
            self, "ShardListener", listener_arn=shard.listener_arn, security_group=shard_security_group
        )
        listener_rule = elbv2.ApplicationListenerRule(
            self,
            "ListenerRule",
            listener=listener,
            priority=priority,
            conditions=[elbv2.ListenerCondition.host_headers([hostname]), shared.path_patterns(FORWARDED_PATHS)],
            action=rule_action(target_group, paused=self.lifecycle.paused, hostname=hostname),
        )
        # Registers the tasks in the target group; the service waits for the rule (ECS only accepts a target group
        # a listener forwards to), and the tasks' group admits the shard's load balancer on the container port.
        # A paused service runs no task and its rule forwards nowhere, so it is not attached (resuming attaches it).
        # (target_group.add_target: the service attaches itself inside jsii, no result struct is read back.)
        if not self.lifecycle.paused:
            target_group.add_target(self.service)
        else:  # the same ingress rule as attached, so resuming changes no security group
            listener.connections.allow_to(self.service, shared.tcp_port(CONTAINER_PORT), "Load balancer to target")
        return target_group, listener_rule

    def _add_record(self, platform: RuntimePlatform, hostname: str) -> route53.ARecord:
        """The hostname's alias to the shard's load balancer."""
        shard = platform.shard
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
        return route53.ARecord(
            self,
            "Alias",
            zone=zone,
            record_name=f"{hostname}.",
            target=route53.RecordTarget.from_alias(
                route53_targets.LoadBalancerTarget(load_balancer, shared.evaluate_target_health())
            ),
        )
