"""Context: loads the thread's history and the instance's facts, through the backend tools."""

from __future__ import annotations

from typing import Any

from runtime.backend.backend_mcp import ToolGateway
from runtime.state import HistoryMessage, PipelineState


class ContextAgent:
    def __init__(self, *, agent_id: str, tools: ToolGateway, history_limit: int) -> None:
        self.agent_id = agent_id
        self.tools = tools
        self.history_limit = history_limit
        self._instance_facts: dict[str, Any] | None = None

    async def __call__(self, state: PipelineState) -> PipelineState:
        read = await self.tools.call("memory_read", {"thread_id": state["thread_id"], "limit": self.history_limit})
        history: list[HistoryMessage] = [{"role": m["role"], "content": m["content"]} for m in read["messages"]]
        return {"history": history, "context": await self._facts()}

    async def _facts(self) -> dict[str, Any]:
        """The backend's `context_get`, asked once: its answer (identity, workers, secret names) is fixed for the
        life of the process — it comes from the bundle and the environment at start — so asking on every request
        was a backend round trip per request for the same answer. History is still read per request."""
        if self._instance_facts is None:
            self._instance_facts = await self.tools.call("context_get", {})
        return dict(self._instance_facts)
