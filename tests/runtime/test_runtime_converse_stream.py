"""Bedrock's ConverseStream, without a network: the events folded into the reply `converse` would have given (text
deltas, toolUse starts and input fragments, usage), and the provider end to end through botocore's own parsing of a
binary AWS event stream (served by a `before-send` hook instead of Bedrock), with the text passed on as it comes.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from runtime.backend.providers import (
    BedrockProvider,
    ConverseStreamReader,
    ModelReply,
    ModelRequest,
    ProviderError,
    ToolSpec,
)

MODEL_ID = "anthropic.claude-test-v1:0"
TOOL = ToolSpec("ticketing.create_ticket", "File a ticket", {"type": "object", "properties": {"summary": {}}})
NAMES = {"ticketing--create_ticket": "ticketing.create_ticket"}

TEXT_EVENTS: list[dict[str, Any]] = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Here is "}}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "the plan."}}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16}, "metrics": {"latencyMs": 9}}},
]
TOOL_EVENTS: list[dict[str, Any]] = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Filing it."}}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {
        "contentBlockStart": {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "use-1", "name": "ticketing--create_ticket"}},
        }
    },
    {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"summ'}}}},
    {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ary": "checkout"}'}}}},
    {"contentBlockStop": {"contentBlockIndex": 1}},
    {"messageStop": {"stopReason": "tool_use"}},
    {"metadata": {"usage": {"inputTokens": 30, "outputTokens": 8, "totalTokens": 38}, "metrics": {"latencyMs": 9}}},
]


def fold_converse_stream(events: Iterable[dict[str, Any]], *, model: str, tool_names: dict[str, str]) -> ModelReply:
    """A whole ConverseStream at once, through the reader the provider feeds event by event."""
    reader = ConverseStreamReader(model, tool_names)
    for event in events:
        reader.feed(event)
    return reader.reply()


def test_text_deltas_fold_into_the_reply_with_the_usage_of_the_metadata_event() -> None:
    reply = fold_converse_stream(TEXT_EVENTS, model=MODEL_ID, tool_names={})
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.tool_calls) == ("Here is the plan.", 12, 4, ())
    assert (reply.provider, reply.model) == ("bedrock", MODEL_ID)


def test_a_tool_use_block_becomes_a_call_with_its_input_joined_from_fragments_and_its_own_name() -> None:
    reader = ConverseStreamReader(MODEL_ID, NAMES)
    texts = [chunk for event in TOOL_EVENTS if (chunk := reader.feed(event))]
    reply = reader.reply()
    assert texts == ["Filing it."]  # the tool input's fragments are not text for the caller
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("use-1", "ticketing.create_ticket", {"summary": "checkout"})
    ]


def test_a_tool_the_request_did_not_offer_is_refused() -> None:
    with pytest.raises(ProviderError, match="not offered: ticketing--create_ticket"):
        fold_converse_stream(TOOL_EVENTS, model=MODEL_ID, tool_names={})


def test_an_error_event_in_the_stream_is_a_provider_error_naming_it() -> None:
    events = [*TEXT_EVENTS[:2], {"throttlingException": {"message": "slow down"}}]
    with pytest.raises(ProviderError, match=r"converse_stream failed \(throttlingException\)"):
        fold_converse_stream(events, model=MODEL_ID, tool_names={})


def test_tool_input_that_is_not_json_is_refused() -> None:
    events = [*TOOL_EVENTS[:4], {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{"}}}}]
    with pytest.raises(ProviderError, match="not JSON"):
        fold_converse_stream(events, model=MODEL_ID, tool_names=NAMES)


# --- the provider through botocore's event-stream parser --------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def _message(event: dict[str, Any]) -> bytes:
    """One message of the AWS event-stream encoding (prelude, its CRC, headers, JSON payload, message CRC)."""
    ((event_type, body),) = event.items()
    headers = _header(":message-type", "event") + _header(":event-type", event_type)
    headers += _header(":content-type", "application/json")
    payload = json.dumps(body).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(payload) + 4, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return head + struct.pack(">I", zlib.crc32(head))


class RawBody:
    """What botocore reads an event stream from (the HTTP response's raw body): its bytes in small pieces."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        for start in range(0, len(self.body), 7):  # odd pieces: messages arrive split, as over a network
            yield self.body[start : start + 7]

    def close(self) -> None:
        return None


class FakeBedrock:
    """Answers the signed ConverseStream request in place of the network, and keeps what was sent."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.body = b"".join(_message(e) for e in events)
        self.requests: list[AWSPreparedRequest] = []

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.requests.append(request)
        raw = RawBody(self.body)
        headers = {"Content-Type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, 200, headers, raw)


def _provider(events: list[dict[str, Any]]) -> tuple[BedrockProvider, FakeBedrock]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    fake = FakeBedrock(events)
    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", fake)
    return BedrockProvider(client=client, default_model_id=MODEL_ID), fake


async def test_with_a_text_sink_the_provider_calls_converse_stream_and_passes_each_delta_on_in_order() -> None:
    provider, fake = _provider(TEXT_EVENTS)
    chunks: list[str] = []

    async def on_text(chunk: str) -> None:
        chunks.append(chunk)

    request = ModelRequest(agent_id="pm-agent", system="Plan.", prompt="Plan Q3", max_tokens=100, temperature=0.0)
    reply = await provider.generate(request, on_text)
    assert chunks == ["Here is ", "the plan."]
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("Here is the plan.", 12, 4)
    (sent,) = fake.requests
    assert sent.url.endswith("/model/anthropic.claude-test-v1%3A0/converse-stream")
    body = json.loads(sent.body or b"{}")
    assert body["messages"] == [{"role": "user", "content": [{"text": "Plan Q3"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.0}


async def test_a_streamed_tool_request_gives_the_same_calls_as_converse_would() -> None:
    provider, _ = _provider(TOOL_EVENTS)
    chunks: list[str] = []

    async def on_text(chunk: str) -> None:
        chunks.append(chunk)

    request = ModelRequest(
        agent_id="ticket-agent", system="File.", prompt="checkout", max_tokens=100, temperature=0.0, tools=(TOOL,)
    )
    reply = await provider.generate(request, on_text)
    assert chunks == ["Filing it."]
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("ticketing.create_ticket", {"summary": "checkout"})]
