"""Workers: one node per custom agent, built from its spec (prompt, model settings, tools), never per name.

A worker with external tools is a small LangGraph subgraph, model -> tool calls -> model, bounded by its spec's
`max_tool_steps`; each tool call goes through the agent's ToolGateway (which refuses tools its spec does not list)
and is recorded in the answer's trace. A failing tool fails the worker, so the exception agent answers.

A tool the governance policy's `approval_required` names waits for a person: the tool step asks (LangGraph's
`interrupt`, runtime.approvals.policy) for every such call of the round before it makes any call, so the step, re-run
when the turn resumes, makes each call once; a refused call is not made and the model reads that it was refused.
Right before an approved call, the step marks it as started in the approval's record (`start_call`): a step resumed
again after a task died past that point finds the mark, does not call again, and tells the model the call's outcome
is unknown (status `unknown`).
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from instance_contract.schema import AgentSpec
from runtime.approvals.policy import (
    ApprovalAnswer,
    ApprovalPolicy,
    CallStarts,
    ask_approval,
    outcome_unknown_text,
    refusal_text,
)
from runtime.backend.backend_mcp import ToolCallError, ToolGateway
from runtime.backend.external_mcp import split_tool_name
from runtime.state import PipelineState, ToolCallTrace, WorkerTask


def worker_prompt(task: WorkerTask) -> str:
    """The request with the thread's recent history, as the model sees it."""
    lines = [f"{m['role']}: {m['content']}" for m in task["history"]]
    history = ("Earlier in this thread:\n" + "\n".join(lines) + "\n\n") if lines else ""
    return f"{history}Request: {task['message']}"


class ToolStepLimitError(ToolCallError):
    """The model still asked for tools after the spec's max_tool_steps rounds."""


class WorkerToolError(ToolCallError):
    """A tool call failed; carries the tool calls made so far, so the answer's trace still shows them."""

    def __init__(self, message: str, tool_calls: list[ToolCallTrace]) -> None:
        super().__init__(message)
        self.state_update: dict[str, Any] = {"tool_calls": list(tool_calls)}


class LoopState(TypedDict, total=False):
    task: WorkerTask
    tools: list[dict[str, Any]]
    rounds: Annotated[list[dict[str, Any]], operator.add]
    pending: list[dict[str, Any]]
    answer: str
    calls: Annotated[list[ToolCallTrace], operator.add]
    """The tool calls made, kept in the loop's state so that a turn resumed after an approval still lists the
    calls made before it paused."""


class WorkerAgent:
    def __init__(
        self,
        *,
        spec: AgentSpec,
        tools: ToolGateway,
        debug: bool = False,
        approval: ApprovalPolicy | None = None,
        start_call: CallStarts | None = None,
    ) -> None:
        """`start_call`: marks an approved call as started in its approval's record (the instance's store)."""
        self.agent_id = spec.metadata.agent_id
        self.approval = approval or ApprovalPolicy()
        self.start_call = start_call
        self.spec = spec
        self.tools = tools
        self.debug = debug
        self.max_steps = spec.spec.max_tool_steps
        self.loop: CompiledStateGraph[LoopState, None, LoopState, LoopState] = self._build_loop()

    def _build_loop(self) -> CompiledStateGraph[LoopState, None, LoopState, LoopState]:
        loop = StateGraph(LoopState)
        loop.add_node("model", self._model)
        loop.add_node("tools", self._call_tools)
        loop.add_edge(START, "model")
        loop.add_conditional_edges("model", self._after_model, ["tools", END])
        loop.add_edge("tools", "model")
        return loop.compile(name=f"{self.agent_id}-tool-loop")

    async def __call__(self, task: WorkerTask) -> PipelineState:
        external = self.tools.external_tools
        if not external:  # no external tools: one model call, as before tools existed
            reply = await self.tools.call("model_generate", self._generate_arguments(task, [], []))
            return {"outputs": [{"agent_id": self.agent_id, "text": reply["text"]}]}
        order = [t for t in self.spec.spec.tools if t in external]
        described = [d.model_dump(mode="json") for d in await self.tools.describe_external(order)]
        calls: list[ToolCallTrace] = []
        config: RunnableConfig = {"configurable": {"tool_trace": calls}, "recursion_limit": 2 * self.max_steps + 4}
        try:
            final = await self.loop.ainvoke({"task": task, "tools": described, "rounds": []}, config)
        except ToolCallError as exc:
            raise WorkerToolError(str(exc), calls) from None
        made = final.get("calls", [])
        return {"outputs": [{"agent_id": self.agent_id, "text": final["answer"]}], "tool_calls": made}

    def _generate_arguments(
        self, task: WorkerTask, tools: list[dict[str, Any]], rounds: list[dict[str, Any]]
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "agent_id": self.agent_id,
            "system": self.spec.spec.prompt,
            "prompt": worker_prompt(task),
        }
        if tools:
            arguments.update(tools=tools, rounds=rounds, request=task["message"])
        return arguments

    async def _model(self, state: LoopState) -> LoopState:
        rounds = state.get("rounds", [])
        reply = await self.tools.call("model_generate", self._generate_arguments(state["task"], state["tools"], rounds))
        wanted = list(reply.get("tool_calls") or [])
        if wanted and len(rounds) >= self.max_steps:
            raise ToolStepLimitError(
                f"agent {self.agent_id} still asked for tools after {self.max_steps} rounds (its spec's "
                "max_tool_steps); raise the limit or narrow its tools"
            )
        return {"pending": wanted, "answer": str(reply.get("text", ""))}

    async def _after_model(self, state: LoopState) -> Literal["tools", "__end__"]:
        return "tools" if state.get("pending") else "__end__"

    async def _call_tools(self, state: LoopState, config: RunnableConfig) -> LoopState:
        trace: list[ToolCallTrace] = config["configurable"]["tool_trace"]
        made: list[ToolCallTrace] = []
        pending = [(str(c["name"]), dict(c.get("arguments") or {})) for c in state["pending"]]
        answers: dict[int, ApprovalAnswer] = {
            i: ask_approval(self.agent_id, name, arguments)
            for i, (name, arguments) in enumerate(pending)
            if self.approval.requires(name)
        }
        results: list[str] = []
        for i, (name, arguments) in enumerate(pending):
            server, tool = split_tool_name(name) or ("backend", name)
            started = time.perf_counter()
            status: Literal["ok", "error", "refused", "unknown"] = "error"
            answer = answers.get(i)
            try:
                if answer is not None and answer["decision"] != "approve":
                    status = "refused"
                    result = {"text": refusal_text(name, answer)}
                elif answer is not None and not await self._first_start(answer):
                    status = "unknown"
                    result = {"text": outcome_unknown_text(name, answer)}
                else:
                    result = await self.tools.call(name, arguments)
                    status = "ok"
            finally:
                entry: ToolCallTrace = {
                    "agent_id": self.agent_id,
                    "server": server,
                    "tool": tool,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                    "status": status,
                    "arguments": arguments if self.debug else None,
                    "approval_id": answer.get("approval_id") if answer is not None else None,
                }
                trace.append(entry)
                made.append(entry)
            results.append(str(result.get("text", "")))
        return {"rounds": [{"calls": state["pending"], "results": results}], "pending": [], "calls": made}

    async def _first_start(self, answer: ApprovalAnswer) -> bool:
        """Marks the approved call as started; False when an earlier run of this turn marked it (and so may have
        made it). An answer that names no approval (kept in an older runtime's checkpoint) is not marked."""
        if self.start_call is None or "approval_id" not in answer:
            return True
        return await self.start_call(answer["approval_id"], answer.get("runner", ""))
