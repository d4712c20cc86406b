"""I/O: normalises the incoming request and shapes the final response."""

from __future__ import annotations

import unicodedata

from runtime.state import PipelineState


class IoInAgent:
    def __init__(self, *, agent_id: str) -> None:
        self.agent_id = agent_id

    async def __call__(self, state: PipelineState) -> PipelineState:
        return {"message": unicodedata.normalize("NFC", state["message"]).strip(), "outputs": [], "failures": []}


class IoOutAgent:
    def __init__(self, *, agent_id: str) -> None:
        self.agent_id = agent_id

    async def __call__(self, state: PipelineState) -> PipelineState:
        error = state.get("error") or state.get("rejection")
        failures = state.get("failures") or []
        if error is None and failures:  # a node after the exception agent failed (observability)
            first = failures[0]
            error = {
                "code": "agent_failed",
                "message": f"{first['agent_id']} failed while handling the request",
                "node": first["node"],
                "agent_id": first["agent_id"],
            }
        if error is not None:
            return {"answer": None, "error": error}
        return {"answer": (state.get("answer") or "").strip(), "error": None}
