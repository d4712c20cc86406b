"""A person in the loop: the governance policy makes the ticket agent's `ticketing.create_ticket` (a real external MCP
server, tests/runtime/ticketing_server.py) wait for approval. The turn pauses before the call, its graph
checkpointed in the instance's store; another task (a new Instance on the same store, or another runtime process
after the first one stopped) decides it and resumes the turn."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult

from instance_contract.mcp_sessions import SESSION_COOKIE, SESSION_IDLE_SECONDS
from instance_contract.usage import usage_window
from oauth_resource.dev_issuer import RunningIssuer
from runtime.approvals.policy import ApprovalError
from runtime.auth import APPROVE_SCOPE, INSTANCE_SCOPES, READ_SCOPE
from runtime.bundle_source import load_bundle
from runtime.config import ConfigError, ExpectedIdentity, config_from_env
from runtime.instance import Instance
from runtime.state_url import parse_state_url
from runtime.store.memory import thread_config
from runtime.store.thread_store import ThreadState, open_thread_state
from tests.foundry.manifest_edits import Doc, allow_private_targets, edit
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    auth_env,
    copy_agents,
    mcp_client,
    runtime_env,
    serve,
    write_bundles,
)
from tests.runtime.state_table import create_state_table
from tests.runtime.ticketing_server import TicketingServer, serve_ticketing

TOKEN = "tck-approval-t0ken"
INSTANCE = "default-org/default-domain/dev"
REQUEST = "Please open a ticket: the checkout outage since noon"
SECRET_ENV = {"SECRET_TICKET_API_TOKEN": TOKEN}
HOUR = 3600.0


def _bundle(root: Path, url: str, on_busy: str = "enqueue", request_timeout_seconds: float = 50) -> BuiltBundle:
    agents = copy_agents(root / "agents")
    allow_private_targets(agents)  # the ticketing server listens on 127.0.0.1
    server = {"name": "ticketing", "url": url, "bearer_secret": "ticket-api-token", "timeout_seconds": 5}

    def template(data: Doc) -> None:
        data["spec"]["mcp"].update(servers=[server], on_busy=on_busy)
        data["spec"]["limits"]["request_timeout_seconds"] = request_timeout_seconds

    edit(agents / "manifests" / "manifest.instance-template.yaml", template)
    edit(
        agents / "specs" / "workers" / "ticket-agent.yaml",
        lambda d: d["spec"]["tools"].append("ticketing.create_ticket"),
    )

    def policy(data: Doc) -> None:
        data["spec"]["policy"].update(approval_required=["ticketing.create_ticket"], approval_timeout_seconds=3600)

    edit(agents / "specs" / "system" / "governance-agent.yaml", policy)
    (built,) = write_bundles(agents, root / "bundle", INSTANCE)
    return built


@pytest.fixture(scope="module")
def ticketing() -> Iterator[TicketingServer]:
    with serve_ticketing(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def bundle(ticketing: TicketingServer, tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    return _bundle(tmp_path_factory.mktemp("approvals"), ticketing.url)


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.slow)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'threads.db'}"
    moto: LocalAws = request.getfixturevalue("moto")
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    table = f"af-approvals-{tmp_path.name[-20:].strip('_')}"
    return create_state_table(moto.client("dynamodb"), table)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def task(built: BuiltBundle, url: str, clock: Clock | None = None) -> AsyncIterator[Instance]:
    """One task of the instance on the store `url` (with its own clock, if given)."""
    config = config_from_env(SECRET_ENV, bundle=str(built.path), state=url)
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config,
    )
    if clock is not None:
        location = parse_state_url(url)
        instance.thread_state = await open_thread_state(
            location, keep=20, ttl_seconds=720 * HOUR, wait_seconds=5, region="us-east-1", clock=clock
        )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def test_a_call_that_needs_approval_pauses_and_another_task_approving_it_runs_it_once(
    ticketing: TicketingServer, bundle: BuiltBundle, store_url: str
) -> None:
    before = len(ticketing.tickets)
    async with task(bundle, store_url) as first:
        paused = await first.invoke(REQUEST, thread_id="t-approve")
        assert paused.ok and paused.status == "awaiting_approval", paused
        assert paused.answer is None and paused.approval is not None
        approval = paused.approval
        assert (approval.tool, approval.arguments, approval.requested_by) == (
            "ticketing.create_ticket",
            {"summary": REQUEST},
            "anonymous",
        )
        assert len(ticketing.tickets) == before  # not called
        # the paused turn released its thread: the next message on it runs at once
        other = await first.invoke("plan the roadmap", thread_id="t-approve")
        assert other.ok and other.status == "completed", other.error
        assert [p.approval_id for p in await first.pending_approvals()] == [approval.id]

    # the first task has stopped (a restart, or a deploy); two new tasks get a decision each, at once
    async with task(bundle, store_url) as second, task(bundle, store_url) as third:
        decided, twin = await asyncio.gather(
            second.approve(approval.id, "approve", comment="outage confirmed"),
            third.approve(approval.id, "approve", comment="confirmed twice"),
        )
        assert twin == decided  # the one taken decision's answer, on both tasks
        assert decided.state == "approved" and decided.decided_by == "anonymous"
        assert decided.result is not None and decided.result["ok"] and decided.result["status"] == "completed"
        (ticket,) = ticketing.tickets[before:]
        assert ticket.summary == REQUEST
        assert ticket.id in decided.result["answer"]
        assert [c["status"] for c in decided.result["tool_calls"]] == ["ok"]
        assert decided.result["thread_id"] == "t-approve" and decided.result["trace_id"] == paused.trace_id

        again = await second.approve(approval.id, "reject", comment="too late")
        assert again.result == decided.result and again.state == "approved" and again.comment == decided.comment
        assert len(ticketing.tickets) == before + 1  # no second call
        assert await second.pending_approvals() == []
        shown = await second.get_approval(approval.id)
        assert shown.state == "approved" and shown.result == decided.result

        (thread,) = (await second.export_subject("anonymous", "t-approve")).threads
        (kept,) = thread.approvals
        assert (kept["decided_by"], kept["comment"], kept["status"]) == ("anonymous", decided.comment, "approved")
        assert kept["tool"] == "ticketing.create_ticket" and kept["decided_at"] >= kept["requested_at"]
        assert kept["call_started_at"] is not None and kept["call_started_at"] >= kept["decided_at"]
        assert ticket.id in thread.messages[-1]["content"]  # the resumed turn's answer is in the thread's history

        # the usage ledger: two requests (the paused one counted once, as awaiting_approval), and the tokens of the
        # paused part, the other turn and the resumed part, each once
        ledger = await second.usage(usage_window(None, None, now=datetime.now(UTC)))
        assert (ledger.requests, ledger.outcomes) == (2, {"awaiting_approval": 1, "ok": 1})
        resumed = decided.result["usage"]
        assert resumed["output_tokens"] > 0
        assert ledger.input_tokens == paused.usage.input_tokens + other.usage.input_tokens + resumed["input_tokens"]
        assert ledger.output_tokens == (
            paused.usage.output_tokens + other.usage.output_tokens + resumed["output_tokens"]
        )


async def approved_by_a_task_that_died(instance: Instance, clock: Clock, thread_id: str) -> tuple[str, ThreadState]:
    """A turn paused for approval, then approved by bob on a task ("gone:1") whose claim runs 60 s from now and that
    died before it kept a result: the approval's id and the thread state it is kept in."""
    paused = await instance.invoke(REQUEST, thread_id=thread_id)
    assert paused.approval is not None
    state = instance.thread_state
    assert state is not None
    taken = await state.approvals.decide(
        paused.approval.id, "approved", by="bob", comment="go", now=clock.now, runner="gone:1", until=clock.now + 60
    )
    assert taken
    return paused.approval.id, state


async def test_a_decision_whose_task_died_before_resuming_is_resumed_by_the_next_approve_once_its_claim_ran_out(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    clock = Clock(1_900_000_000.0)
    async with task(bundle, url, clock) as instance:
        # what a task that took the decision and died before resuming leaves in the store
        approval_id, _ = await approved_by_a_task_that_died(instance, clock, "t-dead")
        clock.now += 61
        resumed = await instance.approve(approval_id, "reject", comment="ignored: already decided")
        assert (resumed.state, resumed.decided_by, resumed.comment) == ("approved", "bob", "go")
        assert resumed.result is not None and resumed.result["ok"]
        (ticket,) = ticketing.tickets[before:]
        assert ticket.id in resumed.result["answer"]
        assert (await instance.approve(approval_id, "approve")).result == resumed.result
    assert len(ticketing.tickets) == before + 1


async def test_a_turn_resumed_after_its_approved_call_was_started_does_not_call_again_and_says_its_outcome_is_unknown(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    clock = Clock(1_900_000_000.0)
    async with task(bundle, url, clock) as instance:
        # what a task that resumed the turn and died while making the approved call leaves in the store
        approval_id, state = await approved_by_a_task_that_died(instance, clock, "t-started")
        assert await state.approvals.start_call(approval_id, by="gone:1", now=clock.now + 1)
        clock.now += 61
        resumed = await instance.approve(approval_id, "approve")
        assert (resumed.state, resumed.decided_by) == ("approved", "bob") and resumed.result is not None
        result = resumed.result
        assert not result["ok"] and result["status"] == "failed" and result["answer"] is None, result
        error = result["error"]
        assert error["code"] == "approval_outcome_unknown" and error["agent_id"] == "ticket-agent"
        assert approval_id in error["message"] and f"({TICKET_TOOL} of ticket-agent)" in error["message"]
        assert "may have been made" in error["message"] and "not made again" in error["message"]
        assert [(c["status"], c["approval_id"]) for c in result["tool_calls"]] == [("unknown", approval_id)]
        assert (await instance.approve(approval_id, "approve")).result == result
        record = await state.approvals.get(approval_id)
        assert record is not None and record.call_started_by == "gone:1"
    assert len(ticketing.tickets) == before


async def test_an_approved_call_is_marked_by_the_task_that_made_it_and_a_rejected_one_never(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    async with task(bundle, url) as instance:
        state = instance.thread_state
        assert state is not None
        approved = await instance.invoke(REQUEST, thread_id="t-marked")
        rejected = await instance.invoke(REQUEST, thread_id="t-unmarked")
        assert approved.approval is not None and rejected.approval is not None
        made = await instance.approve(approved.approval.id, "approve")
        assert made.result is not None and made.result["ok"]
        assert [(c["status"], c["approval_id"]) for c in made.result["tool_calls"]] == [("ok", approved.approval.id)]
        record = await state.approvals.get(approved.approval.id)
        assert record is not None and record.call_started_at is not None
        assert record.call_started_by == record.runner and record.runner is not None
        await instance.approve(rejected.approval.id, "reject")
        record = await state.approvals.get(rejected.approval.id)
        assert record is not None and (record.call_started_at, record.call_started_by) == (None, None)


async def test_erasing_a_subjects_thread_erases_its_pending_approval_and_the_paused_turn(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    async with task(bundle, url) as instance:
        paused = await instance.invoke(REQUEST, thread_id="t-erase")
        assert paused.approval is not None
        state = instance.thread_state
        assert state is not None
        record = await state.approvals.get(paused.approval.id)
        assert record is not None
        assert await state.memory.saver.aget_tuple(thread_config(record.run_id)) is not None
        (thread,) = (await instance.export_subject("anonymous", "t-erase")).threads
        assert thread.messages == [] and [a["approval_id"] for a in thread.approvals] == [paused.approval.id]
        assert (await instance.erase_subject("anonymous", "t-erase")).erased == 1
        assert await state.memory.saver.aget_tuple(thread_config(record.run_id)) is None  # the paused request
        with pytest.raises(ApprovalError, match="no approval"):
            await instance.approve(paused.approval.id, "approve")


async def test_a_rejected_call_is_never_made_and_the_answer_says_so(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    async with task(bundle, url) as instance:
        paused = await instance.invoke(REQUEST, thread_id="t-reject")
        assert paused.approval is not None
        decided = await instance.approve(paused.approval.id, "reject", comment="not during the freeze")
        assert decided.state == "rejected" and decided.result is not None
        assert decided.result["ok"], decided.result
        assert "refused" in decided.result["answer"] and "not during the freeze" in decided.result["answer"]
        assert [c["status"] for c in decided.result["tool_calls"]] == ["refused"]
        again = await instance.approve(paused.approval.id, "approve")
        assert again.state == "rejected" and again.result == decided.result
    assert len(ticketing.tickets) == before


async def test_an_expired_or_unknown_approval_is_refused_and_its_call_never_made(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    clock = Clock(1_900_000_000.0)
    async with task(bundle, url, clock) as instance:
        paused = await instance.invoke(REQUEST, thread_id="t-expire")
        expires = datetime.fromtimestamp(clock.now + HOUR, UTC).isoformat().replace("+00:00", "Z")
        assert paused.approval is not None and paused.approval.expires_at == expires
        state = instance.thread_state
        assert state is not None
        await state.sweep()  # a round before it expires: a later round must still find it
        clock.now += HOUR + 1
        with pytest.raises(ApprovalError, match=f"expired at {expires} without a decision"):
            await instance.approve(paused.approval.id, "approve")
        assert await instance.pending_approvals() == []
        assert (await instance.get_approval(paused.approval.id)).state == "expired"
        record = await state.approvals.get(paused.approval.id)
        assert record is not None
        run = thread_config(record.run_id)
        assert await state.memory.saver.aget_tuple(run) is not None  # kept while it could still be decided
        await state.sweep()
        assert await state.memory.saver.aget_tuple(run) is None  # the paused turn's checkpoint went
        with pytest.raises(ApprovalError, match="no approval 'apr-nope'"):
            await instance.approve("apr-nope", "approve")
    assert len(ticketing.tickets) == before


def _structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


@pytest.mark.slow
async def test_served_approval_survives_a_restart_needs_its_scope_and_two_concurrent_decisions_make_one_call(
    ticketing: TicketingServer,
    bundle: BuiltBundle,
    local_issuer: RunningIssuer,
    runtime_factory: list[RuntimeProcess],
    tmp_path: Path,
) -> None:
    """Real processes over streamable HTTP with real tokens: alice's invoke pauses on the first process, which then
    stops; on two new processes of the same store, alice may not approve (no agentfoundry/approve), and bob's two
    decisions at once resume the turn once."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, **auth_env(local_issuer.url)}
    env["STATE_URL"] = f"sqlite:///{tmp_path / 'threads.db'}"
    alice = bundle.token(local_issuer.issuer, subject="alice", scopes=INSTANCE_SCOPES)
    bob = bundle.token(local_issuer.issuer, subject="bob", scopes=(READ_SCOPE, APPROVE_SCOPE))
    carol = bundle.token(local_issuer.issuer, subject="carol", scopes=INSTANCE_SCOPES)

    first = serve(env)
    runtime_factory.append(first)
    async with mcp_client(first.url, alice) as client:
        described = _structured(await client.call_tool("describe", {}))
        assert described["approvals"] == {"required": ["ticketing.create_ticket"], "timeout_seconds": 3600}
        paused = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "served"}))
    assert paused["status"] == "awaiting_approval" and paused["ok"] and paused["answer"] is None
    approval = paused["approval"]
    assert approval["requested_by"] == "alice" and approval["tool"] == "ticketing.create_ticket"
    assert first.terminate() == 0
    requested = first.wait_for_line(r'"event": "approval.requested"').string
    assert approval["id"] in requested and "alice" not in requested and REQUEST not in requested
    assert len(ticketing.tickets) == before

    second, third = serve(env), serve(env)
    runtime_factory.extend([second, third])
    async with mcp_client(second.url, alice) as client:
        refused = await client.call_tool("approve", {"approval_id": approval["id"], "decision": "approve"})
        assert refused.is_error and "agentfoundry/approve" in json.dumps(refused.model_dump(mode="json"))
        mine = _structured(await client.call_tool("get_approval", {"approval_id": approval["id"]}))
        assert mine["state"] == "pending" and mine["result"] is None
    async with mcp_client(third.url, carol) as client:  # not hers, and she may not approve: as if unknown
        hidden = await client.call_tool("get_approval", {"approval_id": approval["id"]})
        assert hidden.is_error
    async with mcp_client(second.url, bob) as on_second, mcp_client(third.url, bob) as on_third:
        listed = _structured(await on_second.call_tool("pending_approvals", {}))
        assert [a["approval_id"] for a in listed["approvals"]] == [approval["id"]]
        decisions = await asyncio.gather(
            on_second.call_tool("approve", {"approval_id": approval["id"], "decision": "approve", "comment": "ok"}),
            on_third.call_tool("approve", {"approval_id": approval["id"], "decision": "approve", "comment": "yes"}),
        )
    one, other = (_structured(d) for d in decisions)
    assert one["result"] is not None and one["result"] == other["result"]
    assert one["comment"] == other["comment"] and one["comment"] in {"ok", "yes"}
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in one["result"]["answer"]
    async with mcp_client(second.url, alice) as client:
        done = _structured(await client.call_tool("get_approval", {"approval_id": approval["id"]}))
    assert done["state"] == "approved" and done["decided_by"] == "bob" and done["result"] == one["result"]


def _cli(*args: str) -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "call", *args],
        cwd=REPO_ROOT,
        env=runtime_env({}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.startswith("{") else done.stdout + done.stderr


@pytest.mark.slow
def test_the_local_loop_shows_an_approval_with_the_call_command(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """What the README shows: invoke pauses, pending_approvals lists it, approve runs it and prints the result."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    runtime = serve(env)
    runtime_factory.append(runtime)
    code, paused = _cli("--url", runtime.url, "--message", REQUEST, "--thread", "loop")
    assert code == 0 and paused["status"] == "awaiting_approval", paused
    code, listed = _cli("--url", runtime.url, "--tool", "pending_approvals")
    assert code == 0 and [a["approval_id"] for a in listed["approvals"]] == [paused["approval"]["id"]]
    code, missing = _cli("--url", runtime.url, "--tool", "approve", "--approval", paused["approval"]["id"])
    assert code == 2 and "--decision approve|reject is required" in missing
    code, decided = _cli(
        "--url", runtime.url, "--tool", "approve", "--approval", paused["approval"]["id"],
        "--decision", "approve", "--comment", "go ahead",
    )  # fmt: skip
    assert code == 0 and decided["state"] == "approved" and decided["comment"] == "go ahead"
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in decided["result"]["answer"]


@pytest.mark.slow
async def test_a_client_that_can_elicit_is_asked_inline_and_the_same_call_goes_on(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """Over real HTTP: a 2026-07-28 client with an elicitation callback is asked in the invoke call (the
    input-required result), answers, and the same call returns the resumed turn's answer; a client without the
    capability gets the approval object; a 2025-11-25 client that can elicit is asked on the call's own stream."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    runtime = serve(env)
    runtime_factory.append(runtime)
    asked: list[ElicitRequestParams] = []

    async def approve_it(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept", content={"decision": "approve", "comment": "asked inline"})

    async with Client(runtime.url, elicitation_callback=approve_it) as client:
        assert client.protocol_version == "2026-07-28"
        done = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "inline"}))
    assert done["status"] == "completed" and done["ok"], done
    (question,) = asked
    assert "ticketing.create_ticket" in question.message
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in done["answer"]

    async def refuse_it(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(runtime.url, elicitation_callback=refuse_it) as client:
        refused = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "inline-2"}))
    assert refused["status"] == "completed" and "refused" in refused["answer"]
    assert [c["status"] for c in refused["tool_calls"]] == ["refused"]

    async with Client(runtime.url) as client:  # declares no elicitation: the approval object
        paused = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "inline-3"}))
        assert paused["status"] == "awaiting_approval"
        shown = _structured(await client.call_tool("get_approval", {"approval_id": paused["approval"]["id"]}))
    assert shown["state"] == "pending"
    # a 2025-11-25 client is asked with elicitation/create on the invoke's own stream, in a session of its own
    async with Client(runtime.url, mode="legacy", elicitation_callback=approve_it) as client:
        assert client.protocol_version == "2025-11-25"
        legacy = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "inline-4"}))
    assert legacy["status"] == "completed" and legacy["ok"], legacy
    assert len(asked) == 2 and "ticketing.create_ticket" in asked[1].message
    assert len(ticketing.tickets) == before + 2 and ticketing.tickets[-1].id in legacy["answer"]


@pytest.mark.slow
async def test_a_2025_11_25_client_over_stdio_is_asked_on_the_requests_stream(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = len(ticketing.tickets)
    env = {**SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "runtime", "serve", "--bundle", str(bundle.path), "--stdio"],
        env=runtime_env(env),
        cwd=str(REPO_ROOT),
    )
    asked: list[ElicitRequestParams] = []

    async def approve_it(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept", content={"decision": "approve"})

    async with Client(params, mode="legacy", elicitation_callback=approve_it) as client:
        done = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "stdio"}))
    assert done["status"] == "completed" and len(asked) == 1
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in done["answer"]


@pytest.mark.slow
async def test_a_2025_11_25_client_streaming_over_http_is_asked_between_its_progress_notifications(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """A streamed invoke (progress token) of a 2025-11-25 client that can elicit: its session carries the nodes'
    progress, then the elicitation/create of the paused call, then, once answered, the resumed turn's progress and
    its final answer, all on the one call."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    runtime = serve(env)
    runtime_factory.append(runtime)
    seen: list[str] = []

    async def approve_it(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append("asked")
        return ElicitResult(action="accept", content={"decision": "approve", "comment": "streamed"})

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        event = json.loads(message or "{}")
        if event.get("event") == "node":
            seen.append(event["node"])

    async with Client(runtime.url, mode="legacy", elicitation_callback=approve_it) as client:
        assert client.protocol_version == "2025-11-25"
        call = client.call_tool("invoke", {"message": REQUEST, "thread_id": "streamed"}, progress_callback=on_progress)
        done = _structured(await asyncio.wait_for(call, 60))
    assert done["status"] == "completed" and done["ok"], done
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in done["answer"]
    asked_at = seen.index("asked")
    assert seen[:2] == ["io_in", "governance"] and seen.count("asked") == 1
    assert "io_out" in seen[asked_at:], seen  # the resumed turn streamed its progress on the same call


def _initialize(capabilities: dict[str, Any], version: str = "2025-11-25") -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": capabilities, "clientInfo": {"name": "raw", "version": "1"}}
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}


RAW_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.slow
def test_a_session_opens_only_for_a_client_that_can_elicit_and_serves_only_the_credential_that_opened_it(
    bundle: BuiltBundle, local_issuer: RunningIssuer, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """Raw HTTP against a real process with real tokens: an eliciting 2025-11-25 initialize gets an Mcp-Session-Id and
    the stickiness cookie; one without elicitation gets neither (stateless); alice's session refuses bob's token
    and an unknown session id, both as 'Session not found' (404), and serves alice."""
    env = {**bundle.identity_env(), **SECRET_ENV, **auth_env(local_issuer.url)}
    env["STATE_URL"] = f"sqlite:///{tmp_path / 'threads.db'}"
    runtime = serve(env)
    runtime_factory.append(runtime)
    alice = bundle.token(local_issuer.issuer, subject="alice", scopes=INSTANCE_SCOPES)
    bob = bundle.token(local_issuer.issuer, subject="bob", scopes=INSTANCE_SCOPES)
    as_alice = {**RAW_HEADERS, "Authorization": f"Bearer {alice}"}
    with httpx.Client(base_url=runtime.url.removesuffix("/mcp"), timeout=30) as http:
        plain = http.post("/mcp", json=_initialize({}), headers=as_alice)
        assert plain.status_code == 200 and "mcp-session-id" not in plain.headers
        assert SESSION_COOKIE not in plain.headers.get("set-cookie", "")

        opened = http.post("/mcp", json=_initialize({"elicitation": {}}), headers=as_alice)
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        assert opened.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=1;")
        assert f"Max-Age={SESSION_IDLE_SECONDS}" in opened.headers["set-cookie"]

        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        in_session = {**as_alice, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        assert http.post("/mcp", json=initialized, headers=in_session).status_code == 202
        listed = http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=in_session)
        assert listed.status_code == 200 and '"approve"' in listed.text
        assert listed.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=1;")

        as_bob = {**in_session, "Authorization": f"Bearer {bob}"}
        hijack = http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=as_bob)
        assert hijack.status_code == 404 and "Session not found" in hijack.text
        unknown = {**in_session, "Mcp-Session-Id": "0" * 32}
        gone = http.post("/mcp", json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=unknown)
        assert gone.status_code == 404 and "Session not found" in gone.text
        without_token = {k: v for k, v in in_session.items() if k != "Authorization"}
        assert http.post("/mcp", json=initialized, headers=without_token).status_code == 401


@pytest.mark.slow
async def test_a_task_lost_while_its_client_is_asked_leaves_the_approval_for_another_task(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """The task that asked inline dies before the user answers (a crash, or a deploy): the client's call fails, the
    tool is not called, and the approval waits in the store, where another task decides it and resumes the turn."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    first = serve(env)
    runtime_factory.append(first)

    async def crash_first(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        first.process.kill()
        first.process.wait(timeout=10)
        return ElicitResult(action="accept", content={"decision": "approve"})

    with pytest.raises(ExceptionGroup) as failed:
        async with Client(first.url, mode="legacy", elicitation_callback=crash_first) as client:
            await asyncio.wait_for(client.call_tool("invoke", {"message": REQUEST, "thread_id": "lost"}), 60)
    assert failed.group_contains(MCPError, match="SSE stream ended without a response")
    assert len(ticketing.tickets) == before

    second = serve(env)
    runtime_factory.append(second)
    async with Client(second.url) as client:
        (pending,) = _structured(await client.call_tool("pending_approvals", {}))["approvals"]
        decided = _structured(
            await client.call_tool("approve", {"approval_id": pending["approval_id"], "decision": "approve"})
        )
    assert decided["state"] == "approved" and decided["result"]["status"] == "completed"
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in decided["result"]["answer"]


@pytest.mark.slow
async def test_an_approved_call_in_flight_when_its_task_dies_is_not_made_again_and_its_outcome_is_unknown(
    ticketing: TicketingServer, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """Real processes over HTTP: the approved ticket call is in flight (the ticketing server's slow create) when the
    process that resumed the turn is killed, so no result is kept. Once its claim runs out, a second process's
    approve of the same approval resumes the turn from its checkpoint (taken before the call), finds the call marked
    as started, and does not make it again: one ticket, and the answer says the call's outcome is unknown."""
    built = _bundle(tmp_path / "short", ticketing.url, request_timeout_seconds=5)
    before = len(ticketing.tickets)
    env = {**built.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    env["THREAD_WAIT_SECONDS"] = "30"  # the claim (5 + 5 + 30 s) outlasts the dead task's thread lease (30 s)
    first = serve(env)
    runtime_factory.append(first)
    async with mcp_client(first.url) as client:
        paused = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "t-crash"}))
    approval_id = paused["approval"]["id"]

    async def approve_on(runtime: RuntimeProcess) -> dict[str, Any]:
        async with mcp_client(runtime.url) as client:
            return _structured(await client.call_tool("approve", {"approval_id": approval_id, "decision": "approve"}))

    ticketing.create_seconds = 2.0
    try:
        approving = asyncio.create_task(approve_on(first))
        async with asyncio.timeout(30):
            while ticketing.creating == 0:
                await asyncio.sleep(0.01)
        first.process.kill()
        first.process.wait(timeout=10)
        with pytest.raises(ExceptionGroup):  # the client's call to the dead process
            await approving
    finally:
        ticketing.create_seconds = 0.0
    assert len(ticketing.tickets) == before + 1  # the dead task made the call

    second = serve(env)
    runtime_factory.append(second)
    decided = await approve_on(second)
    assert len(ticketing.tickets) == before + 1, "the approved call was made twice"
    assert decided["state"] == "approved" and decided["result"] is not None
    result = decided["result"]
    assert not result["ok"] and result["status"] == "failed" and result["answer"] is None, result
    error = result["error"]
    assert error["code"] == "approval_outcome_unknown" and error["agent_id"] == "ticket-agent"
    assert approval_id in error["message"] and f"{TICKET_TOOL} of ticket-agent" in error["message"]
    assert [c["status"] for c in result["tool_calls"]] == ["unknown"]
    again = await approve_on(second)
    assert again["result"] == result and len(ticketing.tickets) == before + 1


def _deployed(ticketing: TicketingServer, root: Path, change: str) -> BuiltBundle:
    """The instance's next bundle, after a deploy that changed its agents."""
    _bundle(root, ticketing.url)
    agents = root / "agents"
    if change == "tool taken from the agent":
        edit(agents / "specs" / "workers" / "ticket-agent.yaml", lambda d: d["spec"]["tools"].remove(TICKET_TOOL))
    else:
        gone = "ticket-agent" if change == "the agent removed" else "qa-agent"
        edit(
            agents / "manifests" / "manifest.instance-template.yaml",
            lambda d: d["spec"]["custom_agents"].remove({"agent_id": gone}),
        )
        for env in ("dev", "staging", "prod"):
            edit(
                agents / "manifests" / f"manifest.{env}.yaml",
                lambda d: d["spec"].update(entries=[e for e in d["spec"]["entries"] if e["agent_id"] != gone]),
            )
    (built,) = write_bundles(agents, root / "deployed", INSTANCE)
    return built


TICKET_TOOL = "ticketing.create_ticket"


@pytest.mark.parametrize("change", ["tool taken from the agent", "the agent removed", "another agent removed"])
async def test_a_deploy_between_the_pause_and_the_approval_never_passes_a_call_it_skipped_as_done(
    ticketing: TicketingServer, bundle: BuiltBundle, tmp_path: Path, change: str
) -> None:
    """The turn pauses under one bundle and is approved on a task of the next. A deploy that leaves the paused
    call's agent and tool alone resumes it as usual; one that took them away cannot make the call, and the approval's
    result says so (approval_not_reached) instead of a completed turn that silently skipped what was approved."""
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    async with task(bundle, url) as first:
        paused = await first.invoke(REQUEST, thread_id="t-deploy")
    assert paused.approval is not None
    deployed = _deployed(ticketing, tmp_path / "next", change)
    assert deployed.content_hash != bundle.content_hash
    async with task(deployed, url) as second:
        decided = await second.approve(paused.approval.id, "approve", comment="go")
    assert decided.state == "approved" and decided.result is not None
    if change == "another agent removed":
        assert decided.result["ok"] and decided.result["status"] == "completed"
        (ticket,) = ticketing.tickets[before:]
        assert ticket.id in decided.result["answer"]
        return
    assert len(ticketing.tickets) == before
    assert not decided.result["ok"] and decided.result["status"] == "failed" and decided.result["answer"] is None
    error = decided.result["error"]
    assert error["code"] == "approval_not_reached" and error["agent_id"] == "ticket-agent"
    assert paused.approval.id in error["message"] and f"({TICKET_TOOL} of ticket-agent)" in error["message"]
    assert "the call was not made" in error["message"]


async def test_a_newer_message_under_busy_policy_interrupt_waits_for_the_approved_call_instead_of_stopping_it(
    ticketing: TicketingServer, tmp_path: Path
) -> None:
    """Two tasks of an instance whose busy policy is interrupt. While one resumes an approved turn (its ticket call in
    flight), a newer message on the same thread reaches the other: it waits for the approved turn instead of taking
    the thread over, which would have stopped the turn after its call and left the approval to be run, and the call
    made, again. The approval completes with its ticket, then the newer message runs; one ticket in all."""
    built = _bundle(tmp_path / "interrupt", ticketing.url, on_busy="interrupt")
    before = len(ticketing.tickets)
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    async with task(built, url) as first, task(built, url) as second:
        paused = await first.invoke(REQUEST, thread_id="t-pinned")
        assert paused.approval is not None
        ticketing.create_seconds = 1.0
        try:
            approving = asyncio.create_task(first.approve(paused.approval.id, "approve"))
            async with asyncio.timeout(10):
                while ticketing.creating == 0:
                    await asyncio.sleep(0.01)
            newer = await second.invoke("plan the roadmap", thread_id="t-pinned")
            decided = await approving
        finally:
            ticketing.create_seconds = 0.0
    assert decided.state == "approved" and decided.result is not None and decided.result["ok"], decided.result
    (ticket,) = ticketing.tickets[before:]
    assert ticket.id in decided.result["answer"]
    assert newer.ok and newer.status == "completed", newer.error


@pytest.mark.slow
async def test_a_task_that_holds_all_the_sessions_it_may_serves_the_next_client_without_one(
    ticketing: TicketingServer, bundle: BuiltBundle, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """MCP_MAX_SESSIONS=1: the first eliciting client has the session; the next one still connects (the SDK alone
    would answer 503 and the client could not start), statelessly, and is given the approval object."""
    before = len(ticketing.tickets)
    env = {**bundle.identity_env(), **SECRET_ENV, "STATE_URL": f"sqlite:///{tmp_path / 'threads.db'}"}
    runtime = serve({**env, "MCP_MAX_SESSIONS": "1"})
    runtime_factory.append(runtime)
    with httpx.Client(base_url=runtime.url.removesuffix("/mcp"), timeout=30) as http:
        first = http.post("/mcp", json=_initialize({"elicitation": {}}), headers=RAW_HEADERS)
        assert first.status_code == 200 and "mcp-session-id" in first.headers
        second = http.post("/mcp", json=_initialize({"elicitation": {}}), headers=RAW_HEADERS)
        assert second.status_code == 200, second.text
        assert "mcp-session-id" not in second.headers and "set-cookie" not in second.headers
        assert second.json()["result"]["protocolVersion"] == "2025-11-25"

    async def approve_it(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        raise AssertionError("a client without a session cannot be asked inline")

    async with Client(runtime.url, mode="legacy", elicitation_callback=approve_it) as client:
        paused = _structured(await client.call_tool("invoke", {"message": REQUEST, "thread_id": "full"}))
    assert paused["status"] == "awaiting_approval" and len(ticketing.tickets) == before


@pytest.mark.slow
def test_a_caller_that_holds_its_sessions_is_served_without_one_while_another_caller_still_opens_one(
    bundle: BuiltBundle, local_issuer: RunningIssuer, runtime_factory: list[RuntimeProcess], tmp_path: Path
) -> None:
    """MCP_MAX_SESSIONS_PER_CALLER=2, real tokens over raw HTTP: alice opens two sessions; her third eliciting
    initialize still connects, statelessly (no Mcp-Session-Id, no stickiness cookie), while bob opens one. Once alice
    DELETEs a session she opens one again, and only one: the count follows her sessions both ways."""
    env = {**bundle.identity_env(), **SECRET_ENV, **auth_env(local_issuer.url), "MCP_MAX_SESSIONS_PER_CALLER": "2"}
    env["STATE_URL"] = f"sqlite:///{tmp_path / 'threads.db'}"
    runtime = serve(env)
    runtime_factory.append(runtime)
    alice, bob = (bundle.token(local_issuer.issuer, subject=s, scopes=INSTANCE_SCOPES) for s in ("alice", "bob"))
    as_alice = {**RAW_HEADERS, "Authorization": f"Bearer {alice}"}
    as_bob = {**RAW_HEADERS, "Authorization": f"Bearer {bob}"}
    with httpx.Client(base_url=runtime.url.removesuffix("/mcp"), timeout=30) as http:

        def opened(headers: dict[str, str]) -> str | None:
            answer = http.post("/mcp", json=_initialize({"elicitation": {}}), headers=headers)
            assert answer.status_code == 200, answer.text
            assert '"protocolVersion":"2025-11-25"' in answer.text.replace(" ", "")
            session: str | None = answer.headers.get("mcp-session-id")
            assert (SESSION_COOKIE in answer.headers.get("set-cookie", "")) == (session is not None)
            return session

        first, second = opened(as_alice), opened(as_alice)
        assert first is not None and second is not None and first != second
        assert opened(as_alice) is None
        refused = runtime.wait_for_line(r'"event": "mcp_session_not_opened".*"reason": "caller_holds_max_sessions"')
        assert '"sessions_held": 2' in refused.string
        assert opened(as_bob) is not None

        in_first = {**as_alice, "Mcp-Session-Id": first, "MCP-Protocol-Version": "2025-11-25"}
        assert http.delete("/mcp", headers=in_first).status_code == 200
        gone = http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=in_first)
        assert gone.status_code == 404
        assert opened(as_alice) is not None
        assert opened(as_alice) is None


def test_mcp_max_sessions_is_read_from_the_environment_and_a_bad_value_is_named() -> None:
    assert config_from_env({}, bundle="b.tar.gz").max_sessions == 1000
    assert config_from_env({"MCP_MAX_SESSIONS": "5"}, bundle="b.tar.gz").max_sessions == 5
    with pytest.raises(ConfigError, match="MCP_MAX_SESSIONS must be between 1 and 100000, got 0"):
        config_from_env({"MCP_MAX_SESSIONS": "0"}, bundle="b.tar.gz")
