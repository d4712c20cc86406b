"""The instance's runtime: the one runtime image on Fargate, with its roles, log group, security group, service
and autoscaling. This module is the one place that knows the runtime's port, health path and environment variables
(the contract with runtime/)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.af_instance_secrets import secret_env_var
from constructs.af_nag import acknowledge
from constructs.af_tokens import partition
from foundry.schema import DeploySettings

CONTAINER_NAME = "runtime"
CONTAINER_PORT = 8080
READY_PATH = "/readyz"
"""200 once the bundle is loaded and the graph built, 503 while draining: what the target group checks."""
MCP_PATH = "/mcp"
HEALTH_CHECK_GRACE_SECONDS = 60

_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[a-z0-9._/-]+)[:@]"
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


@dataclass(frozen=True)
class InstanceIdentityVars:
    organization_id: str
    domain_id: str
    environment: str
    instance_id: str
    hostname: str


@dataclass(frozen=True)
class NetworkRef:
    """Where the tasks run (SSM-resolved at deploy): the VPC, its private subnets and the shard's ALB group."""

    vpc_id: str
    private_subnet_ids: list[str]
    load_balancer_security_group_id: str


def ecr_repository_arn(image_uri: str) -> str | None:
    """The ECR repository a prebuilt image lives in (to grant pulls on it alone), or None for other registries."""
    match = _ECR_IMAGE.match(image_uri)
    if match is None:
        return None
    return f"arn:{partition()}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def _policy(name: str, statements: list[dict[str, Any]]) -> iam.CfnRole.PolicyProperty:
    return iam.CfnRole.PolicyProperty(
        policy_name=name, policy_document={"Version": "2012-10-17", "Statement": statements}
    )


def _trust(condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


class AfInstanceService(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        identity: InstanceIdentityVars,
        deploy: DeploySettings,
        image: RuntimeImage,
        cluster_name: str,
        network: NetworkRef,
        target_group_arn: str,
        bundle_uri: str,
        bundle_hash: str,
        bundle_object_arn: str,
        secret_arns: Mapping[str, str],
        log_retention_days: int,
        bedrock_model_arn: str | None,
        family: str,
        region: str,
    ) -> None:
        """`region`: the stack's (literal) region. Every token read below is a round trip to the jsii Node process,
        so each one is read once and reused."""
        super().__init__(scope, id_)

        image_uri, repository_arn = self._image(image)
        self.log_group = logs.CfnLogGroup(self, "Logs", retention_in_days=log_retention_days)
        self.log_group_name = self.log_group.ref

        execution_statements: list[dict[str, Any]] = [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": self.log_group.attr_arn,
            }
        ]
        if repository_arn is not None:
            execution_statements += [
                {
                    "Effect": "Allow",
                    "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                    "Resource": repository_arn,
                },
                {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            ]
        if secret_arns:
            execution_statements.append(
                {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": [secret_arns[name] for name in sorted(secret_arns)],
                }
            )
        self.execution_role = iam.CfnRole(
            self,
            "ExecutionRole",
            description=f"Starts the tasks of {identity.organization_id}/{identity.domain_id}/{identity.instance_id}",
            assume_role_policy_document=_trust(),
            policies=[_policy("start-tasks", execution_statements)],
        )
        acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions in IAM; the image pull itself is limited "
            "to the runtime repository",
        )

        task_statements: list[dict[str, Any]] = [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": bundle_object_arn},
        ]
        if bedrock_model_arn is not None:
            task_statements.append(
                {
                    "Effect": "Allow",
                    "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    "Resource": bedrock_model_arn,
                }
            )
        self.task_role = iam.CfnRole(
            self,
            "TaskRole",
            description=f"The runtime of {identity.organization_id}/{identity.domain_id}/{identity.instance_id}",
            # {"Ref": "AWS::AccountId"} is what Aws.ACCOUNT_ID renders to; a JSON property takes it as is.
            assume_role_policy_document=_trust({"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}),
            policies=[_policy("read-own-bundle", task_statements)],
        )

        environment = {
            "ORG_ID": identity.organization_id,
            "DOMAIN_ID": identity.domain_id,
            "ENVIRONMENT": identity.environment,
            "INSTANCE_ID": identity.instance_id,
            "BUNDLE_URI": bundle_uri,
            "BUNDLE_HASH": bundle_hash,
            "PORT": str(CONTAINER_PORT),
            "ALLOWED_HOSTS": identity.hostname,
            "AWS_REGION": region,
        }
        self.task_definition = ecs.CfnTaskDefinition(
            self,
            "TaskDefinition",
            family=family,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(deploy.cpu),
            memory=str(deploy.memory),
            execution_role_arn=self.execution_role.attr_arn,
            task_role_arn=self.task_role.attr_arn,
            runtime_platform=ecs.CfnTaskDefinition.RuntimePlatformProperty(
                cpu_architecture="X86_64", operating_system_family="LINUX"
            ),
            container_definitions=[
                ecs.CfnTaskDefinition.ContainerDefinitionProperty(
                    name=CONTAINER_NAME,
                    image=image_uri,
                    essential=True,
                    port_mappings=[
                        ecs.CfnTaskDefinition.PortMappingProperty(container_port=CONTAINER_PORT, protocol="tcp")
                    ],
                    environment=[
                        ecs.CfnTaskDefinition.KeyValuePairProperty(name=k, value=environment[k])
                        for k in sorted(environment)
                    ],
                    secrets=[
                        ecs.CfnTaskDefinition.SecretProperty(name=secret_env_var(name), value_from=secret_arns[name])
                        for name in sorted(secret_arns)
                    ],
                    log_configuration=ecs.CfnTaskDefinition.LogConfigurationProperty(
                        log_driver="awslogs",
                        options={
                            "awslogs-group": self.log_group_name,
                            "awslogs-region": region,
                            "awslogs-stream-prefix": CONTAINER_NAME,
                        },
                    ),
                )
            ],
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "the environment variables are the instance's identity and bundle location (the runtime contract); "
            "every secret is injected from Secrets Manager, never as a variable",
        )

        self.security_group = ec2.CfnSecurityGroup(
            self,
            "SecurityGroup",
            group_description="Runtime tasks - only the ALB shard of the instance, on the container port",
            vpc_id=network.vpc_id,
            security_group_ingress=[
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp",
                    from_port=CONTAINER_PORT,
                    to_port=CONTAINER_PORT,
                    source_security_group_id=network.load_balancer_security_group_id,
                    description="the ALB shard",
                )
            ],
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp", from_port=443, to_port=443, cidr_ip="0.0.0.0/0", description="AWS APIs (HTTPS)"
                )
            ],
        )

        self.service = ecs.CfnService(
            self,
            "Service",
            cluster=cluster_name,
            launch_type="FARGATE",
            task_definition=self.task_definition.ref,
            desired_count=deploy.min_tasks,
            health_check_grace_period_seconds=HEALTH_CHECK_GRACE_SECONDS,
            deployment_configuration=ecs.CfnService.DeploymentConfigurationProperty(
                minimum_healthy_percent=100,
                maximum_percent=200,
                deployment_circuit_breaker=ecs.CfnService.DeploymentCircuitBreakerProperty(enable=True, rollback=True),
            ),
            network_configuration=ecs.CfnService.NetworkConfigurationProperty(
                awsvpc_configuration=ecs.CfnService.AwsVpcConfigurationProperty(
                    subnets=network.private_subnet_ids,
                    security_groups=[self.security_group.attr_group_id],
                    assign_public_ip="DISABLED",
                )
            ),
            load_balancers=[
                ecs.CfnService.LoadBalancerProperty(
                    container_name=CONTAINER_NAME, container_port=CONTAINER_PORT, target_group_arn=target_group_arn
                )
            ],
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
        )
        self.service_name = self.service.attr_name

        scalable = autoscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{cluster_name}/{self.service_name}",
            min_capacity=deploy.min_tasks,
            max_capacity=deploy.max_tasks,
        )
        autoscaling.CfnScalingPolicy(
            self,
            "CpuScaling",
            policy_name="cpu-target",
            policy_type="TargetTrackingScaling",
            scaling_target_id=scalable.ref,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(deploy.cpu_target_percent),
                predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="ECSServiceAverageCPUUtilization"
                ),
                scale_in_cooldown=120,
                scale_out_cooldown=60,
            ),
        )

    def _image(self, image: RuntimeImage) -> tuple[str, str | None]:
        """(image URI for the task, ECR repository ARN the execution role may pull from, if any)."""
        if isinstance(image, ImageFromUri):
            return image.uri, ecr_repository_arn(image.uri)
        asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=image.directory,
            file=image.dockerfile,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        return asset.image_uri, asset.repository.repository_arn
