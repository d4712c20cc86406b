"""An instance's CloudWatch alarms (part of `AfAgentRuntime`): what the load balancer sees of it and what the
runtime says of itself.

Four alarms, each named `<stack name>-<kind>` so the rollout gate and `foundry.get_instance_status` find them by name:
the target group's 5xx rate and p95 target response time, its unhealthy hosts, and the runtime's own error rate
(agentfoundry.errors / agentfoundry.requests in the AgentFoundry namespace, sent by the collector). A period without
traffic is not a breach. Each alarm's ALARM and OK go to the environment's alarm topic, when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Fn
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns

from constructs import Construct
from constructs import af_shared_values as shared
from constructs.af_agent_runtime_props import AlarmThresholds, alarm_name
from constructs.af_agent_runtime_telemetry import METRICS_NAMESPACE

PERIOD_SECONDS = 60
ELB_NAMESPACE = "AWS/ApplicationELB"


LOAD_BALANCER_ARN_MARK = "loadbalancer/"
"""What precedes the full name in a load balancer's ARN (once only: a load balancer's name has no '/')."""


def load_balancer_full_name(load_balancer_arn: str) -> str:
    """'arn:...:loadbalancer/app/NAME/ID' -> 'app/NAME/ID' (the LoadBalancer dimension), also for a token: one
    Fn::Split at the mark and one Fn::Select (two aws-cdk-lib calls per stack, not five)."""
    return Fn.select(1, Fn.split(LOAD_BALANCER_ARN_MARK, load_balancer_arn))


def add_alarms(
    scope: Construct,
    *,
    family: str,
    target_group: elbv2.ApplicationTargetGroup,
    load_balancer_arn: str,
    runtime_dimensions: Mapping[str, str],
    thresholds: AlarmThresholds,
    topic_arn: str | None,
) -> dict[str, cloudwatch.Alarm]:
    """The alarms by kind (constructs.af_agent_runtime_props.ALARM_KINDS), in that order."""
    period = shared.seconds(PERIOD_SECONDS)
    target_dimensions = {
        "LoadBalancer": load_balancer_full_name(load_balancer_arn),
        "TargetGroup": target_group.target_group_full_name,
    }

    def elb(metric_name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=ELB_NAMESPACE,
            metric_name=metric_name,
            dimensions_map=target_dimensions,
            statistic=statistic,
            period=period,
        )

    def runtime(metric_name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=metric_name,
            dimensions_map=dict(runtime_dimensions),
            statistic="Sum",
            period=period,
        )

    sources: dict[str, tuple[cloudwatch.IMetric, float, str]] = {
        "target-5xx-rate": (
            cloudwatch.MathExpression(
                expression="IF(requests > 0, 100 * errors / requests, 0)",
                using_metrics={
                    "errors": elb("HTTPCode_Target_5XX_Count", "Sum"),
                    "requests": elb("RequestCount", "Sum"),
                },
                label="target 5xx (% of requests)",
                period=period,
            ),
            thresholds.target_5xx_percent,
            f"5xx answers of {family}'s tasks above {thresholds.target_5xx_percent}% of requests",
        ),
        "target-p95-response-time": (
            elb("TargetResponseTime", "p95"),
            thresholds.p95_response_seconds,
            f"p95 target response time of {family} above {thresholds.p95_response_seconds} s",
        ),
        "unhealthy-hosts": (
            elb("UnHealthyHostCount", "Maximum"),
            thresholds.unhealthy_hosts,
            f"{thresholds.unhealthy_hosts} or more unhealthy tasks of {family} behind the load balancer",
        ),
        "runtime-error-rate": (
            cloudwatch.MathExpression(
                expression="IF(requests > 0, 100 * errors / requests, 0)",
                using_metrics={"errors": runtime("agentfoundry.errors"), "requests": runtime("agentfoundry.requests")},
                label="runtime errors (% of requests)",
                period=period,
            ),
            thresholds.error_rate_percent,
            f"the runtime of {family} reports errors above {thresholds.error_rate_percent}% of its requests",
        ),
    }
    action = (
        cloudwatch_actions.SnsAction(sns.Topic.from_topic_arn(scope, "AlarmTopic", topic_arn))
        if topic_arn is not None
        else None
    )
    alarms: dict[str, cloudwatch.Alarm] = {}
    for kind, (metric, threshold, description) in sources.items():
        comparison = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            if kind == "unhealthy-hosts"
            else cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        )
        alarm = cloudwatch.Alarm(
            scope,
            "".join(part.capitalize() for part in kind.split("-")) + "Alarm",
            alarm_name=alarm_name(family, kind),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=thresholds.evaluation_minutes,
            datapoints_to_alarm=thresholds.evaluation_minutes,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if action is not None:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        alarms[kind] = alarm
    return alarms
