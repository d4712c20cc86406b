"""How many tasks an instance's ECS service ran, hour by hour, as ECS Container Insights recorded it (namespace
ECS/ContainerInsights, metric RunningTaskCount, by ClusterName and ServiceName; the platform stack turns Container
Insights on for its cluster). What `python -m foundry usage` turns into compute hours."""

from __future__ import annotations

import datetime
from typing import Any

NAMESPACE = "ECS/ContainerInsights"
METRIC = "RunningTaskCount"
HOUR_SECONDS = 3600


def hourly_running_tasks(
    cloudwatch: Any, *, cluster: str, service: str, since: datetime.datetime, until: datetime.datetime
) -> list[float]:
    """The hourly average of the service's running task count over [since, until), one value per hour that has data
    (an hour without a data point is left out). Raises botocore's errors."""
    query = {
        "Id": "running",
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": METRIC,
                "Dimensions": [{"Name": "ClusterName", "Value": cluster}, {"Name": "ServiceName", "Value": service}],
            },
            "Period": HOUR_SECONDS,
            "Stat": "Average",
        },
        "ReturnData": True,
    }
    values: list[float] = []
    arguments: dict[str, Any] = {"MetricDataQueries": [query], "StartTime": since, "EndTime": until}
    while True:
        answer = cloudwatch.get_metric_data(**arguments)
        for result in answer.get("MetricDataResults", []):
            values += [float(v) for v in result.get("Values", []) if v is not None]
        token = answer.get("NextToken")
        if not token:
            return values
        arguments["NextToken"] = token
