"""Context: loads the thread's history and the instance's facts, through the backend tools."""

from __future__ import annotations

from runtime.backend_mcp import ToolGateway
from runtime.state import HistoryMessage, PipelineState


class ContextAgent:
    def __init__(self, *, agent_id: str, tools: ToolGateway, history_limit: int) -> None:
        self.agent_id = agent_id
        self.tools = tools
        self.history_limit = history_limit

    async def __call__(self, state: PipelineState) -> PipelineState:
        read = await self.tools.call("memory_read", {"thread_id": state["thread_id"], "limit": self.history_limit})
        history: list[HistoryMessage] = [{"role": m["role"], "content": m["content"]} for m in read["messages"]]
        context = await self.tools.call("context_get", {})
        return {"history": history, "context": context}
