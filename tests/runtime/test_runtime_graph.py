"""The instance graph: its topology (snapshot), routing, policy and merging rules, and in-process runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from foundry.manifests.schema import GovernancePolicy, RequestLimits
from runtime.agents.coherence import IncoherentOutputError, merge_outputs
from runtime.agents.governance import InputPolicy, check_input
from runtime.agents.supervisor import Route, select_workers
from runtime.backend.backend_mcp import ToolCallError
from runtime.bundle_source import load_bundle
from runtime.config import ExpectedIdentity, config_from_env
from runtime.instance import Instance
from runtime.state import PipelineState
from tests.runtime.runtime_harness import BuiltBundle

ROUTES = [
    Route("pm-agent", ("plan", "roadmap"), default=True),
    Route("qa-agent", ("test", "qa"), default=False),
    Route("ticket-agent", ("bug", "ticket"), default=False),
]


@pytest.fixture
def built(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == "default-org/default-domain/dev")


@asynccontextmanager
async def running(built: BuiltBundle) -> AsyncIterator[Instance]:
    """Started and stopped in the same task: the backend's in-process MCP client owns an anyio task group."""
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config_from_env({"STATE_URL": "memory://"}, bundle=str(built.path)),
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_the_graph_topology_is_pinned(built: BuiltBundle, snapshot: SnapshotAssertion) -> None:
    async with running(built) as instance:
        assert instance.graph.get_graph().draw_mermaid() == snapshot


def test_keywords_select_workers_and_word_prefixes_count() -> None:
    assert select_workers("Please write tests for this bug", ROUTES) == ["qa-agent", "ticket-agent"]
    assert select_workers("Planning next sprint", ROUTES) == ["pm-agent"]


def test_a_message_without_keywords_goes_to_the_default_workers_or_else_the_first() -> None:
    assert select_workers("hello there", ROUTES) == ["pm-agent"]
    no_default = [Route(r.agent_id, r.keywords, default=False) for r in ROUTES]
    assert select_workers("hello there", no_default) == ["pm-agent"]


def test_the_input_policy_checks_size_patterns_and_tenants() -> None:
    policy = InputPolicy.from_spec(
        GovernancePolicy(max_input_chars=10, blocked_patterns=[r"(?i)secret"], blocked_tenants=["bad-co"]),
        RequestLimits(),
    )
    assert check_input(policy, message="hi", thread_id="t", tenant=None) is None
    assert check_input(policy, message="x" * 11, thread_id="t", tenant=None) == (
        "input_too_large",
        "message has 11 characters; the limit is 10",
    )
    assert check_input(policy, message="a SECRET", thread_id="t", tenant=None)[0] == "blocked_content"  # type: ignore[index]
    assert check_input(policy, message="hi", thread_id="t", tenant="bad-co")[0] == "blocked_tenant"  # type: ignore[index]
    assert check_input(policy, message="hi", thread_id="", tenant=None)[0] == "malformed_input"  # type: ignore[index]


def test_coherence_merges_in_routing_order_and_refuses_missing_outputs() -> None:
    outputs = [{"agent_id": "b", "text": "two"}, {"agent_id": "a", "text": "one"}]
    assert merge_outputs(["a", "b"], outputs) == "a: one\n\nb: two"  # type: ignore[arg-type]
    assert merge_outputs(["a"], outputs[1:]) == "one"  # type: ignore[arg-type]
    with pytest.raises(IncoherentOutputError, match="no output from routed workers: b"):
        merge_outputs(["a", "b"], outputs[1:])  # type: ignore[arg-type]


async def test_the_supervisor_fans_out_to_several_workers_and_coherence_merges_them(built: BuiltBundle) -> None:
    async with running(built) as instance:
        result = await instance.invoke("plan a fix for this bug and test it", "fan-out")
        assert result.ok
        assert result.workers == ["pm-agent", "qa-agent", "ticket-agent"]
        assert sorted(step.node for step in result.trace[4:7]) == ["pm-agent", "qa-agent", "ticket-agent"]
        assert result.answer is not None
        assert [line.split(":")[0] for line in result.answer.split("\n\n")] == ["pm-agent", "qa-agent", "ticket-agent"]


async def test_an_agent_cannot_call_a_backend_tool_its_spec_does_not_list(built: BuiltBundle) -> None:
    async with running(built) as instance:
        governance = instance.backend.gateway("governance-agent")
        with pytest.raises(ToolCallError, match="may not call backend tool model_generate"):
            await governance.call("model_generate", {"agent_id": "governance-agent", "system": "s", "prompt": "p"})


async def test_thread_history_reaches_the_workers_through_the_memory_tools(built: BuiltBundle) -> None:
    async with running(built) as instance:
        await instance.invoke("plan the roadmap for ACME", "memory-thread")
        second = await instance.invoke("and the milestones?", "memory-thread")
        other = await instance.invoke("and the milestones?", "another-thread")
        assert second.answer is not None and "ACME" in second.answer
        assert other.answer is not None and "ACME" not in other.answer


async def test_the_routers_run_without_callback_tracing_while_the_nodes_are_traced(built: BuiltBundle) -> None:
    """A traced router would add a callback run per edge: the routers are awaited directly instead."""
    from langchain_core.callbacks import AsyncCallbackHandler

    class ChainStarts(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []

        async def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            self.names.append(str(kwargs.get("name")))

    seen = ChainStarts()
    async with running(built) as instance:
        request: PipelineState = {"message": "plan the roadmap", "thread_id": "t", "tenant": None, "trace_id": "x"}
        state = await instance.graph.ainvoke(request, config={"callbacks": [seen]})
    assert [entry["node"] for entry in state["trace"]][:2] == ["io_in", "governance"]
    assert {"io_in", "governance", "supervisor", "pm-agent"} <= set(seen.names)
    routers = {"after_io_in", "after_governance", "after_context", "fan_out", "after_coherence"}
    assert not routers & set(seen.names), seen.names
