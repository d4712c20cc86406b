"""Exception: turns the first failure into a structured error for the caller, without internals."""

from __future__ import annotations

import logging

from runtime.state import ErrorInfo, PipelineState

log = logging.getLogger("runtime.exception")


class ExceptionAgent:
    def __init__(self, *, agent_id: str) -> None:
        self.agent_id = agent_id

    async def __call__(self, state: PipelineState) -> PipelineState:
        failures = state.get("failures") or []
        trace_id = state.get("trace_id", "")
        for failure in failures:
            log.warning(
                "trace %s: %s (%s) failed: %s: %s",
                trace_id,
                failure["node"],
                failure["agent_id"],
                failure["error_type"],
                failure["detail"],
            )
        first = failures[0] if failures else None
        error: ErrorInfo = {
            "code": "agent_failed",
            "message": (
                f"{first['agent_id']} failed while handling the request; nothing was changed. "
                f"Quote trace id {trace_id} when reporting it."
                if first
                else f"the request failed; quote trace id {trace_id} when reporting it."
            ),
            "node": first["node"] if first else "unknown",
            "agent_id": first["agent_id"] if first else "unknown",
        }
        return {"error": error, "answer": None}
