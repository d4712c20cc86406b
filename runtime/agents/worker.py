"""Workers: one node per custom agent, built from its spec (prompt, model settings, tools), never per name."""

from __future__ import annotations

from instance_contract.schema import AgentSpec
from runtime.backend_mcp import ToolGateway
from runtime.state import PipelineState, WorkerTask


def worker_prompt(task: WorkerTask) -> str:
    """The request with the thread's recent history, as the model sees it."""
    lines = [f"{m['role']}: {m['content']}" for m in task["history"]]
    history = ("Earlier in this thread:\n" + "\n".join(lines) + "\n\n") if lines else ""
    return f"{history}Request: {task['message']}"


class WorkerAgent:
    def __init__(self, *, spec: AgentSpec, tools: ToolGateway) -> None:
        self.agent_id = spec.metadata.agent_id
        self.spec = spec
        self.tools = tools

    async def __call__(self, task: WorkerTask) -> PipelineState:
        arguments = {"agent_id": self.agent_id, "system": self.spec.spec.prompt, "prompt": worker_prompt(task)}
        reply = await self.tools.call("model_generate", arguments)
        return {"outputs": [{"agent_id": self.agent_id, "text": reply["text"]}]}
