"""Streaming at the MCP edge: a request that carries a `progressToken` is answered on an SSE stream (its progress
notifications, then its result); every other request keeps the single JSON response of stateless streamable HTTP.

The SDK's stateless streamable HTTP chooses between JSON and SSE once per server (`json_response`), and in JSON
mode it drops a request's notifications (there is no wire for them). So the instance runs two session managers over
the same MCP server, and `ProgressRouter`, in front of the /mcp handler (behind the bearer-token check), reads the
request's body and hands it to the SSE manager when it asks for progress: a client that does not ask pays one
substring search of its body, and gets today's answer unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.telemetry.turn_progress import TURN_PROGRESS, TurnProgress

MCP_PATH = "/mcp"
TOKEN_KEY = b'"progressToken"'


def wants_progress(body: bytes) -> bool:
    """A JSON-RPC request whose `params._meta` carries a progress token (the substring test spares the parse)."""
    if TOKEN_KEY not in body:
        return False
    try:
        message = json.loads(body)
    except ValueError:
        return False
    params = message.get("params") if isinstance(message, dict) else None
    return isinstance(params, dict) and progress_token_from_params(params) is not None


class ProgressRouter:
    """Sends a POST that asks for progress to `streaming` (SSE), everything else to `plain` (JSON)."""

    def __init__(self, plain: ASGIApp, streaming: StreamableHTTPSessionManager) -> None:
        self.plain = plain
        self.streaming = streaming
        self.peek_limit = streaming.max_request_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.plain(scope, receive, send)
            return
        received: list[Message] = []
        size, complete = 0, False
        while size <= self.peek_limit:  # a larger body goes on as it is: the SDK's own limit refuses it
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        pending = iter(received)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        body = b"".join(m.get("body", b"") for m in received) if complete else b""
        if complete and wants_progress(body):
            await self.streaming.handle_request(scope, replay, send)
        else:
            await self.plain(scope, replay, send)


def route_progress_requests(
    app: Starlette, server: MCPServer, streaming: StreamableHTTPSessionManager
) -> StreamableHTTPSessionManager:
    """Puts a ProgressRouter in front of the /mcp handler of `app` (inside the bearer-token check, if any).
    `streaming` is the SSE session manager; the caller runs it (`streaming.run()`) in the app's lifespan."""
    for index, route in enumerate(app.router.routes):
        if isinstance(route, Route) and route.path == MCP_PATH:
            endpoint: Any = route.endpoint
            if isinstance(endpoint, RequireAuthMiddleware):
                endpoint.app = ProgressRouter(endpoint.app, streaming)
            else:
                app.router.routes[index] = Route(MCP_PATH, endpoint=ProgressRouter(endpoint, streaming))
            return streaming
    raise ValueError(f"the MCP app of {server.name} has no {MCP_PATH} route")


def streaming_manager(server: MCPServer, security: TransportSecuritySettings) -> StreamableHTTPSessionManager:
    """The SSE twin of the JSON session manager: stateless as well, so any task can still answer any request. Built
    through the SDK's own app factory, whose JSON twin the caller builds next (the server keeps the last built)."""
    server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=False, transport_security=security
    )
    return server.session_manager


@contextmanager
def progress_reported(ctx: Context[Any, Any] | None) -> Iterator[TurnProgress | None]:
    """While the block runs, the turn reports its progress to the request's caller, if it sent a progress token."""
    params = ctx.request_context.params if ctx is not None else None
    if ctx is None or progress_token_from_params(params) is None:
        yield None
        return
    context = ctx

    async def send(count: float, message: str) -> None:
        await context.report_progress(count, None, message)

    progress = TurnProgress(send)
    token = TURN_PROGRESS.set(progress)
    try:
        yield progress
    finally:
        TURN_PROGRESS.reset(token)
