"""The OpenTelemetry collector beside an instance's runtime, and what it may do (part of `AfAgentRuntime`).

The AWS Distro for OpenTelemetry collector runs as a second, non-essential container of the runtime's task: if it
stops, ECS keeps the task (and the runtime) running, and the runtime's exporter only drops what it cannot send. It
takes OTLP on localhost (the runtime's OTEL_EXPORTER_OTLP_ENDPOINT), sends traces to X-Ray and metrics to CloudWatch
as embedded metric format written to a log group of the instance's own (/agentfoundry/metrics/<stack name>). Its
permissions are exactly those: X-Ray's two write calls (X-Ray has no resource-level permissions) and writing log
streams of that one log group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs import af_shared_values as shared
from constructs.af_agent_runtime_props import RuntimeIdentity, TelemetryCollector
from constructs.af_nag import acknowledge

ADOT_COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"
"""Pinned: a new collector version is a reviewed change (its exporters' behaviour decides what CloudWatch gets)."""
COLLECTOR_CONFIG_FILE = Path(__file__).with_name("af_otel_collector.yaml")
"""The collector's configuration; the stack reads it and passes its text in (constructs read no files)."""
COLLECTOR_CONTAINER_NAME = "otel-collector"
OTLP_HTTP_ENDPOINT = "http://localhost:4318"
METRICS_NAMESPACE = "AgentFoundry"
"""The CloudWatch namespace of the runtime's metrics (constructs/af_otel_collector.yaml says the same)."""
METRIC_DIMENSIONS = ("environment", "organization", "domain", "instance")
XRAY_WRITE_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
XRAY_IAM5_REASON = "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions in IAM"


def runtime_otel_environment() -> dict[str, str]:
    """The standard OTEL_* variables that point the runtime's SDK at the collector. Histograms go out as base-2
    exponential histograms, which CloudWatch keeps as value distributions, so p95 can be read from them."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_HTTP_ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
    }


def metric_dimensions(identity: RuntimeIdentity) -> dict[str, str]:
    """The dimensions of one instance's metrics in the AgentFoundry namespace."""
    return {
        "environment": identity.environment,
        "organization": identity.organization_id,
        "domain": identity.domain_id,
        "instance": identity.instance_id,
    }


@dataclass(frozen=True)
class CollectorSidecar:
    container: ecs.ContainerDefinition
    metrics_log_group: logs.LogGroup
    """Where the collector writes its embedded-metric-format events (CloudWatch extracts the metrics)."""


def metrics_log_group_name(family: str) -> str:
    """Where the collector writes its embedded-metric-format events: the config's
    /agentfoundry/metrics/{TaskDefinitionFamily}, the task definition family being the stack name."""
    return f"/agentfoundry/metrics/{family}"


def add_collector(
    scope: Construct,
    *,
    family: str,
    task_definition: ecs.FargateTaskDefinition,
    task_role: iam.Role,
    identity: RuntimeIdentity,
    collector: TelemetryCollector,
    region: str,
    log_group: logs.ILogGroup,
    retention: logs.RetentionDays,
    encryption_key: kms.IKey | None = None,
) -> CollectorSidecar:
    """The collector container, its metrics log group and the task role's grants for it."""
    # Named (the collector's config derives the name), and deleted with the stack: it only holds copies of metrics
    # CloudWatch has already extracted, and a kept named group would stop the stack from being created again.
    metrics_log_group = logs.LogGroup(
        scope,
        "MetricsLogs",
        log_group_name=metrics_log_group_name(family),
        retention=retention,
        removal_policy=RemovalPolicy.DESTROY,
        encryption_key=encryption_key,
    )
    metrics_log_group.grant_write(task_role)
    # Role.add_to_policy answers a bool; add_to_principal_policy's result struct costs two more jsii reads per stack.
    task_role.add_to_policy(iam.PolicyStatement(actions=list(XRAY_WRITE_ACTIONS), resources=["*"]))
    acknowledge(task_role, "AwsSolutions-IAM5[Resource::*]", XRAY_IAM5_REASON)
    resource = {**metric_dimensions(identity), "aws.ecs.task.family": family}
    environment = {
        "AOT_CONFIG_CONTENT": collector.config_yaml,
        "AWS_REGION": region,
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{key}={value}" for key, value in resource.items()),
    }
    container = task_definition.add_container(
        "OtelCollector",
        container_name=COLLECTOR_CONTAINER_NAME,
        image=shared.registry_image(collector.image),
        essential=False,
        memory_limit_mib=collector.memory_limit_mib,
        environment={key: environment[key] for key in sorted(environment)},
        logging=ecs.LogDrivers.aws_logs(stream_prefix=COLLECTOR_CONTAINER_NAME, log_group=log_group),
        readonly_root_filesystem=True,
    )
    return CollectorSidecar(container=container, metrics_log_group=metrics_log_group)
