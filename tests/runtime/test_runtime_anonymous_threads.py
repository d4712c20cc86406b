"""With caller authentication off every caller is the same anonymous caller, so a call without a thread id must not
land in a shared thread: a real runtime (AUTH_MODE=none) called by two MCP clients over streamable HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, serve

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"
CARD = "4111-1111-1111-1111"


@pytest.fixture(scope="module")
def runtime(example_bundles: list[BuiltBundle]) -> Iterator[RuntimeProcess]:
    bundle = next(b for b in example_bundles if b.instance.key.selector == INSTANCE)
    process = serve({**bundle.identity_env(), "AUTH_MODE": "none"})
    yield process
    if process.process.poll() is None:
        process.terminate()


async def invoke(url: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(url) as client:  # a connection of its own: another anonymous caller each time
        result = await client.call_tool("invoke", arguments)
    assert not result.is_error and result.structured_content is not None
    return dict(result.structured_content)


async def test_two_anonymous_calls_without_a_thread_id_do_not_share_a_thread(runtime: RuntimeProcess) -> None:
    first = await invoke(runtime.url, {"message": f"plan a payment with card {CARD}"})
    second = await invoke(runtime.url, {"message": "plan: what card did I give you?"})
    assert CARD not in str(second) and "Earlier in this thread" not in second["answer"]
    assert first["thread_id"] != second["thread_id"]
    assert "default" not in (first["thread_id"], second["thread_id"])


async def test_the_answer_names_the_new_thread_so_the_caller_can_continue_it(runtime: RuntimeProcess) -> None:
    started = await invoke(runtime.url, {"message": f"plan a refund to card {CARD}"})
    continued = await invoke(runtime.url, {"message": "plan: which card was it?", "thread_id": started["thread_id"]})
    assert continued["thread_id"] == started["thread_id"]
    assert "Earlier in this thread" in continued["answer"] and CARD in continued["answer"]


async def test_the_tool_schema_says_a_missing_thread_id_starts_a_new_thread(runtime: RuntimeProcess) -> None:
    async with Client(runtime.url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    thread = tools["invoke"].input_schema["properties"]["thread_id"]
    assert "thread_id" not in tools["invoke"].input_schema.get("required", [])
    assert "new thread" in thread["description"]
