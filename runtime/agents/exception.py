"""Exception: turns the first failure into a structured error for the caller, without internals."""

from __future__ import annotations

import logging

from runtime.state import ErrorInfo, Failure, PipelineState

log = logging.getLogger(__name__)
TIMEOUT_ERROR = "RequestTimeout"
"""The error_type the graph's guard records for a node cut off by the request's time limit."""


def timeout_error(*, limit_seconds: float, node: str, agent_id: str, trace_id: str) -> ErrorInfo:
    """What the caller sees when the request ran past the instance's time limit."""
    return {
        "code": "timeout",
        "message": (
            f"the request ran past this instance's time limit of {limit_seconds:g} s while {agent_id} was working; "
            f"it was stopped. Retry, or ask for less. Quote trace id {trace_id} when reporting it."
        ),
        "node": node,
        "agent_id": agent_id,
    }


class ExceptionAgent:
    def __init__(self, *, agent_id: str, request_timeout_seconds: float) -> None:
        self.agent_id = agent_id
        self.request_timeout_seconds = request_timeout_seconds

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
        return {"error": self._error(first, trace_id), "answer": None}

    def _error(self, first: Failure | None, trace_id: str) -> ErrorInfo:
        if first is not None and first["error_type"] == TIMEOUT_ERROR:
            return timeout_error(
                limit_seconds=self.request_timeout_seconds,
                node=first["node"],
                agent_id=first["agent_id"],
                trace_id=trace_id,
            )
        return {
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
