"""One set of request limits, from the instance manifest: the time limit of a request (a real runtime process and
the MCP client, with a worker made slow the legitimate way, the offline provider's delay setting), and the input
limit that governance and the backend memory share (tested at its edge, in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from foundry.bundles.graph_definition import graph_definition
from foundry.fleet.load import load_fleet
from runtime.auth import anonymous_caller, thread_key
from runtime.backend.backend_mcp import ToolCallError
from runtime.bundle_source import load_bundle
from runtime.config import ExpectedIdentity, config_from_env
from runtime.graph import REQUEST_DEADLINE, guarded
from runtime.instance import Instance
from runtime.state import PipelineState
from runtime.store.memory import StoredMessage, ThreadMemory
from tests.foundry.manifest_edits import edit
from tests.runtime.runtime_harness import AGENTS_DIR, BuiltBundle, RuntimeProcess, copy_agents, serve, write_bundles

DEV = "default-org/default-domain/dev"
TEMPLATE = Path("manifests/manifest.instance-template.yaml")


def _bundle(tmp: pytest.TempPathFactory, limits: dict[str, Any], **mcp: Any) -> BuiltBundle:
    agents = copy_agents(tmp.mktemp("agents") / "agents")
    edit(agents / TEMPLATE, lambda d: (d["spec"]["limits"].update(limits), d["spec"]["mcp"].update(mcp)))
    (built,) = write_bundles(agents, tmp.mktemp("bundle"), DEV)
    return built


@pytest.fixture(scope="module")
def slow_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """A one-second request limit; pm-agent's model calls take ten seconds, every other agent's are instant."""
    built = _bundle(tmp_path_factory, {"request_timeout_seconds": 1})
    assert built.instance.manifest.spec.limits.request_timeout_seconds == 1
    env = {**built.identity_env(), "OFFLINE_MODEL_LATENCY_MS": "10000", "OFFLINE_MODEL_SLOW_AGENTS": "pm-agent"}
    process = serve(env)
    yield process
    process.terminate()
    with contextlib.suppress(queue.Empty):  # let the stderr reader reach the end, then close the pipe
        while process.lines.get(timeout=10) is not None:
            pass
    if process.process.stderr is not None:
        process.process.stderr.close()


async def _call(url: str, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    async with Client(url) as client:
        result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None
    return bool(result.is_error), result.structured_content


@pytest.mark.slow
async def test_a_request_past_the_time_limit_ends_in_the_exception_agents_error_and_the_next_one_is_served(
    slow_runtime: RuntimeProcess,
) -> None:
    is_error, body = await _call(slow_runtime.url, "invoke", message="plan the launch milestone", thread_id="t-1")
    assert is_error and body["ok"] is False and body["answer"] is None
    error = body["error"]
    assert (error["code"], error["node"], error["agent_id"]) == ("timeout", "pm-agent", "pm-agent")
    assert "time limit of 1 s" in error["message"] and body["trace_id"] in error["message"]
    assert {step["node"]: step["status"] for step in body["trace"]}["pm-agent"] == "error"
    assert body["agents"][-3:] == ["exception-agent", "observability-agent", "io-agent"]
    assert body["total_ms"] < 10_000, "the request was cut off at its limit, not when the slow call returned"

    is_error, body = await _call(slow_runtime.url, "invoke", message="file a ticket for the outage", thread_id="t-2")
    assert not is_error and body["ok"] is True and body["workers"] == ["ticket-agent"]

    _, status = await _call(slow_runtime.url, "status")
    assert status["ready"] is True
    assert (status["metrics"]["failed"], status["metrics"]["answered"], status["metrics"]["in_flight"]) == (1, 1, 0)
    assert "Traceback" not in slow_runtime.stderr_text()


# --- the input limit: governance and the backend memory agree -----------------------------------------------------

LIMIT = 250_000
"""Above the backend memory's old fixed 200,000-character message limit, which governance knew nothing about."""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    return _bundle(tmp_path_factory, {"max_input_chars": LIMIT}, max_history_messages=3)


@asynccontextmanager
async def running(built: BuiltBundle) -> AsyncIterator[Instance]:
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config_from_env({}, bundle=str(built.path), state="memory://"),
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


class _Threads:
    """The anonymous caller's threads (the in-process invoke has no token), read from the instance's thread state."""

    def __init__(self, instance: Instance) -> None:
        assert instance.thread_state is not None, "the instance opens its thread state at start"
        self.memory: ThreadMemory = instance.thread_state.memory
        self.caller = anonymous_caller(instance.organization)

    async def read(self, thread_id: str, limit: int) -> list[StoredMessage]:
        return await self.memory.read(thread_key(self.caller, thread_id), limit)


def _memory(instance: Instance) -> _Threads:
    return _Threads(instance)


def _message(length: int) -> str:
    text = "plan " + "x" * (length - len("plan "))
    assert len(text) == length
    return text


async def test_a_message_of_exactly_the_limit_runs_through_every_agent_and_is_remembered(
    limited: BuiltBundle,
) -> None:
    async with running(limited) as instance:
        result = await instance.invoke(_message(LIMIT), "edge")
        assert result.ok, result.error
        assert result.workers == ["pm-agent"] and "coherence-agent" in result.agents
        (user, _answer) = await _memory(instance).read("edge", 10)
        assert len(user.content) == LIMIT


async def test_one_character_over_the_limit_is_refused_by_governance_before_any_worker_runs(
    limited: BuiltBundle,
) -> None:
    async with running(limited) as instance:
        result = await instance.invoke(_message(LIMIT + 1), "edge")
        assert not result.ok and result.error is not None
        assert (result.error.code, result.error.node) == ("input_too_large", "governance")
        assert f"the limit is {LIMIT}" in result.error.message
        assert result.workers == [] and result.agents == [
            "io-agent",
            "governance-agent",
            "observability-agent",
            "io-agent",
        ]
        assert await _memory(instance).read("edge", 10) == []


async def test_the_backend_memory_refuses_what_governance_would_and_keeps_max_history_messages(
    limited: BuiltBundle,
) -> None:
    async with running(limited) as instance:
        over = [{"role": "user", "content": "x" * (LIMIT + 1)}]
        with pytest.raises(ToolCallError, match=f"stores at most {LIMIT}"):
            await instance.backend.call("memory_append", {"thread_id": "m", "messages": over})
        for turn in range(3):
            assert (await instance.invoke(f"plan step {turn}", "m")).ok
        kept = await _memory(instance).read("m", 100)
        assert [m.role for m in kept] == ["assistant", "user", "assistant"], "max_history_messages (3) are kept"
        assert kept[1].content == "plan step 2"


# --- the deadline inside the graph's guard ---------------------------------------------------------------------


class _Agent:
    def __init__(self, agent_id: str, behaviour: Callable[[], Awaitable[None]]) -> None:
        self.agent_id = agent_id
        self.behaviour = behaviour

    async def __call__(self, state: Any) -> PipelineState:
        await self.behaviour()
        return {"answer": "done"}


def _error_path() -> set[str]:
    """The example graph definition's error path: the nodes the runtime compiles as unlimited."""
    (example,) = load_fleet(AGENTS_DIR, instance=DEV, cache_dir=None).instances
    return graph_definition(example.manifest, example.specs).error_path()


ERROR_PATH = _error_path()


async def _guarded_run(node: str, behaviour: Callable[[], Awaitable[None]], seconds_left: float) -> PipelineState:
    token = REQUEST_DEADLINE.set(asyncio.get_running_loop().time() + seconds_left)
    try:
        agent = _Agent(f"{node}-agent", behaviour)
        return await guarded(node, agent, unlimited=node in ERROR_PATH)({"message": "m"})
    finally:
        REQUEST_DEADLINE.reset(token)


async def test_a_node_still_running_at_the_deadline_is_cancelled_and_recorded_as_a_request_timeout() -> None:
    update = await _guarded_run("context", lambda: asyncio.sleep(30), 0.05)
    (failure,) = update["failures"]
    assert failure["error_type"] == "RequestTimeout" and failure["agent_id"] == "context-agent"
    assert update["trace"][0]["status"] == "error" and update["trace"][0]["ms"] < 30_000


async def test_a_node_whose_time_ran_out_before_it_started_does_not_run() -> None:
    ran: list[bool] = []

    async def record() -> None:
        ran.append(True)

    update = await _guarded_run("supervisor", record, -1.0)
    assert ran == [] and update["failures"][0]["error_type"] == "RequestTimeout"


async def test_an_agents_own_timeout_error_is_not_mistaken_for_the_requests() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("the ticket API did not answer")

    update = await _guarded_run("context", own_timeout, 30)
    assert update["failures"][0]["error_type"] == "TimeoutError"
    assert update["failures"][0]["detail"] == "the ticket API did not answer"


@pytest.mark.parametrize("node", ["exception", "observability", "io_out"])
async def test_the_error_path_runs_even_after_the_deadline(node: str) -> None:
    update = await _guarded_run(node, lambda: asyncio.sleep(0), -1.0)
    assert "failures" not in update and update["answer"] == "done"
