"""Coherence: checks that every routed worker answered, merges the answers into one, and records the turn."""

from __future__ import annotations

from runtime.backend.backend_mcp import ToolGateway
from runtime.state import PipelineState, WorkerOutput


class IncoherentOutputError(RuntimeError):
    """The workers' outputs cannot be merged into an answer (missing or empty)."""


def merge_outputs(routes: list[str], outputs: list[WorkerOutput]) -> str:
    """In routing order; one worker's answer stands alone, several are labelled by agent; duplicates dropped."""
    by_agent = {o["agent_id"]: o["text"].strip() for o in outputs}
    missing = [a for a in routes if a not in by_agent]
    if missing:
        raise IncoherentOutputError(f"no output from routed workers: {', '.join(missing)}")
    empty = [a for a in routes if not by_agent[a]]
    if empty:
        raise IncoherentOutputError(f"empty output from workers: {', '.join(empty)}")
    if len(routes) == 1:
        return by_agent[routes[0]]
    seen: set[str] = set()
    parts = []
    for agent_id in routes:
        if by_agent[agent_id] not in seen:
            seen.add(by_agent[agent_id])
            parts.append(f"{agent_id}: {by_agent[agent_id]}")
    return "\n\n".join(parts)


class CoherenceAgent:
    def __init__(self, *, agent_id: str, tools: ToolGateway, stored_chars: int) -> None:
        self.agent_id = agent_id
        self.tools = tools
        self.stored_chars = stored_chars
        """The memory's message limit (the instance's max_input_chars): the caller gets the whole answer, the
        thread's history keeps its first `stored_chars` characters, so recording the turn cannot fail on size."""

    async def __call__(self, state: PipelineState) -> PipelineState:
        if state.get("failures"):
            return {}  # a worker failed: there is nothing coherent to merge; the router hands over to exception
        answer = merge_outputs(state.get("routes", []), state.get("outputs", []))
        recorded = answer[: self.stored_chars]
        turn = [{"role": "user", "content": state["message"]}, {"role": "assistant", "content": recorded}]
        await self.tools.call("memory_append", {"thread_id": state["thread_id"], "messages": turn})
        return {"answer": answer}
