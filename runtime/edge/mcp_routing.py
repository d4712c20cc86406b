"""Which of the instance's three session managers answers a request to /mcp.

- A request that names a session (`Mcp-Session-Id`), or an `initialize` that opens one (sessions_http.opens_session,
  only where the instance's policy makes tool calls wait for approval): the stateful manager, whose responses
  carry the load balancer's stickiness cookie. When the task holds as many sessions as it may, or the caller does
  (caller_sessions), the `initialize` is served statelessly instead: the client connects, and is given approval
  objects rather than asked inline.
- A POST that carries a progress token: the stateless SSE manager (progress_http).
- Everything else: the stateless JSON manager, the SDK's own /mcp handler.

`McpRouter` sits in front of that handler, inside the bearer-token check, and reads a POST's body once (a body over
the SDK's size limit goes on unread, and the SDK's own limit refuses it).
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.edge.caller_sessions import CallerBoundSessionManager
from runtime.edge.progress_http import MCP_PATH, wants_progress
from runtime.edge.sessions_http import StickySession, names_session, opens_session


class McpRouter:
    """`plain` (JSON), `streaming` (SSE, stateless) or `sessions` (stateful; None: the instance opens none)."""

    def __init__(
        self, plain: ASGIApp, streaming: StreamableHTTPSessionManager, sessions: CallerBoundSessionManager | None
    ) -> None:
        self.plain = plain
        self.streaming = streaming
        self.sessions = StickySession(sessions) if sessions is not None else None
        self.peek_limit = streaming.max_request_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.plain(scope, receive, send)
            return
        if self.sessions is not None and names_session(scope):
            await self.sessions(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await self.plain(scope, receive, send)
            return
        received: list[Message] = []
        size, complete = 0, False
        while size <= self.peek_limit:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break

        def replayed() -> Receive:
            pending = iter(received)

            async def replay() -> Message:
                return next(pending, None) or await receive()

            return replay

        body = b"".join(m.get("body", b"") for m in received) if complete else b""
        if self.sessions is not None and complete and opens_session(body):
            if not await self.sessions.open(scope, replayed(), send):  # task or caller full: no session
                await self.plain(scope, replayed(), send)
        elif complete and wants_progress(body):
            await self.streaming.handle_request(scope, replayed(), send)
        else:
            await self.plain(scope, replayed(), send)


def route_mcp_requests(
    app: Starlette,
    server: MCPServer,
    streaming: StreamableHTTPSessionManager,
    sessions: CallerBoundSessionManager | None,
) -> None:
    """Puts an McpRouter in front of the /mcp handler of `app` (inside the bearer-token check, if any). The caller
    runs `streaming` and `sessions` (their `run()`) in the app's lifespan."""
    for index, route in enumerate(app.router.routes):
        if isinstance(route, Route) and route.path == MCP_PATH:
            endpoint: Any = route.endpoint
            if isinstance(endpoint, RequireAuthMiddleware):
                endpoint.app = McpRouter(endpoint.app, streaming, sessions)
            else:
                app.router.routes[index] = Route(MCP_PATH, endpoint=McpRouter(endpoint, streaming, sessions))
            return
    raise ValueError(f"the MCP app of {server.name} has no {MCP_PATH} route")
