"""SIGTERM while requests are in flight: they complete, new ones are refused, the process exits 0.

In-flight requests are made observably slow the legitimate way: the offline provider's latency setting."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client

from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, serve

pytestmark = pytest.mark.slow

IN_FLIGHT = 5


async def test_sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_zero(
    example_bundles: list[BuiltBundle], runtime_factory: list[RuntimeProcess]
) -> None:
    built = next(b for b in example_bundles if b.instance.key.selector == "acme/retail/dev")
    runtime = serve({**built.identity_env(), "OFFLINE_MODEL_LATENCY_MS": "1500", "LOG_LEVEL": "DEBUG"})
    runtime_factory.append(runtime)

    async def slow_invoke(i: int) -> dict[str, Any]:
        async with Client(runtime.url) as client:
            # list first: the client validates a result against the tool's output schema and would otherwise
            # fetch the listing after the answer, on a new connection the draining server no longer accepts
            await client.list_tools()
            result = await client.call_tool("invoke", {"message": f"plan milestone {i}", "thread_id": f"t{i}"})
        assert result.structured_content is not None
        return dict(result.structured_content)

    tasks = [asyncio.create_task(slow_invoke(i)) for i in range(IN_FLIGHT)]
    loop = asyncio.get_running_loop()
    for _ in range(IN_FLIGHT):  # every request has entered the graph (the runtime logs it at DEBUG)
        await loop.run_in_executor(None, runtime.wait_for_line, r'"event": "invoke\.start"')
        runtime.seen.clear()

    runtime.process.send_signal(signal.SIGTERM)
    await loop.run_in_executor(None, runtime.wait_for_line, r'"event": "draining"')

    # a request arriving now is refused: either the listener is already closed, or the instance answers
    # with a structured `draining` error; it never runs the graph.
    try:
        async with Client(runtime.url) as client:
            late = await client.call_tool("invoke", {"message": "plan one more"})
        assert late.is_error
        assert late.structured_content is not None
        assert late.structured_content["error"]["code"] == "draining"
    except ExceptionGroup as group:
        _, rest = group.split(httpx2.TransportError)
        if rest is not None:
            raise

    async with httpx.AsyncClient(base_url=runtime.base) as http:
        try:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
        except httpx.HTTPError:
            pass  # listener closed: also not ready

    answers = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert all(a["ok"] is True for a in answers)
    assert sorted(a["thread_id"] for a in answers) == [f"t{i}" for i in range(IN_FLIGHT)]

    code = await loop.run_in_executor(None, runtime.process.wait, 30)
    assert code == 0, runtime.stderr_text()
