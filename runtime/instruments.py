"""The instance's metric instruments (the names the collector, alarms and dashboard read), recorded with the
OpenTelemetry SDK and read three ways: GET /metrics (Prometheus text, through opentelemetry-exporter-prometheus and
prometheus_client), OTLP with the traces when an exporter is configured, and the `status` tool's summary.

One MeterProvider per Instance (not the global one), so several instances in one process (tests) keep their own
counts. With OTEL_SDK_DISABLED=true every instrument is the API's no-op and /metrics is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from runtime.telemetry_settings import TelemetrySettings

SCOPE = "agentfoundry.runtime"
PROMETHEUS_LABELS = frozenset(
    {
        "deployment.environment.name",
        "agentfoundry.organization",
        "agentfoundry.domain",
        "agentfoundry.instance",
    }
)
"""Resource attributes copied onto every /metrics series (the rest stay on `target_info`)."""

# Bucket boundaries: the GenAI semantic conventions' advice for tokens and model calls; turns are finer below
# 100 ms, where an offline turn lives.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
MODEL_SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TURN_SECONDS_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class RuntimeMetrics:
    def __init__(self, resource: Resource, settings: TelemetrySettings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot: InMemoryMetricReader | None = None
        self._provider: MeterProvider | None = None
        meter: Meter
        if settings.disabled:
            meter = NoOpMeter(SCOPE)
        else:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            self._snapshot = InMemoryMetricReader()
            readers: list[MetricReader] = [
                PrometheusMetricReader(
                    registry=self.registry, resource_attribute_filter=PROMETHEUS_LABELS.__contains__
                ),
                self._snapshot,
            ]
            if settings.metrics_exporter == "otlp":
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))  # OTEL_METRIC_EXPORT_INTERVAL
            self._provider = MeterProvider(resource=resource, metric_readers=readers)
            meter = self._provider.get_meter(SCOPE)
        self.requests = meter.create_counter(
            "agentfoundry.requests", unit="{request}", description="invoke calls, by outcome (ok or error)"
        )
        self.errors = meter.create_counter(
            "agentfoundry.errors", unit="{error}", description="invoke calls answered with an error, by error.type"
        )
        self.turn_duration = meter.create_histogram(
            "agentfoundry.turn.duration",
            unit="s",
            description="time of one invoke, refusal to answer",
            explicit_bucket_boundaries_advisory=TURN_SECONDS_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="tokens per model call, by gen_ai.token.type and model",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="time of one model call, by model",
            explicit_bucket_boundaries_advisory=MODEL_SECONDS_BUCKETS,
        )
        self.tool_calls = meter.create_counter(
            "agentfoundry.tool.calls", unit="{call}", description="backend and external tool calls, by tool"
        )
        self.tool_errors = meter.create_counter(
            "agentfoundry.tool.errors", unit="{call}", description="tool calls that failed or were refused, by tool"
        )

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def turn(self, seconds: float, error_type: str | None) -> None:
        outcome = {"outcome": "ok" if error_type is None else "error"}
        self.requests.add(1, outcome)
        self.turn_duration.record(seconds, outcome)
        if error_type is not None:
            self.errors.add(1, {"error.type": error_type})

    def model_call(
        self,
        *,
        provider: str,
        model: str,
        seconds: float,
        input_tokens: int,
        output_tokens: int,
        error_type: str | None,
    ) -> None:
        base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model}
        self.operation_duration.record(seconds, base if error_type is None else {**base, "error.type": error_type})
        if error_type is None:
            self.token_usage.record(input_tokens, {**base, "gen_ai.token.type": "input"})
            self.token_usage.record(output_tokens, {**base, "gen_ai.token.type": "output"})

    def tool_call(self, tool: str, ok: bool) -> None:
        attributes = {"gen_ai.tool.name": tool}
        self.tool_calls.add(1, attributes)
        if not ok:
            self.tool_errors.add(1, attributes)

    def prometheus(self) -> bytes:
        """The Prometheus text exposition of every instrument (prometheus_client renders it)."""
        return generate_latest(self.registry)

    def summary(self) -> dict[str, Any]:
        """What the `status` tool shows: the same SDK's cumulative values, summed per attribute of interest."""
        found: dict[str, Any] = {
            "requests": {},
            "errors": {},
            "turn_seconds": _empty_histogram(),
            "tokens": {},
            "model_calls": {},
            "tool_calls": {},
        }
        if self._snapshot is None:
            return {**found, "enabled": False}
        for name, point in self._points():
            attrs = dict(point.attributes or {})
            if name == "agentfoundry.requests" and isinstance(point, NumberDataPoint):
                key = str(attrs.get("outcome"))
                found["requests"][key] = found["requests"].get(key, 0) + int(point.value)
            elif name == "agentfoundry.errors" and isinstance(point, NumberDataPoint):
                key = str(attrs.get("error.type"))
                found["errors"][key] = found["errors"].get(key, 0) + int(point.value)
            elif name == "agentfoundry.turn.duration" and isinstance(point, HistogramDataPoint):
                found["turn_seconds"] = _merge(found["turn_seconds"], point)
            elif name == "gen_ai.client.token.usage" and isinstance(point, HistogramDataPoint):
                model = found["tokens"].setdefault(str(attrs.get("gen_ai.request.model")), {"input": 0, "output": 0})
                model[str(attrs.get("gen_ai.token.type"))] += int(point.sum)
            elif name == "gen_ai.client.operation.duration" and isinstance(point, HistogramDataPoint):
                calls = found["model_calls"].setdefault(
                    str(attrs.get("gen_ai.request.model")), {"calls": 0, "errors": 0, "seconds": 0.0}
                )
                calls["calls"] += point.count
                calls["errors"] += point.count if "error.type" in attrs else 0
                calls["seconds"] = round(calls["seconds"] + point.sum, 6)
            elif name in ("agentfoundry.tool.calls", "agentfoundry.tool.errors") and isinstance(point, NumberDataPoint):
                tool = found["tool_calls"].setdefault(str(attrs.get("gen_ai.tool.name")), {"calls": 0, "errors": 0})
                tool["calls" if name.endswith("calls") else "errors"] += int(point.value)
        found["turn_seconds"] = _describe(found["turn_seconds"])
        return {**found, "enabled": True}

    def _points(self) -> Iterator[tuple[str, NumberDataPoint | HistogramDataPoint]]:
        assert self._snapshot is not None
        data = self._snapshot.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        if isinstance(point, NumberDataPoint | HistogramDataPoint):
                            yield metric.name, point

    def shutdown(self) -> None:
        """Exports what is still pending over OTLP and stops the periodic reader."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None


def _empty_histogram() -> dict[str, Any]:
    return {"count": 0, "sum": 0.0, "min": None, "max": None, "bounds": (), "buckets": []}


def _merge(into: dict[str, Any], point: HistogramDataPoint) -> dict[str, Any]:
    buckets = list(into["buckets"]) or [0] * len(point.bucket_counts)
    return {
        "count": into["count"] + point.count,
        "sum": into["sum"] + point.sum,
        "min": point.min if into["min"] is None else min(into["min"], point.min),
        "max": point.max if into["max"] is None else max(into["max"], point.max),
        "bounds": tuple(point.explicit_bounds),
        "buckets": [a + b for a, b in zip(buckets, point.bucket_counts, strict=True)],
    }


def _describe(h: dict[str, Any]) -> dict[str, Any]:
    """count, mean, min, max and p50/p95 estimated from the buckets (linear within a bucket, clamped to min/max)."""
    if not h["count"]:
        return {"count": 0, "mean": None, "min": None, "max": None, "p50": None, "p95": None}
    return {
        "count": h["count"],
        "mean": round(h["sum"] / h["count"], 6),
        "min": round(h["min"], 6),
        "max": round(h["max"], 6),
        "p50": _quantile(h, 0.5),
        "p95": _quantile(h, 0.95),
    }


def _quantile(h: dict[str, Any], q: float) -> float:
    rank = q * h["count"]
    seen = 0
    bounds: tuple[float, ...] = h["bounds"]
    for i, count in enumerate(h["buckets"]):
        if count and seen + count >= rank:
            low: float = max(bounds[i - 1] if i > 0 else h["min"], h["min"])
            high: float = min(bounds[i] if i < len(bounds) else h["max"], h["max"])
            return float(round(low + (high - low) * (rank - seen) / count, 6))
        seen += count
    return round(float(h["max"]), 6)


class InstanceTelemetry:
    """What the instance's parts record into: its metrics, and whether message contents may enter spans."""

    def __init__(self, metrics: RuntimeMetrics, *, capture_content: bool = False) -> None:
        self.metrics = metrics
        self.capture_content = capture_content

    @classmethod
    def from_settings(cls, settings: TelemetrySettings, resource: Resource) -> InstanceTelemetry:
        return cls(RuntimeMetrics(resource, settings), capture_content=settings.capture_content)

    @classmethod
    def off(cls) -> InstanceTelemetry:
        """No metrics, no content: for a backend built on its own (tests of one tool)."""
        return cls(RuntimeMetrics(Resource.get_empty(), TelemetrySettings(disabled=True)))
