"""One running instance: its bundle, backend MCP connection, graph and metrics, behind three operations that the
public MCP server exposes as tools (invoke, describe, status)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

from langgraph.types import Command
from pydantic import BaseModel, computed_field

from instance_contract.bundle_documents import GraphNode
from instance_contract.schema import GovernancePolicy
from instance_contract.usage import ModelUsage, UsageReport, UsageWindow
from runtime.agents.coherence import CoherenceAgent
from runtime.agents.context import ContextAgent
from runtime.agents.exception import ExceptionAgent, timeout_error
from runtime.agents.governance import THREAD_ID, GovernanceAgent, InputPolicy
from runtime.agents.io import IoInAgent, IoOutAgent
from runtime.agents.observability import Metrics, ObservabilityAgent
from runtime.agents.supervisor import Route, SupervisorAgent
from runtime.agents.worker import WorkerAgent
from runtime.approvals.approval_desk import ApprovalDesk
from runtime.approvals.policy import ApprovalError, ApprovalPolicy, ApprovalRequest, ApprovalState
from runtime.auth import Caller, anonymous_caller, thread_key
from runtime.backend.backend_mcp import BackendConnection, build_backend_server, providers_for
from runtime.backend.egress_http import EgressPolicy
from runtime.bundle_source import InstanceBundle, load_bundle
from runtime.config import RuntimeConfig, Secrets
from runtime.graph import REQUEST_DEADLINE, Node, build_graph
from runtime.paused_turns import PausedTurns
from runtime.state import PipelineState
from runtime.state_url import default_state_url, parse_state_url
from runtime.store.approval_store import ApprovalRecord, Decision
from runtime.store.memory import ThreadMemory
from runtime.store.subject_data import SubjectRequest, erase_subject, export_subject
from runtime.store.thread_leases import ThreadOwner
from runtime.store.thread_store import StateStoreError, ThreadState, open_thread_state, writable_default
from runtime.store.thread_turns import (
    StateUnavailableError,
    ThreadBusyError,
    TurnInterruptedError,
    busy_code,
    until_interrupted,
)
from runtime.telemetry.genai_spans import AGENT_NAME, OPERATION, fail, span, text_messages
from runtime.telemetry.instruments import InstanceTelemetry
from runtime.telemetry.provider import instance_resource
from runtime.telemetry.usage_tally import UsageTally, hour_of, tallying, usage_report

log = logging.getLogger(__name__)
ERROR_PATH_GRACE_SECONDS = 5.0
"""Past the request's deadline, the time the error path (exception -> observability -> io) has to answer."""
SWEEP_EVERY_SECONDS = 600.0
"""How often a SQLite or in-process store removes idle threads (DynamoDB's TTL needs no sweep)."""


class TraceStep(BaseModel):
    node: str
    agent_id: str
    ms: float
    status: Literal["ok", "rejected", "error"]


class ToolCallStep(BaseModel):
    """One external tool call of a worker (arguments only with LOG_LEVEL=DEBUG: they may hold personal data)."""

    agent_id: str
    server: str
    tool: str
    ms: float
    status: Literal["ok", "error", "refused", "unknown"]
    """refused: the approver rejected the call, so it was not made. unknown: an approved call that an earlier run of
    the resumed turn began and never finished (its task died): it may have been made, and was not made again."""
    arguments: dict[str, Any] | None = None
    approval_id: str | None = None
    """The approval that decided the call, when it needed one."""


class InvokeError(BaseModel):
    code: str
    """input_too_large | malformed_input | blocked_content | blocked_tenant | agent_failed | timeout | draining |
    thread_busy | interrupted | state_unavailable | approval_not_reached | approval_outcome_unknown"""
    message: str
    node: str
    agent_id: str


class TurnUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    models: list[ModelUsage] = []

    @classmethod
    def of(cls, tally: UsageTally) -> TurnUsage:
        models = tally.model_usage()
        return cls(
            input_tokens=sum(m.input_tokens for m in models),
            output_tokens=sum(m.output_tokens for m in models),
            models=models,
        )


class InvokeResult(BaseModel):
    ok: bool
    answer: str | None
    error: InvokeError | None
    thread_id: str
    """The thread the turn ran in: the one asked for, or the new one a call without thread id started (pass it
    back to continue)."""
    trace_id: str
    agents: list[str]
    """The agents that ran, in order."""
    workers: list[str]
    """The workers the supervisor selected."""
    trace: list[TraceStep]
    tool_calls: list[ToolCallStep] = []
    """Every external tool call the workers made, in order."""
    total_ms: float
    usage: TurnUsage = TurnUsage()
    """The tokens this turn's model calls reported (what the instance's usage ledger added for it)."""
    approval: ApprovalRequest | None = None
    """Set when the turn paused before a tool call that waits for a person's decision (`approve`)."""

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use on a property
    @property
    def status(self) -> Literal["completed", "failed", "awaiting_approval"]:
        """awaiting_approval: the turn paused (see `approval`); it goes on when someone approves or rejects."""
        if self.approval is not None:
            return "awaiting_approval"
        return "completed" if self.ok else "failed"


class SubjectThread(BaseModel):
    thread_id: str | None
    """The subject's own thread id."""
    last_active: float
    messages: list[dict[str, str]]
    approvals: list[dict[str, Any]] = []
    """The thread's tool-call approvals: the call asked for, who decided, when and why."""


class SubjectDataResult(BaseModel):
    """One data-subject request's answer: whose threads, and what was found (export) or how many were erased."""

    organization: str
    subject: str
    thread_id: str | None
    threads: list[SubjectThread] = []
    erased: int | None = None


class SubjectRequestError(ValueError):
    """A data-subject request that matched nothing (or named a malformed thread id); the message says whose."""


@dataclass(frozen=True)
class SecretStatus:
    name: str
    configured: bool


class Instance:
    def __init__(self, *, bundle: InstanceBundle, config: RuntimeConfig) -> None:
        self.bundle = bundle
        self.config = config
        names = list(bundle.instance.spec.secrets)
        self.secrets, self.missing_secrets = config.secrets_for(names)
        self.metrics = Metrics()
        self.resource = instance_resource(bundle.instance, bundle.content_hash, config.telemetry)
        """Whose spans and metrics these are (service, environment, organization, domain, instance, bundle hash)."""
        self.telemetry = InstanceTelemetry.from_settings(config.telemetry, self.resource)
        self.thread_state: ThreadState | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.draining = False
        self.ready = False
        self.egress = EgressPolicy(
            allow_private_targets=bundle.instance.spec.egress.allow_private_targets,
            own_ports={config.port} if config.port else set(),
        )
        """Where external MCP servers may be reached; the HTTP server adds the ports it binds to `own_ports`."""
        backend = build_backend_server(
            bundle=bundle,
            providers=providers_for(bundle, offline=config.offline, region=config.aws_region),
            memory=self._memory,
            secrets=self.secrets,
            egress=self.egress,
            telemetry=self.telemetry,
        )
        self.backend = BackendConnection(backend, bundle.mcp.agents, self.telemetry)
        self.approval_policy = ApprovalPolicy.from_spec(self._governance_policy())
        self.paused: PausedTurns | None = None
        """Set once the state is open, when the policy makes tool calls wait for approval
        (runtime.approvals.policy)."""
        self.desk: ApprovalDesk | None = None
        self._nodes = self._agents()
        self.graph = build_graph(bundle.graph, self._nodes)

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> Instance:
        bundle = load_bundle(
            config.bundle_uri, expected_hash=config.bundle_hash, identity=config.identity, region=config.aws_region
        )
        return cls(bundle=bundle, config=config)

    def _agents(self) -> dict[str, Node]:
        """The agent of every node of the graph definition, by node name, and of every worker, by agent id."""
        b = self.bundle
        agents: dict[str, Node] = {node.name: self._system_agent(node) for node in b.graph.nodes}
        for worker in b.graph.workers:
            agents[worker.agent_id] = WorkerAgent(
                spec=b.specs[worker.agent_id],
                tools=self.backend.gateway(worker.agent_id),
                debug=self.config.log_level.upper() == "DEBUG",
                approval=self.approval_policy,
                start_call=self._start_approved_call,
            )
        return agents

    def _system_agent(self, node: GraphNode) -> Node:
        b = self.bundle
        agent_id = node.agent_id
        match node.role:
            case "io":
                return IoInAgent(agent_id=agent_id) if node.name == b.graph.entry else IoOutAgent(agent_id=agent_id)
            case "governance":
                policy = b.specs[agent_id].spec.policy
                return GovernanceAgent(agent_id=agent_id, policy=InputPolicy.from_spec(policy, b.instance.spec.limits))
            case "context":
                history_limit = b.instance.spec.mcp.max_history_messages
                return ContextAgent(
                    agent_id=agent_id, tools=self.backend.gateway(agent_id), history_limit=history_limit
                )
            case "supervisor":
                routes = [Route(w.agent_id, tuple(w.keywords), w.default) for w in b.graph.workers]
                return SupervisorAgent(agent_id=agent_id, routes=routes)
            case "coherence":
                stored_chars = b.instance.spec.limits.max_input_chars
                return CoherenceAgent(
                    agent_id=agent_id, tools=self.backend.gateway(agent_id), stored_chars=stored_chars
                )
            case "exception":
                timeout = b.instance.spec.limits.request_timeout_seconds
                return ExceptionAgent(agent_id=agent_id, request_timeout_seconds=timeout)
            case "observability":
                return ObservabilityAgent(agent_id=agent_id, metrics=self.metrics)

    def _governance_policy(self) -> GovernancePolicy | None:
        governance = [n.agent_id for n in self.bundle.graph.nodes if n.role == "governance"]
        return self.bundle.specs[governance[0]].spec.policy if governance else None

    def _open_approvals(self, state: ThreadState) -> None:
        """The graph again, compiled with the store's checkpointer, so a turn can pause and resume anywhere."""
        saver = state.memory.saver
        graph = build_graph(self.bundle.graph, self._nodes, checkpointer=saver)
        self.paused = PausedTurns(graph, state.approvals, saver, self.approval_policy, state.clock)
        limit = self.bundle.instance.spec.limits.request_timeout_seconds
        run_seconds = limit + ERROR_PATH_GRACE_SECONDS + state.turns.wait_seconds
        self.desk = ApprovalDesk(state.approvals, self._resume_turn, run_seconds=run_seconds, clock=state.clock)

    async def _start_approved_call(self, approval_id: str, runner: str) -> bool:
        """The worker's mark, right before an approved call (runtime.approvals.policy: at most once)."""
        if self.thread_state is None:
            raise StateStoreError("the thread state is not open yet")
        return await self.thread_state.approvals.start_call(approval_id, by=runner, now=self.thread_state.clock())

    def _memory(self) -> ThreadMemory:
        if self.thread_state is None:
            raise StateStoreError("the thread state is not open yet")
        return self.thread_state.memory

    async def open_state(self) -> ThreadState:
        """Opens the store STATE_URL names (or the instance's default SQLite file); raises StateStoreError with
        a message for the operator when it cannot be used. `serve` calls it before listening. A state set before
        (a test's, with its own clock) is used as it is."""
        if self.thread_state is None:
            self.thread_state = await self._open_thread_state()
        if self.approval_policy.active and self.paused is None:
            self._open_approvals(self.thread_state)
        return self.thread_state

    async def _open_thread_state(self) -> ThreadState:
        location = self.config.state
        if location is None:
            identity = self.bundle.instance.spec.identity
            default = parse_state_url(default_state_url(identity.environment, self.bundle.instance.metadata.name))
            assert default.path is not None
            location = parse_state_url(f"sqlite:///{writable_default(default.path)}")
        mcp = self.bundle.instance.spec.mcp
        state = await open_thread_state(
            location,
            keep=mcp.max_history_messages,
            ttl_seconds=mcp.thread_ttl_hours * 3600.0,
            wait_seconds=self.config.thread_wait_seconds,
            region=self.config.aws_region,
            usage_retention_days=self.config.usage_retention_days,
        )
        log.info(json.dumps({"event": "state.opened", "store": location.kind, "where": state.where}))
        return state

    async def start(self) -> None:
        state = await self.open_state()
        if state.location.kind != "dynamodb":
            self._sweeper = asyncio.create_task(self._sweep_forever(state))
        await self.backend.open()
        self.ready = True
        if self.missing_secrets:
            log.warning("secrets not injected (names only): %s", ", ".join(self.missing_secrets))

    async def stop(self) -> None:
        self.ready = False
        await self.backend.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self.paused, self.desk = None, None
        if self.thread_state is not None:
            await self.thread_state.close()
            self.thread_state = None
        self.telemetry.metrics.shutdown()

    async def _sweep_forever(self, state: ThreadState) -> None:
        while True:
            try:
                removed = await state.sweep()
            except Exception:
                log.exception('{"event": "state.sweep_failed"}')
            else:
                if removed:
                    log.info(json.dumps({"event": "state.swept", "threads": removed}))
            await asyncio.sleep(SWEEP_EVERY_SECONDS)

    @property
    def organization(self) -> str:
        return self.bundle.instance.spec.identity.organization_id

    async def invoke(self, message: str, thread_id: str | None = None, caller: Caller | None = None) -> InvokeResult:
        """`caller` is who the bearer token says is calling (None: the anonymous caller of AUTH_MODE=none or stdio).
        The graph sees only the caller's opaque thread key and the token's organization as its tenant. Without a
        thread id the turn starts a new thread (never a shared default one: with auth off, or callers sharing one
        client id, that would hand one caller another's history); the result's thread_id names it.

        The turn is one `invoke_agent` span (the graph's node spans are its children); the result's trace_id is the
        span's trace id when there is one (the caller's, if it sent a traceparent), so a caller can find the trace."""
        if thread_id is None:
            thread_id = new_thread_id()
        name = self.bundle.instance.metadata.name
        attributes: dict[str, Any] = {OPERATION: "invoke_agent", AGENT_NAME: name}
        capture = self.telemetry.capture_content
        if capture:
            attributes["gen_ai.input.messages"] = text_messages("user", message)
        started, started_at = time.perf_counter(), time.time()
        with tallying() as tally, span(f"invoke_agent {name}", attributes) as current:
            context = current.get_span_context()
            trace_id = format(context.trace_id, "032x") if context.is_valid else uuid.uuid4().hex
            if current.is_recording() and THREAD_ID.fullmatch(thread_id):
                key = thread_key(caller or anonymous_caller(self.organization), thread_id)
                current.set_attribute("gen_ai.conversation.id", key)
            result = await self._invoke(message, thread_id, caller, trace_id)
            if result.error is not None:
                fail(current, result.error.code)
            elif capture and result.answer is not None:
                current.set_attribute("gen_ai.output.messages", text_messages("assistant", result.answer))
        seconds = time.perf_counter() - started
        error_code = result.error.code if result.error else None
        self.telemetry.metrics.turn(seconds, error_code)
        result.usage = TurnUsage.of(tally)
        outcome = error_code or ("awaiting_approval" if result.approval is not None else "ok")
        await self._record_usage(started_at, tally.counters(outcome=outcome, seconds=seconds))
        return result

    async def _record_usage(self, started_at: float, counters: dict[str, int]) -> None:
        """Adds the turn to the usage ledger (the hour it started in). A store that cannot take it does not fail the
        answered turn: the counters are logged, so the hour can be reconciled by hand."""
        state = self.thread_state
        if state is None:
            log.error(json.dumps({"event": "usage.not_recorded", "reason": "state not open", "counters": counters}))
            return
        try:
            await state.usage.add(hour_of(started_at), counters)
        except Exception as exc:
            log.error(
                json.dumps(
                    {
                        "event": "usage.not_recorded",
                        "reason": f"{type(exc).__name__}: {exc}"[:500],
                        "hour": hour_of(started_at).isoformat(),
                        "counters": counters,
                    }
                )
            )

    async def usage(self, window: UsageWindow) -> UsageReport:
        """What this instance used over the window, from its ledger (every task's turns, across restarts)."""
        state = await self.open_state()
        hours = await state.usage.hours(window.since, window.until)
        return usage_report(self.bundle.instance.metadata.name, window, hours)

    async def _invoke(self, message: str, thread_id: str, caller: Caller | None, trace_id: str) -> InvokeResult:
        refusal: InvokeError | None = None
        if self.draining or not self.ready:
            self.metrics.refused += 1
            reason = "the instance is shutting down" if self.draining else "the instance is not ready yet"
            refusal = InvokeError(code="draining", message=f"{reason}; retry on another task", node="io", agent_id="")
        elif not THREAD_ID.fullmatch(thread_id):
            message_ = "thread_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"
            refusal = InvokeError(
                code="malformed_input", message=message_, node="io", agent_id=self.bundle.graph.agent_of("io")
            )
        if refusal is not None:
            return InvokeResult(
                ok=False, answer=None, error=refusal, thread_id=thread_id, trace_id=trace_id,
                agents=[], workers=[], trace=[], total_ms=0.0,
            )  # fmt: skip
        caller = caller or anonymous_caller(self.organization)
        self.metrics.requests += 1
        self.metrics.in_flight += 1
        started = time.perf_counter()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(json.dumps({"event": "invoke.start", "trace_id": trace_id}))
        request: PipelineState = {
            "message": message,
            "thread_id": thread_key(caller, thread_id),
            "tenant": caller.organization,
            "trace_id": trace_id,
        }
        try:
            async with self._request_deadline():
                state = await self._run_turn(request, ThreadOwner(caller.organization, caller.subject, thread_id))
        except TimeoutError:
            self.metrics.failed += 1
            limit = self.bundle.instance.spec.limits.request_timeout_seconds
            state = {
                "error": timeout_error(limit_seconds=limit, node="graph", agent_id="", trace_id=trace_id),
                "answer": None,
            }
        except (ThreadBusyError, TurnInterruptedError, StateUnavailableError) as exc:
            self.metrics.refused += 1
            code = busy_code(exc)
            message = str(exc) if code == "state_unavailable" else f"thread {thread_id!r} {exc}"
            error = InvokeError(code=code, message=message, node="io", agent_id="")
            total_ms = round((time.perf_counter() - started) * 1000, 3)
            log.info(json.dumps({"event": "invoke", "trace_id": trace_id, "ok": False, "code": code, "ms": total_ms}))
            return InvokeResult(
                ok=False, answer=None, error=error, thread_id=thread_id, trace_id=trace_id,
                agents=[], workers=[], trace=[], total_ms=total_ms,
            )  # fmt: skip
        finally:
            self.metrics.in_flight -= 1
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        result = _result(state, thread_id=thread_id, trace_id=trace_id, total_ms=total_ms)
        log.info(
            json.dumps(
                {
                    "event": "invoke",
                    "trace_id": trace_id,
                    "ok": result.ok,
                    "code": result.error.code if result.error else None,
                    "workers": result.workers,
                    "ms": total_ms,
                }
            )
        )
        return result

    async def _run_turn(self, request: PipelineState, owner: ThreadOwner | None = None) -> PipelineState:
        """One turn per thread at a time, across all tasks (runtime.store.thread_turns: queued, then thread_busy). A
        malformed thread id takes no turn: governance rejects it before any agent reads or writes memory. `owner`
        (the caller's names) is kept in the thread's record for data-subject requests."""
        thread_id = request["thread_id"]
        if self.thread_state is None or not THREAD_ID.fullmatch(thread_id):
            return cast(PipelineState, await self.graph.ainvoke(request))
        on_busy = self.bundle.instance.spec.mcp.on_busy
        async with self.thread_state.turns.turn(thread_id, owner, on_busy) as lease:
            run: Coroutine[Any, Any, Any] = (
                self.paused.run(request, owner)
                if self.paused is not None and owner is not None
                else self.graph.ainvoke(request)
            )
            if on_busy == "interrupt":
                return cast(PipelineState, await until_interrupted(lease, run))
            return cast(PipelineState, await run)

    async def approve(
        self, approval_id: str, decision: Decision, comment: str | None = None, caller: Caller | None = None
    ) -> ApprovalState:
        """Decides a paused turn's tool call and answers with the turn's final result
        (runtime.approvals.approval_desk)."""
        if self.draining or not self.ready:
            raise ApprovalError("the instance is shutting down or not ready yet; retry on another task")
        return await self._approval_desk().decide(
            approval_id, decision, comment, caller or anonymous_caller(self.organization)
        )

    async def get_approval(self, approval_id: str, caller: Caller | None = None) -> ApprovalState:
        return await self._approval_desk().get(approval_id, caller or anonymous_caller(self.organization))

    async def pending_approvals(self, caller: Caller | None = None) -> list[ApprovalState]:
        return await self._approval_desk().pending(caller or anonymous_caller(self.organization))

    def _approval_desk(self) -> ApprovalDesk:
        if self.desk is None:
            raise ApprovalError(
                "this instance asks no approvals: its governance policy's approval_required is empty"
                if not self.approval_policy.active
                else "the instance's state is not open yet; retry"
            )
        return self.desk

    @asynccontextmanager
    async def _request_deadline(self) -> AsyncIterator[None]:
        """The request's deadline for the graph's nodes (REQUEST_DEADLINE): they enforce it themselves, so the
        exception agent still answers. The outer limit, past the error path's grace, only catches the graph itself
        (or the wait for the thread's turn) hanging between nodes: TimeoutError."""
        limit = self.bundle.instance.spec.limits.request_timeout_seconds
        deadline = asyncio.get_running_loop().time() + limit
        token = REQUEST_DEADLINE.set(deadline)
        try:
            async with asyncio.timeout_at(deadline + ERROR_PATH_GRACE_SECONDS):
                yield
        finally:
            REQUEST_DEADLINE.reset(token)

    async def _resume_turn(self, record: ApprovalRecord, command: Command[Any]) -> InvokeResult:
        """The paused turn, resumed from its checkpoint inside its thread's turn, under a new request deadline. It
        queues for the thread whatever the instance's `on_busy` (docs/runtime.md: 'takes the thread's turn like any
        other (queued behind a running one)'): the decision is already taken, so `reject` would leave it unrun for
        a user's chat, and `interrupt` would stop that user's running turn. And no newer message interrupts it
        (a pinned turn): stopped after its approved call was made, it would record nothing, and the next `approve`
        would resume the turn and make the call again."""
        assert self.paused is not None and self.thread_state is not None
        started, started_at = time.perf_counter(), time.time()
        owner = ThreadOwner(record.organization, record.subject, record.thread)
        with tallying() as tally:  # the resumed part's model and tool use goes to the ledger too
            try:
                async with (
                    self._request_deadline(),
                    self.thread_state.turns.turn(record.thread_key, owner, pinned=True),
                ):
                    state = await self.paused.resume(record, command)
            except (TimeoutError, ThreadBusyError, StateUnavailableError) as exc:
                why = "it ran out of time" if isinstance(exc, TimeoutError) else str(exc)
                raise ApprovalError(
                    f"approval {record.id} is decided ({record.status}), but its turn could not resume now ({why}); "
                    "call approve again shortly to run it"
                ) from None
            finally:
                if counters := tally.counters(outcome=None, seconds=0.0):
                    await self._record_usage(started_at, counters)
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        result = _result(state, thread_id=record.thread, trace_id=record.trace_id, total_ms=total_ms)
        if (missed := _approved_call_unknown(result) or _approved_call_missed(record, result)) is not None:
            result.ok, result.answer, result.error = False, None, missed
        result.usage = TurnUsage.of(tally)  # the resumed part's own use (the paused invoke reported the rest)
        log.info(json.dumps({"event": "approval.resumed", "trace_id": record.trace_id, "ok": result.ok}))
        return result

    async def export_subject(self, subject: str, thread_id: str | None = None) -> SubjectDataResult:
        """The subject's threads (of this instance's organization) with their history (runtime.store.subject_data)."""
        state, request = await self._subject_request(subject, thread_id)
        threads = await export_subject(state, request)
        if not threads:
            raise SubjectRequestError(f"no {request.describe()} on this instance")
        found = [
            SubjectThread(**{k: t[k] for k in ("thread_id", "last_active", "messages", "approvals")}) for t in threads
        ]
        return SubjectDataResult(organization=self.organization, subject=subject, thread_id=thread_id, threads=found)

    async def erase_subject(self, subject: str, thread_id: str | None = None) -> SubjectDataResult:
        state, request = await self._subject_request(subject, thread_id)
        erased = await erase_subject(state, request)
        log.info(json.dumps({"event": "subject.erased", "threads": erased}))  # names no subject: it is personal
        if erased == 0:
            raise SubjectRequestError(f"erased 0 threads: no {request.describe()} on this instance")
        return SubjectDataResult(organization=self.organization, subject=subject, thread_id=thread_id, erased=erased)

    async def _subject_request(self, subject: str, thread_id: str | None) -> tuple[ThreadState, SubjectRequest]:
        if thread_id is not None and not THREAD_ID.fullmatch(thread_id):
            raise SubjectRequestError(
                f"thread_id {thread_id[:40]!r} is not a thread id (1-128 of letters, digits, '.', '_', ':', '-')"
            )
        return await self.open_state(), SubjectRequest(self.organization, subject, thread_id)

    def describe(self) -> dict[str, Any]:
        spec = self.bundle.instance.spec
        return {
            "instance": self.bundle.instance.metadata.name,
            "identity": spec.identity.model_dump(mode="json"),
            "hostname": spec.hostname,
            "bundle_hash": self.bundle.content_hash,
            "pipeline": self.bundle.graph.pipeline(),
            "agents": [
                {
                    "agent_id": a.agent_id,
                    "role": a.role,
                    "version": a.version,
                    "description": self.bundle.specs[a.agent_id].spec.description,
                    "tools": self.bundle.mcp.agents.get(a.agent_id, []),
                }
                for a in spec.agents
            ],
            "workers": [w.model_dump(mode="json") for w in self.bundle.graph.workers],
            "model_provider": spec.mcp.model_provider,
            "approvals": {
                "required": list(self.approval_policy.patterns),
                "timeout_seconds": self.approval_policy.timeout_seconds,
            },
            "secrets": [
                {"name": s.name, "configured": s.configured}
                for s in (SecretStatus(n, n in self.secrets) for n in spec.secrets)
            ],
        }

    def status(self) -> dict[str, Any]:
        """Health, the observability agent's per-node counts and the OpenTelemetry instruments' summary
        (requests by outcome, errors by type, turn duration, tokens and model calls by model, tool calls by tool)."""
        return {
            "ready": self.ready and not self.draining,
            "draining": self.draining,
            "bundle_hash": self.bundle.content_hash,
            "state": {
                "store": self.thread_state.location.kind if self.thread_state else None,
                "where": self.thread_state.where if self.thread_state else None,
            },
            "metrics": self.metrics.snapshot(),
            "telemetry": self.telemetry.metrics.summary(),
        }


def new_thread_id() -> str:
    """A thread id nobody else holds: 128 random bits."""
    return f"thread-{uuid.uuid4().hex}"


def _approved_call_missed(record: ApprovalRecord, result: InvokeResult) -> InvokeError | None:
    """An approved call that its resumed turn never made. The paused worker's tool loop keeps the pending call in
    its checkpoint, so a resume reaches it unless the agents changed since the turn paused (a deploy that took the
    tool from the agent, or the agent from the instance): then the person's yes must not read as done."""
    if record.status != "approved" or result.approval is not None:
        return None
    if any(c.agent_id == record.agent_id and f"{c.server}.{c.tool}" == record.tool for c in result.tool_calls):
        return None
    return InvokeError(
        code="approval_not_reached",
        message=(
            f"approval {record.id} was approved, but the resumed turn never reached the call it approved "
            f"({record.tool} of {record.agent_id}): this instance's agents changed since the turn paused (a deploy "
            "took the tool or the agent away), so the call was not made; ask again (invoke) if it is still wanted"
        ),
        node="resume",
        agent_id=record.agent_id,
    )


def _approved_call_unknown(result: InvokeResult) -> InvokeError | None:
    """An approved call that an earlier run of the resumed turn began (its mark is set) and never finished: its task
    died after starting it and before the turn's result was kept. It may have been made, so it was not made again,
    and the person's yes must not read as done, nor as not done."""
    call = next((c for c in result.tool_calls if c.status == "unknown"), None)
    if call is None:
        return None
    return InvokeError(
        code="approval_outcome_unknown",
        message=(
            f"approval {call.approval_id} was approved, and a task that resumed its turn before began the approved "
            f"call ({call.server}.{call.tool} of {call.agent_id}) but stopped before its outcome was kept: the call "
            "may have been made, so it was not made again (an approved call is made at most once); check "
            f"{call.server} for it before asking again (invoke)"
        ),
        node="resume",
        agent_id=call.agent_id,
    )


def _result(state: PipelineState, *, thread_id: str, trace_id: str, total_ms: float) -> InvokeResult:
    trace = [TraceStep(**entry) for entry in state.get("trace", [])]
    error = state.get("error")
    approvals = state.get("approvals") or []
    return InvokeResult(
        approval=ApprovalRequest(**approvals[0]) if approvals else None,
        ok=error is None,
        answer=state.get("answer") if error is None else None,
        error=InvokeError(**error) if error else None,
        thread_id=thread_id,
        trace_id=trace_id,
        agents=[step.agent_id for step in trace],
        workers=list(state.get("routes", [])),
        trace=trace,
        tool_calls=[ToolCallStep(**call) for call in state.get("tool_calls", [])],
        total_ms=total_ms,
    )


__all__ = ["Instance", "InvokeResult", "Secrets", "SubjectDataResult", "SubjectRequestError"]
