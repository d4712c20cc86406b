"""The instance's metric instruments (the names the collector, alarms and dashboard read), recorded with the
OpenTelemetry SDK and read three ways: GET /metrics (Prometheus text, through opentelemetry-exporter-prometheus and
prometheus_client), OTLP with the traces when an exporter is configured, and the `status` tool's summary.

One MeterProvider per Instance (not the global one), so several instances in one process (tests) keep their own
counts; its Prometheus reader is also what `status` reads, so each measurement is aggregated once (twice with OTLP).
With OTEL_SDK_DISABLED=true every instrument is the API's no-op and /metrics is empty.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from runtime.telemetry.telemetry_settings import TelemetrySettings

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
        self._provider: MeterProvider | None = None
        meter: Meter
        if settings.disabled:
            meter = NoOpMeter(SCOPE)
        else:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers: list[MetricReader] = [
                PrometheusMetricReader(registry=self.registry, resource_attribute_filter=PROMETHEUS_LABELS.__contains__)
            ]
            if settings.metrics_exporter == "otlp":
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))  # OTEL_METRIC_EXPORT_INTERVAL
            self._provider = MeterProvider(
                resource=resource,
                metric_readers=readers,
                exemplar_filter=None if settings.exemplars else AlwaysOffExemplarFilter(),
            )
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
        """What the `status` tool shows: the same values /metrics serves (one reader, so a measurement is stored
        once), summed per attribute of interest."""
        found: dict[str, Any] = {
            "requests": {},
            "errors": {},
            "turn_seconds": describe_histogram([], 0, 0.0),
            "tokens": {},
            "model_calls": {},
            "tool_calls": {},
            "enabled": self.enabled,
        }
        if not self.enabled:
            return found
        turn_buckets: list[tuple[float, float]] = []
        turn_count, turn_sum = 0, 0.0

        def add(table: dict[str, Any], key: str, amount: float) -> None:
            table[key] = table.get(key, 0) + int(amount)

        for family in self.registry.collect():
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "agentfoundry_requests_total":
                    add(found["requests"], labels.get("outcome", ""), value)
                elif name == "agentfoundry_errors_total":
                    add(found["errors"], labels.get("error_type", ""), value)
                elif name == "agentfoundry_turn_duration_seconds_bucket":
                    turn_buckets.append((float(labels["le"]), value))
                elif name == "agentfoundry_turn_duration_seconds_count":
                    turn_count += int(value)
                elif name == "agentfoundry_turn_duration_seconds_sum":
                    turn_sum += value
                elif name == "gen_ai_client_token_usage_sum":
                    model = labels.get("gen_ai_request_model", "")
                    add(
                        found["tokens"].setdefault(model, {"input": 0, "output": 0}), labels["gen_ai_token_type"], value
                    )
                elif name in (
                    "gen_ai_client_operation_duration_seconds_count",
                    "gen_ai_client_operation_duration_seconds_sum",
                ):
                    model = labels.get("gen_ai_request_model", "")
                    calls = found["model_calls"].setdefault(model, {"calls": 0, "errors": 0, "seconds": 0.0})
                    if name.endswith("_sum"):
                        calls["seconds"] = round(calls["seconds"] + value, 6)
                    else:
                        calls["calls"] += int(value)
                        calls["errors"] += int(value) if "error_type" in labels else 0
                elif name in ("agentfoundry_tool_calls_total", "agentfoundry_tool_errors_total"):
                    tool = found["tool_calls"].setdefault(labels.get("gen_ai_tool_name", ""), {"calls": 0, "errors": 0})
                    add(tool, "calls" if "calls" in name else "errors", value)
        found["turn_seconds"] = describe_histogram(turn_buckets, turn_count, turn_sum)
        return found

    def shutdown(self) -> None:
        """Exports what is still pending over OTLP and stops the periodic reader."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None


def describe_histogram(buckets: list[tuple[float, float]], count: int, total: float) -> dict[str, Any]:
    """count, mean and p50/p95 estimated from cumulative buckets (linear within a bucket, as Prometheus's
    histogram_quantile does); the buckets of several label sets are summed by bound first."""
    if not count:
        return {"count": 0, "mean": None, "p50": None, "p95": None}
    merged: dict[float, float] = {}
    for bound, cumulative in buckets:
        merged[bound] = merged.get(bound, 0.0) + cumulative
    ordered = sorted(merged.items())
    return {
        "count": count,
        "mean": round(total / count, 6),
        "p50": _quantile(ordered, 0.5 * count),
        "p95": _quantile(ordered, 0.95 * count),
    }


def _quantile(cumulative: list[tuple[float, float]], rank: float) -> float | None:
    low_bound, low_count = 0.0, 0.0
    for bound, seen in cumulative:
        if seen >= rank:
            if bound == float("inf"):
                return round(low_bound, 6)  # beyond the last finite bound: its value is all that is known
            share = (rank - low_count) / (seen - low_count) if seen > low_count else 1.0
            return round(low_bound + (bound - low_bound) * share, 6)
        low_bound, low_count = bound, seen
    return None


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
