"""W3C trace context from a caller's HTTP headers (`traceparent`, `tracestate`): the request runs with that context
current, so the MCP server's span, and everything under it, continues the caller's trace. A `traceparent` in the
MCP request's `_meta` (the SDK's server middleware reads it) takes precedence over the header."""

from __future__ import annotations

from opentelemetry import context, propagate
from starlette.types import ASGIApp, Receive, Scope, Send

HEADERS = (b"traceparent", b"tracestate")


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in HEADERS}
        if "traceparent" not in carrier:
            await self.app(scope, receive, send)
            return
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
