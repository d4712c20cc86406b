"""OpenTelemetry for one instance: the resource that says whose spans and metrics these are, the tracer provider
(installed once per process, so the MCP SDK's own spans join ours) and the settings, read only from the standard
OTEL_* variables.

Nothing is exported unless asked: traces go out over OTLP (HTTP/protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set or OTEL_TRACES_EXPORTER names an exporter (`console` prints each span
to stdout, for a newcomer); without either, no tracer provider is installed and every span is the API's no-op.
OTEL_SDK_DISABLED=true turns the SDK off altogether (traces and metrics).
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from instance_contract.schema import AgentInstance
from runtime.telemetry.genai_spans import start_recording
from runtime.telemetry.telemetry_settings import TelemetrySettings


def instance_resource(instance: AgentInstance, bundle_hash: str, settings: TelemetrySettings) -> Resource:
    """Whose telemetry this is, from the bundle's instance manifest and its hash. OTEL_SERVICE_NAME (default: the
    instance's name) and OTEL_RESOURCE_ATTRIBUTES are honoured; the instance's identity always wins."""
    identity = instance.spec.identity
    attributes: dict[str, str] = {
        "service.version": instance.metadata.manifest_version,
        "deployment.environment.name": identity.environment,
        "agentfoundry.organization": identity.organization_id,
        "agentfoundry.domain": identity.domain_id,
        "agentfoundry.instance": identity.instance_id,
        "agentfoundry.bundle.hash": bundle_hash,
    }
    attributes["service.name"] = settings.service_name or instance.metadata.name
    return Resource.create(attributes)


_installed: TracerProvider | None = None


def install_tracing(settings: TelemetrySettings, resource: Resource) -> TracerProvider | None:
    """Installs the process's tracer provider (once: OpenTelemetry allows one global provider, and the MCP SDK's
    spans need it). None when nothing is to be exported: spans then stay the API's no-op and cost nothing."""
    global _installed
    if _installed is not None:
        return _installed
    if settings.disabled or settings.traces_exporter == "none":
        return None
    exporter: SpanExporter
    if settings.traces_exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)  # stdout may be the MCP stdio transport
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* tune it
    trace.set_tracer_provider(provider)
    start_recording()
    _installed = provider
    return provider


def shutdown_tracing() -> None:
    """Exports what is still queued (the drain calls it before the process exits)."""
    if _installed is not None:
        _installed.shutdown()
