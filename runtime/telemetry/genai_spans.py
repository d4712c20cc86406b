"""Span names and attributes of the OpenTelemetry GenAI semantic conventions, in one place: `invoke_agent` for the
turn and for each graph node, `chat {model}` for a model call, `execute_tool {tool}` for a tool call. Where the
conventions say nothing, attributes carry an `agentfoundry.` prefix.

The tracer is the API's proxy: a no-op until runtime.telemetry.provider installs a provider, so these spans cost
nothing when nothing is exported. Message contents are added only when the operator opted in
(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true), as the conventions' JSON attributes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

TRACER = trace.get_tracer("agentfoundry.runtime")
_recording = False
"""Set by runtime.telemetry.provider once a tracer provider is installed; until then `span` makes no span at all."""


def start_recording() -> None:
    global _recording
    _recording = True


OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
PROVIDER_NAMES = {"bedrock": "aws.bedrock", "offline": "offline"}
"""Our provider names -> gen_ai.provider.name (the conventions' well-known value for Bedrock)."""


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


@contextmanager
def span(name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A current span that records an escaping exception's type as `error.type` (never its message: exceptions
    may quote the caller's input). Without a tracer provider: the current (caller's or no-op) span, untouched, so
    an instance that exports nothing pays nothing per span."""
    if not _recording:
        yield trace.get_current_span()
        return
    current = TRACER.start_span(name, kind=kind, attributes=attributes)
    token = context.attach(trace.set_span_in_context(current))  # start_as_current_span, one layer less
    try:
        yield current
    except BaseException as exc:
        fail(current, type(exc).__name__)
        raise
    finally:
        context.detach(token)
        current.end()


def fail(current: Span, error_type: str) -> None:
    current.set_attribute("error.type", error_type)
    current.set_status(StatusCode.ERROR)


def text_messages(role: str, text: str) -> str:
    """One message as the conventions' `gen_ai.input.messages` / `gen_ai.output.messages` JSON."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)


def system_instructions(text: str) -> str:
    return json.dumps([{"type": "text", "content": text}], ensure_ascii=False)


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
