"""The instance's runtime: the one runtime image on Fargate, with its roles, log group, security group, service
and autoscaling, rendered as a CloudFormation fragment (pure data). This module is the one place that knows the
runtime's port, health path and environment variables (the contract with runtime/)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from constructs.af_cfn import PARTITION, Acknowledgement, Fragment, Json, get_att, join, logical_id, ref, resource
from constructs.af_instance_secrets import secret_env_var
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

    vpc_id: Json
    private_subnet_ids: Json
    load_balancer_security_group_id: Json


@dataclass(frozen=True)
class ImageRef:
    """The image as the task definition sees it: its URI and the ECR repository the execution role may pull from
    (None for other registries). For an image asset both are the CloudFormation expressions its tokens resolve to."""

    uri: str | Json
    repository_arn: str | Json | None


def ecr_repository_arn(image_uri: str) -> Json | None:
    """The ECR repository a prebuilt image lives in (to grant pulls on it alone), or None for other registries."""
    match = _ECR_IMAGE.match(image_uri)
    if match is None:
        return None
    return join("arn:", PARTITION, f":ecr:{match['region']}:{match['account']}:repository/{match['repo']}")


def _policy(name: str, statements: list[dict[str, Any]]) -> Json:
    return {"PolicyName": name, "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}


def _trust(condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


SCOPE = "Runtime"
LOGS_ID = logical_id(SCOPE, "Logs")
EXECUTION_ROLE_ID = logical_id(SCOPE, "ExecutionRole")
TASK_ROLE_ID = logical_id(SCOPE, "TaskRole")
TASK_DEFINITION_ID = logical_id(SCOPE, "TaskDefinition")
SECURITY_GROUP_ID = logical_id(SCOPE, "SecurityGroup")
SERVICE_ID = logical_id(SCOPE, "Service")
SCALABLE_TARGET_ID = logical_id(SCOPE, "ScalableTarget")
CPU_SCALING_ID = logical_id(SCOPE, "CpuScaling")
IAM5_REASON = (
    "ecr:GetAuthorizationToken has no resource-level permissions in IAM; the image pull itself is limited "
    "to the runtime repository"
)
ECS2_REASON = (
    "the environment variables are the instance's identity and bundle location (the runtime contract); "
    "every secret is injected from Secrets Manager, never as a variable"
)


def log_group_name() -> Json:
    return ref(LOGS_ID)


def service_name() -> Json:
    return get_att(SERVICE_ID, "Name")


def service_fragment(
    *,
    identity: InstanceIdentityVars,
    deploy: DeploySettings,
    image: ImageRef,
    cluster_name: str,
    network: NetworkRef,
    target_group_arn: Json,
    listener_rule_id: str,
    bundle_uri: str,
    bundle_hash: str,
    bundle_object_arn: Json,
    secret_arns: Mapping[str, Json],
    log_retention_days: int,
    bedrock_model_arn: Json | None,
    family: str,
    region: str,
) -> Fragment:
    """`region`: the stack's (literal) region; `listener_rule_id`: the rule that forwards to the target group
    (ECS only accepts a target group that a listener already forwards to, so the service depends on it)."""
    fragment = Fragment()
    resources = fragment.resources
    resources[LOGS_ID] = resource("AWS::Logs::LogGroup", {"RetentionInDays": log_retention_days})

    execution_statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": get_att(LOGS_ID, "Arn"),
        }
    ]
    if image.repository_arn is not None:
        execution_statements += [
            {
                "Effect": "Allow",
                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                "Resource": image.repository_arn,
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
    who = f"{identity.organization_id}/{identity.domain_id}/{identity.instance_id}"
    resources[EXECUTION_ROLE_ID] = resource(
        "AWS::IAM::Role",
        {
            "Description": f"Starts the tasks of {who}",
            "AssumeRolePolicyDocument": _trust(),
            "Policies": [_policy("start-tasks", execution_statements)],
        },
    )
    fragment.acknowledgements.append(Acknowledgement(EXECUTION_ROLE_ID, "AwsSolutions-IAM5[Resource::*]", IAM5_REASON))

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
    resources[TASK_ROLE_ID] = resource(
        "AWS::IAM::Role",
        {
            "Description": f"The runtime of {who}",
            "AssumeRolePolicyDocument": _trust({"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}),
            "Policies": [_policy("read-own-bundle", task_statements)],
        },
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
    container: Json = {
        "Name": CONTAINER_NAME,
        "Image": image.uri,
        "Essential": True,
        "PortMappings": [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}],
        "Environment": [{"Name": k, "Value": environment[k]} for k in sorted(environment)],
        "Secrets": [{"Name": secret_env_var(name), "ValueFrom": secret_arns[name]} for name in sorted(secret_arns)],
        "LogConfiguration": {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": log_group_name(),
                "awslogs-region": region,
                "awslogs-stream-prefix": CONTAINER_NAME,
            },
        },
    }
    resources[TASK_DEFINITION_ID] = resource(
        "AWS::ECS::TaskDefinition",
        {
            "Family": family,
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": str(deploy.cpu),
            "Memory": str(deploy.memory),
            "ExecutionRoleArn": get_att(EXECUTION_ROLE_ID, "Arn"),
            "TaskRoleArn": get_att(TASK_ROLE_ID, "Arn"),
            "RuntimePlatform": {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"},
            "ContainerDefinitions": [container],
        },
    )
    fragment.acknowledgements.append(Acknowledgement(TASK_DEFINITION_ID, "AwsSolutions-ECS2", ECS2_REASON))

    resources[SECURITY_GROUP_ID] = resource(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "Runtime tasks - only the ALB shard of the instance, on the container port",
            "VpcId": network.vpc_id,
            "SecurityGroupIngress": [
                {
                    "IpProtocol": "tcp",
                    "FromPort": CONTAINER_PORT,
                    "ToPort": CONTAINER_PORT,
                    "SourceSecurityGroupId": network.load_balancer_security_group_id,
                    "Description": "the ALB shard",
                }
            ],
            "SecurityGroupEgress": [
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "CidrIp": "0.0.0.0/0",
                    "Description": "AWS APIs (HTTPS)",
                }
            ],
        },
    )
    resources[SERVICE_ID] = resource(
        "AWS::ECS::Service",
        {
            "Cluster": cluster_name,
            "LaunchType": "FARGATE",
            "TaskDefinition": ref(TASK_DEFINITION_ID),
            "DesiredCount": deploy.min_tasks,
            "HealthCheckGracePeriodSeconds": HEALTH_CHECK_GRACE_SECONDS,
            "DeploymentConfiguration": {
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
            },
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets": network.private_subnet_ids,
                    "SecurityGroups": [get_att(SECURITY_GROUP_ID, "GroupId")],
                    "AssignPublicIp": "DISABLED",
                }
            },
            "LoadBalancers": [
                {"ContainerName": CONTAINER_NAME, "ContainerPort": CONTAINER_PORT, "TargetGroupArn": target_group_arn}
            ],
            "EnableECSManagedTags": True,
            "PropagateTags": "SERVICE",
        },
        depends_on=[listener_rule_id],
    )
    resources[SCALABLE_TARGET_ID] = resource(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "ecs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": join(f"service/{cluster_name}/", service_name()),
            "MinCapacity": deploy.min_tasks,
            "MaxCapacity": deploy.max_tasks,
        },
    )
    resources[CPU_SCALING_ID] = resource(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyName": "cpu-target",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": ref(SCALABLE_TARGET_ID),
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": deploy.cpu_target_percent,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
                "ScaleInCooldown": 120,
                "ScaleOutCooldown": 60,
            },
        },
    )
    return fragment
