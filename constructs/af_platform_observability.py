"""An environment's alarm topic and fleet dashboard (platform stack).

Every instance alarm (constructs/af_agent_runtime_alarms.py) sends its ALARM and OK to the one SNS topic of its
environment, whose subscribers come from the platform settings. The dashboard shows the fleet's requests, errors,
p95 turn duration and tokens (the runtime's metrics in the AgentFoundry namespace, by environment) and, beside each,
the ten instances with the most of it (SEARCH over the per-instance dimension set, sorted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from constructs.af_agent_runtime_telemetry import METRIC_DIMENSIONS, METRICS_NAMESPACE

TOP_INSTANCES = 10
DASHBOARD_PERIOD = Duration.minutes(5)


@dataclass(frozen=True, kw_only=True)
class AlarmSubscription:
    protocol: Literal["email", "https", "sqs"]
    endpoint: str
    """An e-mail address, an https:// URL or an SQS queue ARN."""


@dataclass(frozen=True, kw_only=True)
class FleetMetric:
    """One row of the dashboard: a runtime metric, the statistic that sums it up, and its unit for people."""

    title: str
    metric_name: str
    statistic: str
    label: str
    rank_by: Literal["SUM", "MAX"]
    """How the top instances are ranked over the dashboard's time range: by total, or by worst period."""


FLEET_METRICS = (
    FleetMetric(
        title="Requests", metric_name="agentfoundry.requests", statistic="Sum", label="requests", rank_by="SUM"
    ),
    FleetMetric(title="Errors", metric_name="agentfoundry.errors", statistic="Sum", label="errors", rank_by="SUM"),
    FleetMetric(
        title="p95 turn duration",
        metric_name="agentfoundry.turn.duration",
        statistic="p95",
        label="seconds",
        rank_by="MAX",
    ),
    FleetMetric(
        title="Tokens", metric_name="gen_ai.client.token.usage", statistic="Sum", label="tokens", rank_by="SUM"
    ),
)


class AfPlatformObservability(Construct):
    """`topic` (alarm notifications) and `dashboard` are public, for composition."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        environment: str,
        topic_name: str,
        dashboard_name: str,
        subscribers: Sequence[AlarmSubscription],
    ) -> None:
        super().__init__(scope, id_)
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=topic_name,
            display_name=f"Agent Foundry {environment} alarms",
            enforce_ssl=True,
        )
        for index, subscriber in enumerate(subscribers):
            self.topic.add_subscription(self._subscription(index, subscriber))
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.hours(3)
        )
        for row in FLEET_METRICS:
            self.dashboard.add_widgets(self._fleet_widget(environment, row), self._top_widget(environment, row))

    def _subscription(self, index: int, subscriber: AlarmSubscription) -> sns.ITopicSubscription:
        if subscriber.protocol == "email":
            return subscriptions.EmailSubscription(subscriber.endpoint)
        if subscriber.protocol == "https":
            return subscriptions.UrlSubscription(subscriber.endpoint, protocol=sns.SubscriptionProtocol.HTTPS)
        queue = sqs.Queue.from_queue_arn(self, f"Subscriber{index}", subscriber.endpoint)
        return subscriptions.SqsSubscription(queue)

    @staticmethod
    def _fleet_widget(environment: str, row: FleetMetric) -> cloudwatch.GraphWidget:
        metric = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=row.metric_name,
            dimensions_map={"environment": environment},
            statistic=row.statistic,
            period=DASHBOARD_PERIOD,
            label=f"{environment} {row.label}",
        )
        return cloudwatch.GraphWidget(title=f"{row.title} (fleet)", left=[metric], width=12)

    @staticmethod
    def _top_widget(environment: str, row: FleetMetric) -> cloudwatch.GraphWidget:
        schema = ",".join((METRICS_NAMESPACE, *METRIC_DIMENSIONS))
        search = (
            f'SEARCH(\'{{{schema}}} MetricName="{row.metric_name}" environment="{environment}"\', '
            f"'{row.statistic}', {int(DASHBOARD_PERIOD.to_seconds())})"
        )
        expression = cloudwatch.MathExpression(
            expression=f"SORT({search}, {row.rank_by}, DESC, {TOP_INSTANCES})",
            using_metrics={},
            label="",
            period=DASHBOARD_PERIOD,
        )
        return cloudwatch.GraphWidget(title=f"{row.title}: top {TOP_INSTANCES} instances", left=[expression], width=12)
