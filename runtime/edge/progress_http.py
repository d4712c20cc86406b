"""Streaming at the MCP edge: a request that carries a `progressToken` is answered on an SSE stream (its progress
notifications, then its result); every other request keeps the single JSON response of stateless streamable HTTP.

The SDK's stateless streamable HTTP chooses between JSON and SSE once per server (`json_response`), and in JSON
mode it drops a request's notifications (there is no wire for them). So the instance runs a second, SSE-mode
session manager over the same MCP server, and `mcp_routing.McpRouter` hands it the requests that ask for progress:
a client that does not ask pays one substring search of its body, and gets today's answer unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from runtime.telemetry.turn_progress import TURN_PROGRESS, TurnProgress

MCP_PATH = "/mcp"
TOKEN_KEY = b'"progressToken"'


def request_params(body: bytes, key: bytes) -> tuple[str, dict[str, Any]] | None:
    """A JSON-RPC request's method and params, if its body holds `key` at all (the substring test spares most
    bodies the parse)."""
    if key not in body:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    params = message.get("params") if isinstance(message, dict) else None
    return (str(message.get("method")), params) if isinstance(params, dict) else None


def wants_progress(body: bytes) -> bool:
    """A JSON-RPC request whose `params._meta` carries a progress token."""
    request = request_params(body, TOKEN_KEY)
    return request is not None and progress_token_from_params(request[1]) is not None


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
