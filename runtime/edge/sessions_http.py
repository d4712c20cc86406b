"""Stateful MCP sessions, only for the clients that need one: a 2025-11-25 client that can elicit, on an instance
whose policy makes tool calls wait for approval (instance_contract.mcp_sessions says why and how a session stays on
its task).

Over stateless HTTP such a client cannot be asked anything: the SDK gives each POST its own transport that cannot
send a request, and the client's answer, a separate POST, would have no session to land in. So its `initialize`
goes to a third session manager, a stateful one (SSE responses, the SDK's idle timeout, a bound on open sessions,
each session bound to the credential that opened it, and a bound per caller: caller_sessions), and so does every
request that names a session. Every other request keeps the stateless managers (see progress_http).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Message, Receive, Scope, Send

from instance_contract.mcp_sessions import SESSION_COOKIE, SESSION_IDLE_SECONDS
from runtime.edge.caller_sessions import CallerBoundSessionManager
from runtime.edge.progress_http import MCP_PATH, request_params

SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
INITIALIZE_KEY = b'"initialize"'
STICKY_COOKIE = f"{SESSION_COOKIE}=1; Max-Age={SESSION_IDLE_SECONDS}; Path={MCP_PATH}; HttpOnly; SameSite=Strict"
"""Names nothing (the session id travels in its header, bound to the caller's credential): it only marks the
response for the load balancer's stickiness."""


def session_manager(
    server: MCPServer, security: TransportSecuritySettings, max_sessions: int, max_sessions_per_caller: int
) -> CallerBoundSessionManager:
    """The stateful manager: the SDK's, bounded per caller as well (caller_sessions), over the low-level server the
    SDK's own app factory serves (the server keeps the last manager built; the caller builds the JSON twin last).
    `max_sessions`, `max_sessions_per_caller`: the runtime's MCP_MAX_SESSIONS and MCP_MAX_SESSIONS_PER_CALLER."""
    server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=False, transport_security=security)
    return CallerBoundSessionManager(
        server.session_manager.app,
        security_settings=security,
        session_idle_timeout=SESSION_IDLE_SECONDS,
        max_sessions=max_sessions,
        max_sessions_per_caller=max_sessions_per_caller,
    )


def names_session(scope: Scope) -> bool:
    """The request carries an Mcp-Session-Id: only the stateful manager knows it (or answers 404 for it)."""
    return any(key == SESSION_HEADER for key, _ in scope.get("headers", ()))


def opens_session(body: bytes) -> bool:
    """An `initialize` of a handshake-era client (2025-11-25 and older) that declares elicitation."""
    request = request_params(body, INITIALIZE_KEY)
    if request is None or request[0] != "initialize":
        return False
    params = request[1]
    if params.get("protocolVersion") not in HANDSHAKE_PROTOCOL_VERSIONS:
        return False
    capabilities = params.get("capabilities")
    return isinstance(capabilities, dict) and isinstance(capabilities.get("elicitation"), dict)


class StickySession:
    """Serves a request through the stateful manager and marks each response that names a session with the
    stickiness cookie, so the load balancer sends the session's next requests to this task."""

    def __init__(self, manager: CallerBoundSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, _marking(send))

    async def open(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serves an opening `initialize`; False, having sent nothing, when the task holds all the sessions it may
        or the caller all those it may (the manager's 503): the caller then serves the request statelessly, so the
        client still connects, without a session."""
        if self.manager.refuses(scope):
            return False
        full = False

        async def unless_full(message: Message) -> None:
            nonlocal full
            if message["type"] == "http.response.start" and message["status"] == FULL:
                full = True
            if not full:
                await send(message)

        await self.manager.handle_request(scope, receive, _marking(unless_full))
        return not full


FULL = 503
"""The SDK's answer to a request that would open a session past `max_sessions` (or, here, past the caller's
bound)."""


def _marking(send: Send) -> Send:
    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if any(key.lower() == SESSION_HEADER for key, _ in headers):
                headers.append((b"set-cookie", STICKY_COOKIE.encode("latin-1")))
                message = {**message, "headers": headers}
        await send(message)

    return marked
