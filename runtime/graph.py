"""The instance graph, compiled from the bundle's graph definition (instance_contract.bundle_documents): the Foundry
declares it as data (foundry.bundles.graph_definition), in the shape of the design's arrow diagram:

    io_in -> governance -> context -> supervisor => workers (Send, in parallel) -> coherence -> observability -> io_out

Any node that raises is caught by its guard, which records a Failure; the router of its `next` or `fan_out` edge
then sends the request to the error handler (`exception`), which turns it into a structured error and hands over
to observability, so the caller always gets a response and the process stays up. A governance rejection takes its
`on_rejection` edge straight to observability.

Every request has a deadline (the instance's limits.request_timeout_seconds, set by the caller in
`REQUEST_DEADLINE`): a node still running at the deadline is cancelled and recorded as a `RequestTimeout` failure,
and the error path (the error handler and the nodes after it: exception -> observability -> io_out), which must
always run, is exempt from it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from instance_contract.bundle_documents import GraphDefinition
from runtime.agents.exception import TIMEOUT_ERROR
from runtime.state import Failure, PipelineState, TraceEntry, WorkerTask
from runtime.telemetry.genai_spans import AGENT_NAME, OPERATION, fail, span
from runtime.telemetry.turn_progress import TURN_PROGRESS

REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)
"""The running request's deadline on the event loop's clock (`loop.time()`); None: no limit. A context variable,
so every node task LangGraph starts for the request (each copies the caller's context) sees it."""


class Node(Protocol):
    agent_id: str

    def __call__(self, state: Any, /) -> Awaitable[PipelineState]: ...


class GuardedNode(Protocol):
    def __call__(self, state: PipelineState) -> Awaitable[PipelineState]: ...


Graph = CompiledStateGraph[PipelineState, None, PipelineState, PipelineState]


def guarded(node: str, agent: Node, *, unlimited: bool = False) -> GuardedNode:
    """Reports its start to a streaming caller (runtime.telemetry.turn_progress), times the node, adds its trace entry,
    and turns an exception into a recorded Failure. An `unlimited` node (on the error path, which turns a failure into
    the caller's answer) runs even after the deadline."""

    attributes = {OPERATION: "invoke_agent", AGENT_NAME: agent.agent_id, "agentfoundry.graph.node": node}
    name = f"invoke_agent {agent.agent_id}"

    async def run(state: Any) -> PipelineState:
        if (progress := TURN_PROGRESS.get()) is not None:  # the caller streams: say which node starts
            await progress.node_started(node, agent.agent_id)
        with span(name, attributes) as current:
            update = await step(state)
            (entry,) = update["trace"]
            if entry["status"] != "ok":
                current.set_attribute("agentfoundry.node.status", entry["status"])
            if entry["status"] == "error":
                fail(current, update["failures"][0]["error_type"])
            return update

    async def step(state: Any) -> PipelineState:
        started = time.perf_counter()
        status: Literal["ok", "rejected", "error"] = "ok"
        deadline = None if unlimited or state.get("failures") else REQUEST_DEADLINE.get()
        limit = asyncio.timeout_at(deadline)
        spent = deadline is not None and asyncio.get_running_loop().time() >= deadline
        try:
            if spent:
                raise TimeoutError  # the time ran out before the node started: do not start it
            async with limit:
                update = await agent(state)
            if update.get("rejection"):
                status = "rejected"
        except GraphBubbleUp:
            # an interrupt (a tool call waiting for approval, runtime.approvals.policy): the turn pauses, no failure
            raise
        except Exception as exc:
            status = "error"
            timed_out = isinstance(exc, TimeoutError) and (spent or limit.expired())
            failure: Failure = {
                "node": node,
                "agent_id": agent.agent_id,
                "error_type": TIMEOUT_ERROR if timed_out else type(exc).__name__,
                "detail": "the request's time limit ran out while this node ran" if timed_out else str(exc)[:1000],
            }
            update = {"failures": [failure]}
            partial = getattr(exc, "state_update", None)  # what a failing node still reports (its tool calls)
            if isinstance(partial, dict) and "tool_calls" in partial:
                update["tool_calls"] = partial["tool_calls"]
        entry: TraceEntry = {
            "node": node,
            "agent_id": agent.agent_id,
            "ms": round((time.perf_counter() - started) * 1000, 3),
            "status": status,
        }
        return {**update, "trace": [entry]}

    return run  # annotated `Any` on purpose: workers receive a WorkerTask (Send payload), not the whole state


# --- routers: each reads the state and names the way on; the definition's edges say which node that is --------
# async on purpose: LangGraph runs a sync router in a thread pool (a thread hop per edge under `ainvoke`).

Way = Literal["next", "rejected", "failed", "join"]
"""A router's answer: the edge's target (`next`), the `on_rejection` target, the error handler, or (fan-out with no
worker selected) the `join` edge's target."""


async def after_step(state: PipelineState) -> Literal["next", "failed"]:
    """A `next` edge."""
    return "failed" if state.get("failures") else "next"


async def after_screening(state: PipelineState) -> Literal["next", "rejected", "failed"]:
    """A `next` edge beside an `on_rejection` edge."""
    if state.get("failures"):
        return "failed"
    return "rejected" if state.get("rejection") else "next"


async def fan_out(state: PipelineState) -> list[Send] | Literal["join", "failed"]:
    """One `Send` per selected worker, all run in the same step; no worker selected -> straight to the join."""
    if state.get("failures"):
        return "failed"
    task: WorkerTask = {
        "message": state["message"],
        "thread_id": state["thread_id"],
        "trace_id": state["trace_id"],
        "history": state.get("history", []),
        "context": state.get("context", {}),
    }
    return [Send(agent_id, task) for agent_id in state.get("routes", [])] or "join"


# --- the graph ------------------------------------------------------------------------------------------------


class UntracedRouter(Runnable[PipelineState, Any]):
    """A router without LangChain callback tracing, which maps its router's way to the definition's node.

    `add_conditional_edges` wraps a plain function in a traced runnable (a callback run start/end and a task per
    edge, ~15% of the graph's own overhead per request); the graph has no callback handlers, so that tracing records
    nothing. A `Runnable` (langchain-core's public base class, which `add_conditional_edges` accepts as is) that
    awaits the router directly skips it. The node's own trace entry is unaffected. The way -> node mapping is done
    here rather than by a `path_map` dict, which would label every edge of the drawn graph with the way's name."""

    def __init__(
        self, name: str, route: Callable[[PipelineState], Awaitable[Way | list[Send]]], targets: Mapping[Way, str]
    ) -> None:
        self.route = route
        self.name = name
        self.targets = dict(targets)

    def invoke(self, input: PipelineState, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        raise TypeError(f"router {self.name} is async: run the graph with ainvoke")

    async def ainvoke(self, input: PipelineState, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        way = await self.route(input)
        return way if isinstance(way, list) else self.targets[way]


def build_graph(
    definition: GraphDefinition, agents: Mapping[str, Node], checkpointer: BaseCheckpointSaver[Any] | None = None
) -> Graph:
    """Compiles `definition`; `agents` holds the agent of every node (by name) and of every worker (by agent id).
    The definition validated, so its topology compiles (instance_contract.bundle_documents checks it). With a
    `checkpointer` (an instance whose policy makes tool calls wait for approval, runtime.approvals.policy) a turn can
    pause and be resumed from its checkpoint by any task."""
    workers = [w.agent_id for w in definition.workers]
    unlimited = definition.error_path()
    graph = StateGraph(PipelineState)
    for name in [n.name for n in definition.nodes] + workers:
        graph.add_node(name, guarded(name, agents[name], unlimited=name in unlimited))
    graph.add_edge(START, definition.entry)
    for node in definition.nodes:
        edge = definition.successor(node.name)
        if edge is None:
            graph.add_edge(node.name, END)
        elif edge.kind == "always":
            graph.add_edge(node.name, edge.target)
        elif edge.kind == "fan_out":
            join = definition.join_target()
            if join is None:  # the definition's own check refuses this; a model built past validation may not
                raise ValueError(f"node {node.name!r} fans out to the workers, but no join edge leads on from them")
            targets: dict[Way, str] = {"join": join, "failed": definition.error_handler}
            router = UntracedRouter(f"after_{node.name}", fan_out, targets)
            graph.add_conditional_edges(node.name, router, [*workers, *targets.values()])
        else:
            targets = {"next": edge.target}
            for rejection in definition.edges_from(node.name, "on_rejection"):
                targets["rejected"] = rejection.target
            targets["failed"] = definition.error_handler
            route = after_screening if "rejected" in targets else after_step
            graph.add_conditional_edges(
                node.name, UntracedRouter(f"after_{node.name}", route, targets), list(targets.values())
            )
    after_workers = definition.join_target()
    for agent_id in workers:
        if after_workers is not None:  # always so when there are workers: they need the fan_out and join edges
            graph.add_edge(agent_id, after_workers)
    return graph.compile(name="instance", checkpointer=checkpointer)
