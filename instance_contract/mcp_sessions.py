"""Stateful MCP sessions at an instance's edge, and how its load balancer keeps a session on the task that holds it.

The instance answers every request statelessly (any task, any request) except one kind of client: a 2025-11-25 (or
older, initialize-handshake) client that declares elicitation, on an instance whose policy makes tool calls wait
for approval. That client gets a session (`Mcp-Session-Id`), so the runtime can ask it for the approval on the
`invoke` call's own stream and its answer, a separate POST, reaches the turn waiting for it. A session lives in one
task's memory: the runtime marks every response of a session with SESSION_COOKIE, and the instance's target group
sticks a client that returns that cookie (application-cookie stickiness) to the task that set it. The turn itself
does not depend on the session: its approval is kept in the instance's store, so a lost session (a task stopped, a
client without cookies) leaves an approval that `approve` still decides.
"""

from __future__ import annotations

from typing import Final

SESSION_COOKIE: Final = "af-mcp-session"
"""The application cookie the runtime sets on a session's responses and the target group's stickiness follows."""

SESSION_IDLE_SECONDS: Final = 1800
"""A session with no request in flight for this long is closed (its id then answers 404 and the client opens a new
one); the stickiness lasts as long, so it never outlives nor undercuts the session it serves."""

MAX_SESSIONS_PER_TASK: Final = 1000
"""Open sessions one task holds at most by default (the runtime's MCP_MAX_SESSIONS). A client that would open one
more is served without a session: stateless, so it is given the approval object instead of being asked inline."""

MAX_SESSIONS_PER_CALLER: Final = 20
"""Open sessions one caller (the principal of the token that opened them) holds on one task at most by default (the
runtime's MCP_MAX_SESSIONS_PER_CALLER), so that one client that never closes its sessions cannot take all of a task's:
its next one is served without a session, like any client past the task's bound. Twenty leaves room for a person's
several clients and windows, each with its own session."""
