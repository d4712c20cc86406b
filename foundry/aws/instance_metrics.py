"""An instance's last hour as CloudWatch has it: requests, errors, error rate, p95 turn duration and tokens, from the
runtime's own metrics (namespace AgentFoundry; the instance's collector sends them, constructs/af_otel_collector.yaml)
in one GetMetricData call. What `foundry.get_instance_status` shows beside the alarms."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from foundry.manifests.resolve import ResolvedInstance

NAMESPACE = "AgentFoundry"
"""The agreed namespace and dimensions of the runtime's metrics in CloudWatch."""
WINDOW = datetime.timedelta(hours=1)
QUERIES = {
    "requests": ("agentfoundry.requests", "Sum"),
    "errors": ("agentfoundry.errors", "Sum"),
    "p95": ("agentfoundry.turn.duration", "p95"),
    "tokens": ("gen_ai.client.token.usage", "Sum"),
}
"""GetMetricData query id -> (metric name, statistic), over the whole window as one period."""


@dataclass(frozen=True)
class InstanceMetrics:
    """The instance's own figures over the window. None: no data point in the window."""

    window_start: str
    window_end: str
    requests: float | None
    errors: float | None
    error_rate_percent: float | None
    """errors / requests, in percent; None without requests."""
    p95_turn_seconds: float | None
    tokens: float | None


def metric_dimensions(instance: ResolvedInstance) -> list[dict[str, str]]:
    key = instance.key
    return [
        {"Name": "environment", "Value": instance.environment},
        {"Name": "organization", "Value": key.organization_id},
        {"Name": "domain", "Value": key.domain_id},
        {"Name": "instance", "Value": key.instance_id},
    ]


def read_metrics(
    cloudwatch: Any,
    instance: ResolvedInstance,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> InstanceMetrics:
    """One GetMetricData call (raises botocore's errors)."""
    end = now().replace(microsecond=0) + datetime.timedelta(seconds=1)
    start = end - WINDOW
    dimensions = metric_dimensions(instance)
    queries = [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                "Period": int(WINDOW.total_seconds()),
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for query_id, (name, stat) in QUERIES.items()
    ]
    answer = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
    values: dict[str, float | None] = dict.fromkeys(QUERIES)
    for result in answer.get("MetricDataResults", []):
        points = [float(v) for v in result.get("Values", []) if v is not None]
        if points and result.get("Id") in values:
            values[result["Id"]] = max(points) if result["Id"] == "p95" else sum(points)
    requests, errors = values["requests"], values["errors"]
    rate = None if not requests else 100.0 * (errors or 0.0) / requests
    return InstanceMetrics(
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        requests=requests,
        errors=errors,
        error_rate_percent=rate,
        p95_turn_seconds=values["p95"],
        tokens=values["tokens"],
    )
