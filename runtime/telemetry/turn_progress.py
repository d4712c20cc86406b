"""A turn's progress, for a caller that asked for it (an `invoke` with a `progressToken`): one event as each graph
node starts, and the model's text as it is generated.

Each event is one MCP `notifications/progress` on the caller's request: `progress` counts the events (1, 2, ...;
no `total`, a turn's length is not known ahead), and `message` is the event as compact JSON:

    {"event": "node", "node": "governance", "agent_id": "governance"}
    {"event": "text", "node": "pm-agent", "agent_id": "pm-agent", "text": "Request: plan "}

The running turn's reporter lives in a context variable, so the graph's nodes (runtime.graph) and the backend
connection (runtime.backend.backend_mcp, which carries the model's chunks back from the backend tool's own progress)
find it without being handed it; a turn without one reports nothing and pays nothing. A reporter whose caller has gone
drops its events: the turn itself goes on.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Awaitable, Callable

Send = Callable[[float, str], Awaitable[None]]
"""Sends one notification: its progress count and message (the MCP request context's `report_progress`)."""

log = logging.getLogger(__name__)


class TurnProgress:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._count = 0
        self._broken = False

    async def node_started(self, node: str, agent_id: str) -> None:
        await self._emit({"event": "node", "node": node, "agent_id": agent_id})

    async def text(self, agent_id: str, text: str) -> None:
        """A chunk of a model's text; `node` is the worker's node (a worker's node is its agent id)."""
        if text:
            await self._emit({"event": "text", "node": agent_id, "agent_id": agent_id, "text": text})

    async def _emit(self, event: dict[str, str]) -> None:
        if self._broken:
            return
        self._count += 1
        try:
            await self._send(float(self._count), json.dumps(event, separators=(",", ":"), ensure_ascii=False))
        except Exception as exc:  # the caller went away: stop reporting, let the turn finish
            self._broken = True
            log.info(json.dumps({"event": "progress.dropped", "error": type(exc).__name__}))


TURN_PROGRESS: contextvars.ContextVar[TurnProgress | None] = contextvars.ContextVar("turn_progress", default=None)
"""The running turn's reporter; None: the caller did not ask for progress. Every task LangGraph starts for the
turn copies the caller's context, so the graph's nodes see it."""
