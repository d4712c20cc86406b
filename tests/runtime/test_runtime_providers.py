"""Model providers: the offline default is deterministic; Bedrock's Converse request shape, checked with Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from runtime.backend.providers import (
    BedrockProvider,
    ModelRequest,
    OfflineProvider,
    ProviderError,
    ToolCall,
    ToolSpec,
    ToolStep,
    word_chunks,
)
from runtime.config import OfflineModelSettings

REQUEST = ModelRequest(
    agent_id="pm-agent",
    system="You are a project manager.",
    prompt="Plan the Q3 roadmap",
    max_tokens=800,
    temperature=0.2,
)


def bedrock_client() -> object:
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


async def test_bedrock_sends_a_converse_request_with_system_prompt_message_and_inference_settings() -> None:
    client = bedrock_client()
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Here is the plan."}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16},
                "metrics": {"latencyMs": 10},
            },
            expected_params={
                "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
                "system": [{"text": "You are a project manager."}],
                "messages": [{"role": "user", "content": [{"text": "Plan the Q3 roadmap"}]}],
                "inferenceConfig": {"maxTokens": 800, "temperature": 0.2},
            },
        )
        provider = BedrockProvider(client=client, default_model_id="anthropic.claude-3-haiku-20240307-v1:0")
        reply = await provider.generate(REQUEST)
        stub.assert_no_pending_responses()
    assert reply.text == "Here is the plan."
    assert (reply.provider, reply.input_tokens, reply.output_tokens) == ("bedrock", 12, 4)


async def test_a_model_id_in_the_agent_spec_overrides_the_instance_default() -> None:
    client = bedrock_client()
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
            expected_params={
                "modelId": "amazon.nova-lite-v1:0",
                "system": [{"text": REQUEST.system}],
                "messages": [{"role": "user", "content": [{"text": REQUEST.prompt}]}],
                "inferenceConfig": {"maxTokens": 800, "temperature": 0.2},
            },
        )
        provider = BedrockProvider(client=client, default_model_id="anthropic.claude-3-haiku-20240307-v1:0")
        reply = await provider.generate(ModelRequest(**{**REQUEST.__dict__, "model_id": "amazon.nova-lite-v1:0"}))
    assert reply.model == "amazon.nova-lite-v1:0"


@pytest.mark.parametrize("operation", ["converse", "converse_stream"])
async def test_a_bedrock_error_becomes_a_provider_error_with_only_the_error_code(operation: str) -> None:
    client = bedrock_client()
    with Stubber(client) as stub:
        stub.add_client_error(operation, service_error_code="ThrottlingException", service_message="slow down")
        provider = BedrockProvider(client=client, default_model_id="m")
        streamed: list[str] = []

        async def sink(text: str) -> None:
            streamed.append(text)

        with pytest.raises(ProviderError, match=rf"^bedrock {operation} failed \(ThrottlingException\)$"):
            await provider.generate(REQUEST, sink if operation == "converse_stream" else None)
    assert streamed == []


async def test_the_offline_provider_answers_the_same_input_with_the_same_text() -> None:
    provider = OfflineProvider()
    first, second = await provider.generate(REQUEST), await provider.generate(REQUEST)
    other = await provider.generate(ModelRequest(**{**REQUEST.__dict__, "prompt": "Plan Q4"}))
    assert first == second
    assert first.text.startswith("[pm-agent] Plan the Q3 roadmap (offline#")
    assert other.text != first.text


async def test_the_offline_provider_fails_for_the_agents_it_is_told_to_fail() -> None:
    provider = OfflineProvider(OfflineModelSettings(fail_agents=frozenset({"pm-agent"})))
    with pytest.raises(ProviderError, match="pm-agent"):
        await provider.generate(REQUEST)


# --- tools: the offline provider is tool-aware, deterministically ------------------------------------------------

TICKET_TOOLS = (
    ToolSpec(
        "ticketing.create_ticket",
        "Open a new ticket for a bug or outage.",
        {"properties": {"summary": {"type": "string"}}},
    ),
    ToolSpec("ticketing.close_ticket", "Close a ticket that is resolved.", {"properties": {"id": {"type": "string"}}}),
    ToolSpec(
        "search.lookup", "Find documents.", {"properties": {"limit": {"type": "integer"}, "q": {"type": "string"}}}
    ),
)


def _with_tools(
    text: str, tools: tuple[ToolSpec, ...] = TICKET_TOOLS, steps: tuple[ToolStep, ...] = ()
) -> ModelRequest:
    return ModelRequest(
        "ticket-agent", "sys", f"Request: {text}", 100, 0.0, tools=tools, steps=steps, request_text=text
    )


async def test_offline_calls_the_best_matching_tool_with_the_request_as_its_first_string_argument() -> None:
    reply = await OfflineProvider().generate(_with_tools("the checkout outage needs a new ticket"))
    (call,) = reply.tool_calls
    assert (call.name, call.arguments) == (
        "ticketing.create_ticket",
        {"summary": "the checkout outage needs a new ticket"},
    )
    lookup = await OfflineProvider().generate(_with_tools("lookup the documents"))
    assert lookup.tool_calls[0].arguments == {"q": "lookup the documents"}  # the first *string* property


async def test_offline_breaks_a_tie_by_the_specs_order_of_tools() -> None:
    reply = await OfflineProvider().generate(_with_tools("about a ticket"))  # 'ticket' matches both ticketing tools
    assert reply.tool_calls[0].name == "ticketing.create_ticket"
    reordered = await OfflineProvider().generate(_with_tools("about a ticket", tools=TICKET_TOOLS[::-1]))
    assert reordered.tool_calls[0].name == "ticketing.close_ticket"


async def test_offline_without_a_matching_tool_answers_as_without_tools() -> None:
    plain = await OfflineProvider().generate(_with_tools("plan the roadmap", tools=()))
    reply = await OfflineProvider().generate(_with_tools("plan the roadmap"))
    assert reply.tool_calls == () and reply.text == plain.text


async def test_offline_answers_with_the_tools_result_once_it_has_one() -> None:
    call = ToolCall("c1", "ticketing.create_ticket", {"summary": "x"})
    reply = await OfflineProvider().generate(_with_tools("new ticket", steps=(ToolStep((call,), ("TCK-7 opened",)),)))
    assert reply.tool_calls == () and "TCK-7 opened" in reply.text


async def test_the_offline_provider_streams_its_answer_in_word_chunks_that_join_to_the_same_reply() -> None:
    chunks: list[str] = []

    async def on_text(chunk: str) -> None:
        chunks.append(chunk)

    streamed = await OfflineProvider().generate(REQUEST, on_text)
    assert len(chunks) >= 2
    assert all(len(c.split()) <= 3 for c in chunks)
    assert "".join(chunks) == streamed.text
    assert streamed == await OfflineProvider().generate(REQUEST)


@pytest.mark.parametrize("text", ["  leading space, then words", "one", "   ", "", "a  b\n c ", "\n\nx y z w"])
def test_word_chunks_join_back_to_the_text_exactly_leading_whitespace_included(text: str) -> None:
    chunks = word_chunks(text, words=2)
    assert "".join(chunks) == text
    assert all(len(c.split()) <= 2 for c in chunks)
