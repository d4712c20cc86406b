"""A real external MCP server for the tests: the SDK's MCPServer over streamable HTTP on 127.0.0.1 (a free port,
served by uvicorn in a thread), requiring a bearer token through the SDK's own auth (a TokenVerifier).

It records the tokens it was shown, the tickets it created and the W3C trace context each tool call carried (the
HTTP `traceparent` header and the MCP `_meta.traceparent`), so a test can check what the instance sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

TOOL_DESCRIPTIONS = {
    "create_ticket": "Open a new ticket in the tracker for a bug, incident or outage.",
    "export_report": "Export a large quarterly report.",
    "slow_lookup": "Look up archived records slowly.",
}


class Ticket(BaseModel):
    id: str
    summary: str


@dataclass
class TicketingServer:
    url: str
    expected_token: str
    tokens_seen: list[str] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    traceparent_headers: list[str] = field(default_factory=list)
    """The `traceparent` header of every HTTP request that had one."""
    traceparent_meta: list[str] = field(default_factory=list)
    """The `_meta.traceparent` of every tools/call that had one."""
    create_seconds: float = 0.0
    """How long create_ticket takes to answer once it made the ticket (a test sets it to catch a call in flight)."""
    creating: int = 0
    """create_ticket calls in flight."""


class _Verifier:
    def __init__(self, state: TicketingServer) -> None:
        self.state = state

    async def verify_token(self, token: str) -> AccessToken | None:
        self.state.tokens_seen.append(token)
        if token != self.state.expected_token:
            return None
        return AccessToken(token=token, client_id="agent-instance", scopes=["tickets"])


class _MetaRecorder(ServerMiddleware[Any]):
    def __init__(self, state: TicketingServer) -> None:
        self.state = state

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        traceparent = (ctx.meta or {}).get("traceparent")
        if ctx.method == "tools/call" and isinstance(traceparent, str):
            self.state.traceparent_meta.append(traceparent)
        return await call_next(ctx)


def _recording_headers(app: ASGIApp, state: TicketingServer) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = dict(scope["headers"]).get(b"traceparent")
            if found is not None:
                state.traceparent_headers.append(found.decode())
        await app(scope, receive, send)

    return wrapped


def _build(state: TicketingServer, port: int, report_bytes: int) -> MCPServer:
    base = f"http://127.0.0.1:{port}"
    server = MCPServer(
        "ticketing",
        token_verifier=_Verifier(state),
        auth=AuthSettings(
            issuer_url=f"{base}/issuer",
            resource_server_url=f"{base}/mcp",
            required_scopes=["tickets"],
            validate_token_resource=False,
        ),
        log_level="WARNING",
        middleware=[_MetaRecorder(state)],
    )

    @server.tool(description=TOOL_DESCRIPTIONS["create_ticket"])
    async def create_ticket(summary: str, severity: str = "medium") -> Ticket:
        ticket = Ticket(id=f"TCK-{len(state.tickets) + 1}", summary=summary)
        state.tickets.append(ticket)  # made at once: a caller lost while waiting for the answer still made it
        state.creating += 1
        try:
            await asyncio.sleep(state.create_seconds)
        finally:
            state.creating -= 1
        return ticket

    @server.tool(description=TOOL_DESCRIPTIONS["export_report"])
    async def export_report(quarter: str) -> str:
        return "x" * report_bytes

    @server.tool(description=TOOL_DESCRIPTIONS["slow_lookup"])
    async def slow_lookup(query: str) -> str:
        await asyncio.sleep(5)
        return "too late"

    return server


@contextmanager
def serve_ticketing(expected_token: str, *, report_bytes: int = 20_000) -> Iterator[TicketingServer]:
    """Starts the server on a free port; stops it (and its thread) on exit."""
    import socket

    with socket.socket() as probe:  # the auth settings need the URL before the server binds; the port is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = TicketingServer(url=f"http://127.0.0.1:{port}/mcp", expected_token=expected_token)
    app = _recording_headers(_build(state, port, report_bytes).streamable_http_app(), state)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="ticketing-mcp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ticketing MCP server did not start")
        time.sleep(0.02)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=20)
