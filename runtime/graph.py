"""The instance graph, declared in one place so it reads like the design's arrow diagram:

    io_in -> governance -> context -> supervisor => workers (Send, in parallel) -> coherence -> observability -> io_out

Any node that raises is caught by its guard, which records a Failure; the next router then sends the request to
`exception`, which turns it into a structured error and hands over to observability, so the caller always gets a
response and the process stays up. A governance rejection skips straight to observability.

Every request has a deadline (the instance's limits.request_timeout_seconds, set by the caller in
`REQUEST_DEADLINE`): a node still running at the deadline is cancelled and recorded as a `RequestTimeout` failure,
and the error path (exception -> observability -> io_out), which must always run, is exempt from it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from runtime.agents.exception import TIMEOUT_ERROR
from runtime.state import Failure, PipelineState, TraceEntry, WorkerTask

SYSTEM_NODES = ("io_in", "governance", "context", "supervisor", "coherence", "exception", "observability", "io_out")
UNLIMITED_NODES = frozenset({"exception", "observability", "io_out"})
"""The nodes that turn a failure into the caller's answer: they run even after the deadline."""

REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)
"""The running request's deadline on the event loop's clock (`loop.time()`); None: no limit. A context variable,
so every node task LangGraph starts for the request (each copies the caller's context) sees it."""


class Node(Protocol):
    agent_id: str

    def __call__(self, state: Any, /) -> Awaitable[PipelineState]: ...


class GuardedNode(Protocol):
    def __call__(self, state: PipelineState) -> Awaitable[PipelineState]: ...


@dataclass(frozen=True)
class Agents:
    """Every node of one instance, built from its bundle (see runtime.instance)."""

    io_in: Node
    governance: Node
    context: Node
    supervisor: Node
    workers: dict[str, Node]
    coherence: Node
    exception: Node
    observability: Node
    io_out: Node


def guarded(node: str, agent: Node) -> GuardedNode:
    """Times the node, adds its trace entry, and turns an exception into a recorded Failure."""

    async def run(state: Any) -> PipelineState:
        started = time.perf_counter()
        status: Literal["ok", "rejected", "error"] = "ok"
        deadline = None if node in UNLIMITED_NODES or state.get("failures") else REQUEST_DEADLINE.get()
        limit = asyncio.timeout_at(deadline)
        spent = deadline is not None and asyncio.get_running_loop().time() >= deadline
        try:
            if spent:
                raise TimeoutError  # the time ran out before the node started: do not start it
            async with limit:
                update = await agent(state)
            if update.get("rejection"):
                status = "rejected"
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


# --- routers: each reads the state and names the next node ---------------------------------------------------
# async on purpose: LangGraph runs a sync router in a thread pool (a thread hop per edge under `ainvoke`).


async def after_io_in(state: PipelineState) -> Literal["governance", "exception"]:
    return "exception" if state.get("failures") else "governance"


async def after_governance(state: PipelineState) -> Literal["context", "observability", "exception"]:
    if state.get("failures"):
        return "exception"
    return "observability" if state.get("rejection") else "context"


async def after_context(state: PipelineState) -> Literal["supervisor", "exception"]:
    return "exception" if state.get("failures") else "supervisor"


async def fan_out(state: PipelineState) -> list[Send] | Literal["coherence", "exception"]:
    """One `Send` per selected worker, all run in the same step; no worker selected -> straight to coherence."""
    if state.get("failures"):
        return "exception"
    task: WorkerTask = {
        "message": state["message"],
        "thread_id": state["thread_id"],
        "trace_id": state["trace_id"],
        "history": state.get("history", []),
        "context": state.get("context", {}),
    }
    return [Send(agent_id, task) for agent_id in state.get("routes", [])] or "coherence"


async def after_coherence(state: PipelineState) -> Literal["observability", "exception"]:
    return "exception" if state.get("failures") else "observability"


# --- the graph ------------------------------------------------------------------------------------------------


class UntracedRouter(Runnable[PipelineState, Any]):
    """A router without LangChain callback tracing. `add_conditional_edges` wraps a plain function in a traced
    runnable (a callback run start/end and a task per edge, ~15% of the graph's own overhead per request); the
    graph has no callback handlers, so that tracing records nothing. A `Runnable` (langchain-core's public base
    class, which `add_conditional_edges` accepts as is) that awaits the router directly skips it. The node's own
    trace entry is unaffected."""

    def __init__(self, route: Callable[[PipelineState], Awaitable[Any]]) -> None:
        self.route = route
        self.name = route.__name__

    def invoke(self, input: PipelineState, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        raise TypeError(f"router {self.name} is async: run the graph with ainvoke")

    async def ainvoke(self, input: PipelineState, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.route(input)


def build_graph(agents: Agents) -> CompiledStateGraph[PipelineState, None, PipelineState, PipelineState]:
    clash = sorted(set(agents.workers) & set(SYSTEM_NODES))
    if clash:
        raise ValueError(f"worker agent ids clash with pipeline node names: {', '.join(clash)}")
    graph = StateGraph(PipelineState)
    for name in SYSTEM_NODES:
        graph.add_node(name, guarded(name, getattr(agents, name)))
    for agent_id, worker in sorted(agents.workers.items()):
        graph.add_node(agent_id, guarded(agent_id, worker))

    graph.add_edge(START, "io_in")
    graph.add_conditional_edges("io_in", UntracedRouter(after_io_in), ["governance", "exception"])
    graph.add_conditional_edges(
        "governance", UntracedRouter(after_governance), ["context", "observability", "exception"]
    )
    graph.add_conditional_edges("context", UntracedRouter(after_context), ["supervisor", "exception"])
    graph.add_conditional_edges(
        "supervisor", UntracedRouter(fan_out), [*sorted(agents.workers), "coherence", "exception"]
    )
    for agent_id in sorted(agents.workers):
        graph.add_edge(agent_id, "coherence")
    graph.add_conditional_edges("coherence", UntracedRouter(after_coherence), ["observability", "exception"])
    graph.add_edge("exception", "observability")
    graph.add_edge("observability", "io_out")
    graph.add_edge("io_out", END)
    return graph.compile(name="instance")
