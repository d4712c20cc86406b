"""Streaming over real HTTP: an `invoke` that carries a progressToken is answered on an SSE stream with a progress
notification as each graph node starts and the model's text in chunks, all before the result; one without a token
gets today's single JSON answer. A real runtime process (the example dev instance, offline model slowed down so
the stream's timing shows), a raw JSON-RPC client on httpx reading the response as it arrives, and the SDK's
client with a progress callback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, serve

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"
MODEL_LATENCY_MS = 400
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


@pytest.fixture(scope="module")
def runtime(example_bundles: list[BuiltBundle]) -> Iterator[RuntimeProcess]:
    built = next(b for b in example_bundles if b.instance.key.selector == INSTANCE)
    # only the worker's model call is slow: the node events before it come at once, the result 400 ms later
    process = serve(
        {
            **built.identity_env(),
            "OFFLINE_MODEL_LATENCY_MS": str(MODEL_LATENCY_MS),
            "OFFLINE_MODEL_SLOW_AGENTS": "pm-agent",
        }
    )
    yield process
    if process.process.poll() is None:
        process.terminate()


def _call(arguments: dict[str, Any], progress_token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "invoke", "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


async def _sse_messages(response: httpx.Response) -> list[tuple[float, dict[str, Any]]]:
    """Each SSE event's JSON-RPC message with the time it arrived."""
    arrived: list[tuple[float, dict[str, Any]]] = []
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            text = "\n".join(data)
            data = []
            if text:
                arrived.append((time.perf_counter(), json.loads(text)))
    return arrived


async def test_a_progress_token_streams_node_starts_and_model_text_before_the_result(runtime: RuntimeProcess) -> None:
    request = _call({"message": "plan the roadmap", "thread_id": "stream-1"}, progress_token="tok-1")
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("POST", runtime.url, json=request, headers=HEADERS) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        sent = time.perf_counter()
        arrived = await _sse_messages(response)

    *notes, (result_at, final) = arrived
    assert final["id"] == 7
    answer = final["result"]["structuredContent"]
    assert answer["ok"] is True
    assert all(n["method"] == "notifications/progress" for _, n in notes)
    params = [n["params"] for _, n in notes]
    assert {p["progressToken"] for p in params} == {"tok-1"}
    assert [p["progress"] for p in params] == list(range(1, len(params) + 1))  # increasing, as the spec asks
    events = [json.loads(p["message"]) for p in params]

    started = [(e["node"], e["agent_id"]) for e in events if e["event"] == "node"]
    # one event per node, in the pipeline's order, each naming its agent
    assert [node for node, _ in started] == [
        "io_in", "governance", "context", "supervisor", "pm-agent", "coherence", "observability", "io_out",
    ]  # fmt: skip
    assert dict(started)["governance"] == "governance-agent"
    assert dict(started)["pm-agent"] == "pm-agent"

    texts = [e for e in events if e["event"] == "text"]
    assert len(texts) >= 2
    assert {(t["node"], t["agent_id"]) for t in texts} == {("pm-agent", "pm-agent")}
    assert "".join(t["text"] for t in texts) == answer["answer"]  # the chunks are the answer, in order
    pm_started = next(i for i, e in enumerate(events) if e.get("node") == "pm-agent")
    first_text = next(i for i, e in enumerate(events) if e["event"] == "text")
    assert pm_started < first_text < events.index({"event": "node", "node": "coherence", "agent_id": "coherence-agent"})

    # streamed, not buffered: the first node event arrived well before the slow model call ended
    first_at = notes[0][0]
    assert result_at - first_at >= MODEL_LATENCY_MS / 1000 * 0.8, (first_at - sent, result_at - sent)


async def test_without_a_progress_token_the_answer_is_one_json_response(runtime: RuntimeProcess) -> None:
    request = _call({"message": "plan the roadmap", "thread_id": "stream-2"}, progress_token=None)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(runtime.url, json=request, headers=HEADERS)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == 7 and body["result"]["structuredContent"]["ok"] is True


async def test_an_instance_without_approvals_opens_no_session_even_for_a_client_that_can_elicit(
    runtime: RuntimeProcess,
) -> None:
    """Sessions exist only to ask for approvals inline: without approval_required every request stays stateless."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "raw"}}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(runtime.url, json=initialize, headers=HEADERS)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in response.headers and "set-cookie" not in response.headers


async def test_the_sdk_client_receives_the_progress_through_its_callback(runtime: RuntimeProcess) -> None:
    seen: list[tuple[float, dict[str, Any]]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        assert total is None and message is not None
        seen.append((progress, json.loads(message)))

    async with Client(runtime.url) as client:
        result = await client.call_tool(
            "invoke", {"message": "plan the roadmap", "thread_id": "stream-3"}, progress_callback=on_progress
        )
    assert result.structured_content is not None and not result.is_error
    assert [e["node"] for _, e in seen if e["event"] == "node"][:2] == ["io_in", "governance"]
    text = "".join(e["text"] for _, e in seen if e["event"] == "text")
    assert text == result.structured_content["answer"]
