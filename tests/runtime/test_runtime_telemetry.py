"""OpenTelemetry in a served runtime: its spans and metrics arrive at a real OTLP/HTTP receiver inside the test
(tests/runtime/otlp_receiver.py, decoding the protobuf as a collector would), /metrics and the `status` tool show
the same SDK's counts, and an external MCP server (tests/runtime/ticketing_server.py) receives the trace context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from runtime.bundle_source import load_bundle
from runtime.config import ConfigError, config_from_env
from runtime.instance import Instance
from runtime.telemetry.provider import install_tracing
from runtime.telemetry.telemetry_settings import TelemetrySettings, telemetry_settings
from tests.runtime.otlp_receiver import OtlpReceiver, ReceivedSpan, serve_otlp
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, serve
from tests.runtime.test_runtime_external_tools import REQUEST, TOKEN, _bundle
from tests.runtime.ticketing_server import TicketingServer, serve_ticketing

pytestmark = pytest.mark.slow

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SERVER, CLIENT = 2, 3  # OTLP span kinds
CONTENT_ATTRIBUTES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)
EXPORT_FAST = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with serve_otlp() as running:
        yield running


@pytest.fixture(scope="module")
def ticketing() -> Iterator[TicketingServer]:
    with serve_ticketing(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def bundle(ticketing: TicketingServer, tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    return _bundle(tmp_path_factory.mktemp("traced"), ticketing.url)


def _env(bundle: BuiltBundle, receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        **bundle.identity_env(),
        "SECRET_TICKET_API_TOKEN": TOKEN,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        **EXPORT_FAST,
        **extra,
    }


@pytest.fixture(scope="module")
def traced(bundle: BuiltBundle, receiver: OtlpReceiver) -> Iterator[RuntimeProcess]:
    process = serve(_env(bundle, receiver))
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait(timeout=10)


async def _invoke(url: str, *, headers: dict[str, str] | None = None, meta: dict[str, Any] | None = None) -> Any:
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(120)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool("invoke", {"message": REQUEST, "thread_id": "traced"}, meta=meta)  # type: ignore[arg-type]
    assert not result.is_error and result.structured_content is not None, result
    return result.structured_content


def _wait_for_turn(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    """Every span of the turn (the server span ends last, so its arrival means the rest came first)."""
    receiver.wait_for(lambda r: any(s.name == "tools/call invoke" for s in r.trace(trace_id)))
    return receiver.trace(trace_id)


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    names = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


async def test_one_invoke_with_a_traceparent_header_is_one_trace_of_the_callers_with_genai_spans(
    traced: RuntimeProcess, receiver: OtlpReceiver, ticketing: TicketingServer, bundle: BuiltBundle
) -> None:
    answer = await _invoke(traced.url, headers={"traceparent": TRACEPARENT})
    assert answer["ok"], answer["error"]
    assert answer["trace_id"] == CALLER_TRACE  # the caller can find the trace by the id it sent

    spans = _wait_for_turn(receiver, CALLER_TRACE)
    by_id = {s.span_id: s for s in spans}
    instance = bundle.instance.manifest.metadata.name

    (server,) = [s for s in spans if s.name == "tools/call invoke"]  # the MCP SDK's own server span
    assert (server.parent_span_id, server.kind, server.scope) == (CALLER_SPAN, SERVER, "mcp-python-sdk")
    (turn,) = [s for s in spans if s.name == f"invoke_agent {instance}"]
    assert turn.parent_span_id == server.span_id
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["gen_ai.agent.name"] == instance

    nodes = [s for s in spans if s.parent_span_id == turn.span_id]
    assert sorted(s.attributes["gen_ai.agent.name"] for s in nodes) == sorted(t["agent_id"] for t in answer["trace"])
    assert all(s.name == f"invoke_agent {s.attributes['gen_ai.agent.name']}" for s in nodes)
    assert sorted(s.attributes["agentfoundry.graph.node"] for s in nodes) == sorted(t["node"] for t in answer["trace"])

    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 2  # the ticket agent asks for the tool, then answers with its result
    for chat in chats:
        assert chat.name == "chat offline-echo" and chat.kind == CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "offline"
        assert chat.attributes["gen_ai.request.model"] == "offline-echo"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert isinstance(chat.attributes["gen_ai.usage.output_tokens"], int)
        assert _ancestors(chat, by_id)[:2] == ["execute_tool model_generate", "invoke_agent ticket-agent"]
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) > 0

    tools = {s.attributes["gen_ai.tool.name"]: s for s in spans if s.name.startswith("execute_tool ")}
    assert {"memory_read", "context_get", "model_generate", "memory_append", "ticketing.create_ticket"} <= set(tools)
    for name, tool in tools.items():
        assert tool.name == f"execute_tool {name}"
        assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
        assert by_id[tool.parent_span_id].attributes["gen_ai.operation.name"] == "invoke_agent"  # under its node
    assert tools["ticketing.create_ticket"].attributes["gen_ai.tool.type"] == "extension"
    assert tools["ticketing.create_ticket"].parent_span_id == next(
        s.span_id for s in nodes if s.attributes["gen_ai.agent.name"] == "ticket-agent"
    )

    identity = bundle.instance.manifest.spec.identity
    expected_resource = {
        "service.name": instance,
        "service.version": bundle.instance.manifest.metadata.manifest_version,
        "deployment.environment.name": identity.environment,
        "agentfoundry.organization": identity.organization_id,
        "agentfoundry.domain": identity.domain_id,
        "agentfoundry.instance": identity.instance_id,
        "agentfoundry.bundle.hash": bundle.content_hash,
    }
    for span in spans:
        assert expected_resource.items() <= span.resource.items(), span.name
    assert "application/x-protobuf" in receiver.content_types

    # no message content by default: neither the conventions' content attributes nor the request's words
    for span in spans:
        assert not set(CONTENT_ATTRIBUTES) & set(span.attributes), span.name
        assert "checkout outage" not in json.dumps(span.attributes), span.name

    # the external MCP server was called within the same trace: header and _meta both carry it on
    header_traces = {t.split("-")[1] for t in ticketing.traceparent_headers}
    meta_traces = {t.split("-")[1] for t in ticketing.traceparent_meta}
    assert CALLER_TRACE in header_traces and CALLER_TRACE in meta_traces
    call_span = next(t.split("-")[2] for t in ticketing.traceparent_meta if CALLER_TRACE in t)
    assert by_id[call_span].name == "MCP send tools/call create_ticket"  # the SDK's client span, in the backend
    assert by_id[call_span].parent_span_id == tools["ticketing.create_ticket"].span_id


async def test_a_traceparent_in_the_mcp_meta_continues_the_callers_trace(
    traced: RuntimeProcess, receiver: OtlpReceiver
) -> None:
    trace_id, span_id = "5cf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
    answer = await _invoke(traced.url, meta={"traceparent": f"00-{trace_id}-{span_id}-01"})
    assert answer["trace_id"] == trace_id
    spans = _wait_for_turn(receiver, trace_id)
    (server,) = [s for s in spans if s.name == "tools/call invoke"]
    assert server.parent_span_id == span_id
    assert any(s.name.startswith("chat ") for s in spans)


async def test_metrics_are_exported_over_otlp_with_the_agreed_names(
    traced: RuntimeProcess, receiver: OtlpReceiver, bundle: BuiltBundle
) -> None:
    await _invoke(traced.url)
    agreed = {
        "agentfoundry.requests",
        "agentfoundry.turn.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "agentfoundry.tool.calls",
    }
    receiver.wait_for(lambda r: agreed <= r.metric_names)
    assert receiver.metric_resources[-1]["agentfoundry.bundle.hash"] == bundle.content_hash


async def test_message_content_enters_spans_only_when_opted_in(
    bundle: BuiltBundle, receiver: OtlpReceiver, runtime_factory: list[RuntimeProcess]
) -> None:
    process = serve(_env(bundle, receiver, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"))
    runtime_factory.append(process)
    trace_id = "6df92f3577b34da6a3ce929d0e0e4738"
    answer = await _invoke(process.url, headers={"traceparent": f"00-{trace_id}-20f067aa0ba902b9-01"})
    spans = _wait_for_turn(receiver, trace_id)
    (turn,) = [s for s in spans if s.name.startswith("invoke_agent ") and s.attributes.get("gen_ai.input.messages")]
    assert json.loads(turn.attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == REQUEST
    assert json.loads(turn.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == answer["answer"]
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert REQUEST in chat.attributes["gen_ai.input.messages"]
    assert "gen_ai.system_instructions" in chat.attributes
    ticket = next(s for s in spans if s.name == "execute_tool ticketing.create_ticket")
    assert json.loads(ticket.attributes["gen_ai.tool.call.arguments"]) == {"summary": REQUEST}
    assert "TCK-" in ticket.attributes["gen_ai.tool.call.result"]


async def test_metrics_endpoint_and_status_show_the_invokes_just_made(
    bundle: BuiltBundle, runtime_factory: list[RuntimeProcess]
) -> None:
    """A runtime without an OTLP endpoint still records: /metrics (Prometheus text) and `status` read the SDK."""
    process = serve({**bundle.identity_env(), "SECRET_TICKET_API_TOKEN": TOKEN})
    runtime_factory.append(process)
    async with Client(process.url) as client:
        ok = await client.call_tool("invoke", {"message": REQUEST, "thread_id": "m1"})
        bad = await client.call_tool("invoke", {"message": REQUEST, "thread_id": "no spaces allowed"})
        status = (await client.call_tool("status", {})).structured_content
    assert ok.structured_content and ok.structured_content["ok"]
    assert bad.structured_content and bad.structured_content["error"]["code"] == "malformed_input"
    assert status is not None
    async with httpx.AsyncClient(base_url=process.base) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(response.text) for s in f.samples]

    def total(name: str, **labels: str) -> float:
        return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())

    assert total("agentfoundry_requests_total", outcome="ok") == 1
    assert total("agentfoundry_requests_total", outcome="error") == 1
    assert total("agentfoundry_errors_total", error_type="malformed_input") == 1
    assert total("agentfoundry_turn_duration_seconds_count") == 2
    assert total("agentfoundry_tool_calls_total", gen_ai_tool_name="ticketing.create_ticket") == 1
    assert total("gen_ai_client_operation_duration_seconds_count", gen_ai_request_model="offline-echo") == 2
    tokens_in = total("gen_ai_client_token_usage_sum", gen_ai_request_model="offline-echo", gen_ai_token_type="input")
    tokens_out = total("gen_ai_client_token_usage_sum", gen_ai_request_model="offline-echo", gen_ai_token_type="output")
    assert tokens_in > 0 and tokens_out > 0
    identity = bundle.instance.manifest.spec.identity
    (labels,) = {
        (lab["agentfoundry_organization"], lab["agentfoundry_domain"], lab["agentfoundry_instance"])
        for n, lab, _ in samples
        if n == "agentfoundry_requests_total"
    }
    assert labels == (identity.organization_id, identity.domain_id, identity.instance_id)

    seen = status["telemetry"]
    assert seen["enabled"] is True
    assert seen["requests"] == {"ok": 1, "error": 1}
    assert seen["errors"] == {"malformed_input": 1}
    assert seen["tokens"] == {"offline-echo": {"input": tokens_in, "output": tokens_out}}
    assert seen["model_calls"]["offline-echo"]["calls"] == 2
    assert seen["tool_calls"]["ticketing.create_ticket"] == {"calls": 1, "errors": 0}
    assert seen["tool_calls"]["memory_read"]["calls"] == 1
    turn = seen["turn_seconds"]
    assert turn["count"] == 2 and turn["mean"] > 0 and 0 < turn["p50"] <= turn["p95"]
    assert seen["model_calls"]["offline-echo"]["seconds"] > 0


async def test_with_the_sdk_disabled_nothing_is_recorded_and_invoke_still_answers(bundle: BuiltBundle) -> None:
    config = config_from_env(
        {**bundle.identity_env(), "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        state="memory://",
    )
    assert config.telemetry.disabled

    instance = Instance(
        bundle=load_bundle(str(bundle.path), expected_hash=None, identity=config.identity), config=config
    )
    await instance.start()
    try:
        result = await instance.invoke("plan the roadmap", "t1")
    finally:
        await instance.stop()
    assert result.ok
    assert instance.status()["telemetry"]["enabled"] is False
    assert instance.telemetry.metrics.prometheus() == b""


def test_nothing_is_exported_without_an_endpoint_or_an_exporter() -> None:
    settings = telemetry_settings({})
    assert (settings.traces_exporter, settings.metrics_exporter, settings.capture_content) == ("none", "none", False)
    assert install_tracing(settings, resource=None) is None  # type: ignore[arg-type]  # never reached
    endpoint = telemetry_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"})
    assert (endpoint.traces_exporter, endpoint.metrics_exporter) == ("otlp", "otlp")
    console = telemetry_settings({"OTEL_TRACES_EXPORTER": "console"})
    assert (console.traces_exporter, console.metrics_exporter) == ("console", "none")
    assert telemetry_settings({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) == TelemetrySettings(
        disabled=True
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER='zipkin' is not supported; use one of: otlp"),
    ],
)
def test_an_otel_setting_the_runtime_cannot_honour_stops_it_at_start_naming_the_variable(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        config_from_env({"BUNDLE_URI": "bundle.tar.gz", variable: value})


async def test_the_console_exporter_prints_the_spans_of_one_invoke_on_stderr(
    bundle: BuiltBundle, runtime_factory: list[RuntimeProcess]
) -> None:
    """The README's way for a newcomer to see a trace: OTEL_TRACES_EXPORTER=console, no collector needed."""
    env = {**bundle.identity_env(), "SECRET_TICKET_API_TOKEN": TOKEN, "OTEL_TRACES_EXPORTER": "console"}
    process = serve({**env, **EXPORT_FAST})
    runtime_factory.append(process)
    async with Client(process.url) as client:
        result = await client.call_tool("invoke", {"message": "plan the roadmap", "thread_id": "console"})
    assert result.structured_content is not None
    trace_id = result.structured_content["trace_id"]
    assert process.terminate() == 0  # the drain flushes what is still queued
    printed = process.stderr_text()
    for name in ("tools/call invoke", "invoke_agent pm-agent", "execute_tool model_generate", "chat offline-echo"):
        assert f'"name": "{name}"' in printed
    assert f'"trace_id": "0x{trace_id}"' in printed


async def test_a_failing_model_call_counts_as_a_model_tool_and_request_error(bundle: BuiltBundle) -> None:
    config = config_from_env({**bundle.identity_env(), "OFFLINE_MODEL_FAIL_AGENTS": "pm-agent"}, state="memory://")
    loaded = load_bundle(str(bundle.path), expected_hash=None, identity=config.identity)
    instance = Instance(bundle=loaded, config=config)
    await instance.start()
    try:
        result = await instance.invoke("plan the roadmap", "failing")
        seen = instance.status()["telemetry"]
    finally:
        await instance.stop()
    assert result.error is not None and result.error.code == "agent_failed"
    assert seen["requests"] == {"error": 1} and seen["errors"] == {"agent_failed": 1}
    assert seen["model_calls"]["offline-echo"]["errors"] == 1
    assert seen["tool_calls"]["model_generate"] == {"calls": 1, "errors": 1}
    assert "offline-echo" not in seen["tokens"]  # a failed call used no tokens
