"""A bound on the MCP sessions one caller holds on a task, beside the SDK's bound on all of the task's sessions.

Without it one client that opens a session per call and never closes one (each closes only after 1,800 s idle)
takes all MCP_MAX_SESSIONS of a task, and every other caller loses inline approval. A caller is the principal the
SDK binds a session to: the (client_id, iss, sub) of the bearer token that opened it (`principal_components`, the
SDK's one source for it). Under AUTH_MODE=none there is no principal, and only the task-wide bound applies.

A caller at its bound is not refused and none of its sessions is closed: its next opening `initialize` is served
statelessly (runtime.edge.mcp_routing), as when the task is full. Closing its oldest session instead would end a
session that may still carry a call waiting for its user's answer (idle is not the same as abandoned: a question
can stay open for minutes), and a client that cycles sessions would keep cutting its own live work short; a new
session costs the caller only the inline question (it is given the approval object), never work already under way,
and its old sessions still end by DELETE or after their idle time.

The SDK (2.3) offers no public hook for a session's end: `Connection.exit_stack` is unwound when it ends, but no
public attribute of a middleware's or handler's context reaches the connection. So the count is kept where the
SDK's manager itself admits and forgets a session: `_admit_session` (under the manager's creation lock, so two
concurrent `initialize`s of one caller cannot both pass the check) and `_discard_session`, which every end goes
through (client DELETE, idle timeout, a crashed or cancelled session task, an opening request that failed).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Scope

log = logging.getLogger("runtime.sessions")

Caller = tuple[str, str | None, str | None]
"""(client_id, issuer, subject): the SDK's AuthorizationContext as a key."""

_SDK_HOOKS = ("_admit_session", "_discard_session")
if not all(callable(getattr(StreamableHTTPSessionManager, name, None)) for name in _SDK_HOOKS):  # pragma: no cover
    raise ImportError(
        f"mcp's StreamableHTTPSessionManager no longer has {' and '.join(_SDK_HOOKS)}: the per-caller session "
        "bound (runtime.edge.caller_sessions) must be moved to the SDK's new session hooks before upgrading mcp"
    )


def requestor_of(scope: Scope) -> AuthorizationContext | None:
    """The principal the SDK binds a session opened by this request to (None: no authenticated caller), derived as
    the SDK's manager derives it."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def caller_key(requestor: AuthorizationContext) -> Caller:
    return requestor["client_id"], requestor["issuer"], requestor["subject"]


class CallerBoundSessionManager(StreamableHTTPSessionManager):
    """The SDK's stateful session manager, which also admits at most `max_sessions_per_caller` open sessions per
    caller: past that, the opening request gets the same 503 as past `max_sessions` (which the edge turns into a
    stateless answer)."""

    def __init__(
        self,
        app: Server[Any],
        *,
        security_settings: TransportSecuritySettings,
        session_idle_timeout: float,
        max_sessions: int,
        max_sessions_per_caller: int,
    ) -> None:
        if max_sessions_per_caller <= 0:
            raise ValueError(f"max_sessions_per_caller must be a positive number, got {max_sessions_per_caller}")
        super().__init__(
            app,
            json_response=False,
            stateless=False,
            security_settings=security_settings,
            session_idle_timeout=session_idle_timeout,
            max_sessions=max_sessions,
        )
        self.max_sessions_per_caller = max_sessions_per_caller
        self._held: Counter[Caller] = Counter()
        self._callers: dict[str, Caller] = {}
        """Session id -> the caller that opened it, for the sessions counted in `_held`."""

    def sessions_held(self, requestor: AuthorizationContext | None) -> int:
        """Open sessions of this caller on this task (0 without a caller: they are not counted)."""
        return self._held[caller_key(requestor)] if requestor is not None else 0

    def holds_all(self, requestor: AuthorizationContext | None) -> bool:
        """The caller holds as many sessions as it may: its next `initialize` is served without one."""
        return requestor is not None and self.sessions_held(requestor) >= self.max_sessions_per_caller

    def refuses(self, scope: Scope) -> bool:
        """Checked before a request reaches the manager, so a caller at its bound is told apart from a full task in
        the log (the manager checks again under its lock)."""
        requestor = requestor_of(scope)
        if not self.holds_all(requestor):
            return False
        assert requestor is not None
        log.info(
            json.dumps(
                {
                    "event": "mcp_session_not_opened",
                    "reason": "caller_holds_max_sessions",
                    "client_id": requestor["client_id"],
                    "sessions_held": self.sessions_held(requestor),
                    "max_sessions_per_caller": self.max_sessions_per_caller,
                }
            )
        )
        return True

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if self.holds_all(requestor):
            return None
        transport = super()._admit_session(requestor)
        if transport is not None and requestor is not None and transport.mcp_session_id is not None:
            caller = caller_key(requestor)
            self._callers[transport.mcp_session_id] = caller
            self._held[caller] += 1
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        caller = self._callers.pop(session_id, None)  # once per session: a second discard finds nothing
        if caller is not None:
            self._held[caller] -= 1
            if self._held[caller] <= 0:
                del self._held[caller]
        await super()._discard_session(session_id, transport)
