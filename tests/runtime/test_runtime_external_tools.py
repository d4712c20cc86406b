"""Agents that act: an instance's ticket agent uses a real external MCP server (tests/runtime/ticketing_server.py,
on 127.0.0.1 and requiring a bearer token) through the instance's backend, with the instance's secret."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from mcp import Client

from instance_contract.bundle_format import MCP_FILE, BundleError, read_bundle
from runtime.backend.backend_mcp import ToolCallError
from runtime.backend.providers import BedrockProvider
from runtime.bundle_source import load_bundle, parse_bundle
from runtime.config import ExpectedIdentity, config_from_env
from runtime.instance import Instance
from tests.foundry.manifest_edits import Doc, allow_private_targets, edit
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, copy_agents, serve, write_bundles
from tests.runtime.test_runtime_bad_bundle import repack
from tests.runtime.ticketing_server import TOOL_DESCRIPTIONS, TicketingServer, serve_ticketing

pytestmark = pytest.mark.slow

TOKEN = "tck-5ecret-t0ken-never-to-leak"
INSTANCE = "default-org/default-domain/dev"
TOOLS = ["ticketing.create_ticket", "ticketing.export_report", "ticketing.slow_lookup"]
REQUEST = "Please open a ticket: the checkout outage since noon"


def _bundle(root: Path, url: str, *, ticket_model: Doc | None = None, max_tool_steps: int | None = None) -> BuiltBundle:
    agents = copy_agents(root / "agents")
    allow_private_targets(agents)  # the ticketing server listens on 127.0.0.1
    server = {
        "name": "ticketing",
        "url": url,
        "bearer_secret": "ticket-api-token",
        "timeout_seconds": 2,
        "max_response_bytes": 5000,
    }
    edit(agents / "manifests" / "manifest.instance-template.yaml", lambda d: d["spec"]["mcp"].update(servers=[server]))

    def grant(data: Doc) -> None:
        data["spec"]["tools"].extend(TOOLS)
        if ticket_model is not None:
            data["spec"]["model"] = ticket_model
        if max_tool_steps is not None:
            data["spec"]["max_tool_steps"] = max_tool_steps

    edit(agents / "specs" / "workers" / "ticket-agent.yaml", grant)
    (built,) = write_bundles(agents, root / "bundle", INSTANCE)
    return built


@asynccontextmanager
async def running(built: BuiltBundle, env: dict[str, str], log_level: str | None = None) -> AsyncIterator[Instance]:
    config = config_from_env(
        {**env, **({"LOG_LEVEL": log_level} if log_level else {})}, bundle=str(built.path), state="memory://"
    )
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config,
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture(scope="module")
def ticketing() -> Iterator[TicketingServer]:
    with serve_ticketing(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def bundle(ticketing: TicketingServer, tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    return _bundle(tmp_path_factory.mktemp("tickets"), ticketing.url)


SECRET_ENV = {"SECRET_TICKET_API_TOKEN": TOKEN}


async def test_the_ticket_agent_creates_a_ticket_through_the_external_server_with_the_instances_secret(
    ticketing: TicketingServer, bundle: BuiltBundle
) -> None:
    before = len(ticketing.tickets)
    async with running(bundle, SECRET_ENV) as instance:
        result = await instance.invoke(REQUEST, thread_id="t-create")
    assert result.ok, result.error
    assert "ticket-agent" in result.workers
    (ticket,) = ticketing.tickets[before:]
    assert ticket.summary == REQUEST  # the request text, as the tool's first string argument
    assert ticketing.tokens_seen and set(ticketing.tokens_seen) == {TOKEN}
    assert result.answer is not None and ticket.id in result.answer
    (call,) = result.tool_calls
    assert (call.agent_id, call.server, call.tool, call.status) == ("ticket-agent", "ticketing", "create_ticket", "ok")
    assert call.ms > 0
    assert call.arguments is None  # arguments may hold personal data: only with debug on
    assert TOKEN not in result.model_dump_json()


async def test_a_served_instance_files_the_ticket_and_its_answer_over_mcp_lists_the_call(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess]
) -> None:
    """The same through a real runtime process: the secret comes from the task's SECRET_TICKET_API_TOKEN, the
    caller uses the SDK's client over streamable HTTP, and neither the token nor the arguments reach its logs."""
    before = len(ticketing.tickets)
    process = serve({**bundle.identity_env(), **SECRET_ENV})
    runtime_factory.append(process)
    async with Client(process.url) as client:
        result = await client.call_tool("invoke", {"message": REQUEST, "thread_id": "served"})
    assert not result.is_error and result.structured_content is not None
    answer = result.structured_content
    assert answer["ok"], answer["error"]
    assert [t.summary for t in ticketing.tickets[before:]] == [REQUEST]
    assert [(c["server"], c["tool"], c["status"], c["arguments"]) for c in answer["tool_calls"]] == [
        ("ticketing", "create_ticket", "ok", None)
    ]
    process.terminate()
    logs = process.stderr_text()
    assert TOKEN not in logs and TOKEN not in json.dumps(answer)


async def test_with_debug_on_the_trace_shows_the_tool_calls_arguments(
    ticketing: TicketingServer, bundle: BuiltBundle
) -> None:
    async with running(bundle, SECRET_ENV, log_level="DEBUG") as instance:
        result = await instance.invoke(REQUEST, thread_id="t-debug")
    (call,) = result.tool_calls
    assert call.arguments == {"summary": REQUEST}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SECRET_TICKET_API_TOKEN": "not-the-token"}, "refused the instance's token (HTTP 401)"),
        ({}, "SECRET_TICKET_API_TOKEN is not set"),
    ],
    ids=["wrong secret", "missing secret"],
)
async def test_a_wrong_or_missing_secret_is_a_clear_error_and_creates_nothing(
    ticketing: TicketingServer,
    bundle: BuiltBundle,
    env: dict[str, str],
    says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = len(ticketing.tickets)
    caplog.set_level(logging.WARNING, logger="runtime.agents.exception")
    async with running(bundle, env) as instance:
        result = await instance.invoke(REQUEST, thread_id="t-bad-secret")
    assert not result.ok and result.error is not None
    assert (result.error.code, result.error.agent_id) == ("agent_failed", "ticket-agent")
    assert len(ticketing.tickets) == before
    assert [(c.tool, c.status) for c in result.tool_calls] == [("create_ticket", "error")]
    failure = "\n".join(r.getMessage() for r in caplog.records)
    assert says in failure and "ticketing" in failure
    assert "not-the-token" not in failure and "not-the-token" not in result.model_dump_json()


async def test_an_agent_not_granted_the_tool_cannot_reach_it(ticketing: TicketingServer, bundle: BuiltBundle) -> None:
    before = (len(ticketing.tickets), len(ticketing.tokens_seen))
    async with running(bundle, SECRET_ENV) as instance:
        with pytest.raises(ToolCallError, match=r"pm-agent may not call external tool ticketing\.create_ticket"):
            await instance.backend.gateway("pm-agent").call("ticketing.create_ticket", {"summary": "sneaky"})
    assert (len(ticketing.tickets), len(ticketing.tokens_seen)) == before


async def test_a_tool_result_over_the_size_limit_and_a_slow_tool_fail_with_clear_errors(
    ticketing: TicketingServer, bundle: BuiltBundle
) -> None:
    async with running(bundle, SECRET_ENV) as instance:
        gateway = instance.backend.gateway("ticket-agent")
        with pytest.raises(ToolCallError, match=r"the limit is 5000 \(max_response_bytes\)"):
            await gateway.call("ticketing.export_report", {"quarter": "q1"})
        with pytest.raises(ToolCallError, match=r"did not answer within 2 s"):
            await gateway.call("ticketing.slow_lookup", {"query": "old"})
        result = await gateway.call("ticketing.create_ticket", {"summary": "still works"})
    assert result["data"]["summary"] == "still works"


async def test_the_server_being_down_fails_only_its_tools_and_the_instance_keeps_serving(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    built = _bundle(tmp_path, f"http://127.0.0.1:{closed_port}/mcp")
    async with running(built, SECRET_ENV) as instance:
        ticket = await instance.invoke(REQUEST, thread_id="t-down")
        plan = await instance.invoke("plan the roadmap for next quarter", thread_id="t-down-plan")
        context = await instance.backend.gateway("context-agent").call("context_get", {})
    assert not ticket.ok and ticket.error is not None and ticket.error.agent_id == "ticket-agent"
    assert plan.ok and plan.answer
    assert context["instance_id"] == "dev"


# --- Bedrock: the Converse API's tool use, with botocore's Stubber (no network) --------------------------------


def _converse_reply(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 1},
    }


def _tool_use(use_id: str) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": use_id, "name": "ticketing--create_ticket", "input": {"summary": "checkout"}}}


MODEL_ID = "anthropic.claude-test-v1:0"
TOOL_CONFIG = {
    "tools": [
        {"toolSpec": {"name": f"ticketing--{name.split('.')[1]}", "description": desc, "inputSchema": {"json": ANY}}}
        for name, desc in zip(TOOLS, [TOOL_DESCRIPTIONS[t.split(".")[1]] for t in TOOLS], strict=True)
    ]
}


@pytest.fixture
def stubbed_bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        monkeypatch.setattr(
            BedrockProvider,
            "from_region",
            classmethod(lambda cls, *, region, default_model_id: cls(client=client, default_model_id=default_model_id)),
        )
        yield stubber


def _expected(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "modelId": MODEL_ID,
        "system": ANY,
        "messages": messages,
        "inferenceConfig": ANY,
        "toolConfig": TOOL_CONFIG,
    }


async def test_on_bedrock_the_loop_sends_tool_config_then_tool_use_and_tool_result_turns(
    ticketing: TicketingServer, stubbed_bedrock: Stubber, tmp_path: Path
) -> None:
    built = _bundle(tmp_path, ticketing.url, ticket_model={"provider": "bedrock", "model_id": MODEL_ID})
    first_turn = [{"role": "user", "content": [{"text": ANY}]}]
    stubbed_bedrock.add_response("converse", _converse_reply([_tool_use("use-1")], "tool_use"), _expected(first_turn))
    second_turn = [
        *first_turn,
        {"role": "assistant", "content": [_tool_use("use-1")]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "use-1", "content": [{"text": ANY}], "status": "success"}}],
        },
    ]
    stubbed_bedrock.add_response(
        "converse", _converse_reply([{"text": "Filed it."}], "end_turn"), _expected(second_turn)
    )
    before = len(ticketing.tickets)
    async with running(built, SECRET_ENV) as instance:
        result = await instance.invoke(REQUEST, thread_id="t-bedrock")
    assert result.ok, result.error
    assert result.answer is not None and "Filed it." in result.answer
    assert [t.summary for t in ticketing.tickets[before:]] == ["checkout"]
    stubbed_bedrock.assert_no_pending_responses()


async def test_the_step_limit_holds_when_the_model_keeps_asking_for_tools(
    ticketing: TicketingServer, stubbed_bedrock: Stubber, tmp_path: Path
) -> None:
    built = _bundle(
        tmp_path, ticketing.url, ticket_model={"provider": "bedrock", "model_id": MODEL_ID}, max_tool_steps=2
    )
    for i in range(3):
        stubbed_bedrock.add_response("converse", _converse_reply([_tool_use(f"use-{i}")], "tool_use"))
    before = len(ticketing.tickets)
    async with running(built, SECRET_ENV) as instance:
        result = await instance.invoke(REQUEST, thread_id="t-limit")
    assert not result.ok and result.error is not None and result.error.agent_id == "ticket-agent"
    assert len(ticketing.tickets) - before == 2  # two rounds ran; the third request for a tool was refused
    assert [c.status for c in result.tool_calls] == ["ok", "ok"]
    stubbed_bedrock.assert_no_pending_responses()


def test_a_bundle_granting_a_tool_of_an_undeclared_server_is_refused(bundle: BuiltBundle, tmp_path: Path) -> None:
    _, files = read_bundle(bundle.path.read_bytes(), str(bundle.path))
    mcp = json.loads(files[MCP_FILE])
    mcp["agents"]["pm-agent"].append("billing.refund")
    files[MCP_FILE] = json.dumps(mcp).encode()
    archive = repack(files, bundle.instance.manifest.metadata.name, "dev")
    with pytest.raises(BundleError, match=r"agents\.pm-agent grants 'billing\.refund'.*no server 'billing'"):
        parse_bundle(archive, source="edited", expected_hash=None, identity=ExpectedIdentity())
