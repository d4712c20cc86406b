"""The runtime's OpenTelemetry settings, read only from the standard OTEL_* variables (no OpenTelemetry import
here: the configuration is checked before anything heavy loads, and the container's health check stays cheap).

Traces: exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, or to whatever
OTEL_TRACES_EXPORTER names (`console`: every span printed to stdout); otherwise not at all. Metrics: always on
/metrics and in `status`, also over OTLP when an endpoint is set (or OTEL_METRICS_EXPORTER=otlp).
OTEL_SDK_DISABLED=true turns both off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SUPPORTED_PROTOCOL = "http/protobuf"
TRACES_EXPORTERS = ("otlp", "console", "none")
METRICS_EXPORTERS = ("otlp", "none")
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class TelemetryConfigError(ValueError):
    """An OTEL_* variable has a value this runtime cannot honour; the message names it."""


@dataclass(frozen=True)
class TelemetrySettings:
    disabled: bool = False
    traces_exporter: Literal["otlp", "console", "none"] = "none"
    metrics_exporter: Literal["otlp", "none"] = "none"
    capture_content: bool = False
    """Message contents (prompts, answers, tool arguments and results) on spans: off unless opted in."""
    service_name: str | None = None
    """OTEL_SERVICE_NAME; None: the instance's name."""
    exemplars: bool = False
    """Exemplars only when OTEL_METRICS_EXEMPLAR_FILTER asks (the SDK's trace_based default costs every
    measurement inside a span, and nothing downstream reads them)."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def _exporter(env: Mapping[str, str], name: str, allowed: tuple[str, ...], endpoint_set: bool) -> str:
    """The exporter a variable names (its first entry), or `otlp` when an endpoint is set and it names none."""
    raw = env.get(name, "").strip().lower()
    chosen = raw.split(",")[0].strip() if raw else ("otlp" if endpoint_set else "none")
    if chosen not in allowed:
        raise TelemetryConfigError(f"{name}={raw!r} is not supported; use one of: {', '.join(allowed)}")
    return chosen


def telemetry_settings(env: Mapping[str, str]) -> TelemetrySettings:
    """Raises TelemetryConfigError for a protocol or exporter the image does not ship (so it fails at start-up,
    not silently at the first export)."""
    for signal in ("", "TRACES_", "METRICS_"):
        name = f"OTEL_EXPORTER_OTLP_{signal}PROTOCOL"
        protocol = env.get(name, "").strip()
        if protocol and protocol != SUPPORTED_PROTOCOL:
            raise TelemetryConfigError(
                f"{name}={protocol!r} is not supported: the runtime exports OTLP over HTTP only "
                f"(set it to {SUPPORTED_PROTOCOL!r} or leave it unset)"
            )
    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or None
    if _flag(env, "OTEL_SDK_DISABLED"):
        return TelemetrySettings(disabled=True, service_name=service_name)

    def endpoint(signal: str) -> bool:
        return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or env.get(signal, "").strip())

    traces = _exporter(env, "OTEL_TRACES_EXPORTER", TRACES_EXPORTERS, endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    metrics = _exporter(
        env, "OTEL_METRICS_EXPORTER", METRICS_EXPORTERS, endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    return TelemetrySettings(
        traces_exporter=traces,  # type: ignore[arg-type]  # checked against TRACES_EXPORTERS
        metrics_exporter=metrics,  # type: ignore[arg-type]  # checked against METRICS_EXPORTERS
        capture_content=_flag(env, CAPTURE_CONTENT),
        service_name=service_name,
        exemplars=bool(env.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip()),
    )
