"""The instance's public surface: an MCP server (streamable HTTP at /mcp, or stdio) with the tools invoke,
describe and status, plus plain GET /healthz, /readyz and /metrics for the load balancer and operators.

Stateless streamable HTTP with JSON responses: any task behind the load balancer can answer any request, so no
sticky sessions are needed. SIGTERM flips the instance to draining (readyz 503, new invokes refused), lets
in-flight requests finish, and exits 0 within DRAIN_SECONDS.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from runtime.instance import Instance, InvokeResult

log = logging.getLogger("runtime.server")
MAX_MESSAGE_CHARS = 1_000_000
"""A hard ceiling before the graph runs; the governance policy sets the real (smaller) limit."""


def build_mcp_server(instance: Instance) -> MCPServer:
    name = instance.bundle.instance.metadata.name
    server: MCPServer = MCPServer(
        name,
        instructions=f"Agent Foundry instance {name}: call `invoke` with a message and a thread id.",
        log_level="WARNING",
    )

    @server.tool()
    async def invoke(
        message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS, description="The request text.")],
        thread_id: Annotated[str, Field(max_length=256, description="Conversation id.")] = "default",
        tenant: Annotated[str | None, Field(max_length=256, description="Caller's tenant, for tenant rules.")] = None,
    ) -> Annotated[CallToolResult, InvokeResult]:
        """Run the message through the instance's agents; returns the answer and the per-node trace."""
        result = await instance.invoke(message, thread_id, tenant)
        payload = result.model_dump(mode="json")
        text = result.answer if result.ok and result.answer is not None else f"error: {result.error}"
        return CallToolResult(
            content=[TextContent(type="text", text=text or "")], structured_content=payload, is_error=not result.ok
        )

    @server.tool()
    async def describe() -> dict[str, Any]:
        """Identity, agents, workers and bundle hash of this instance."""
        return instance.describe()

    @server.tool()
    async def status() -> dict[str, Any]:
        """Health and metrics of this process."""
        return instance.status()

    return server


def build_http_app(instance: Instance) -> Starlette:
    server = build_mcp_server(instance)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready = instance.ready and not instance.draining
        body = {"ready": ready, "draining": instance.draining, "bundle_hash": instance.bundle.content_hash}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return PlainTextResponse(instance.metrics.prometheus(instance.prometheus_labels()))

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=instance.config.host_allow_list(),
        allowed_origins=[f"{scheme}://{h}" for h in instance.config.host_allow_list() for scheme in ("http", "https")],
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=security
    )
    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])
    mcp_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Starlette) -> AsyncIterator[None]:
        await instance.start()
        try:
            async with mcp_lifespan(app_):
                # Everything built at start-up (modules, bundle, graph, schemas) lives as long as the process:
                # moving it out of the collector's view keeps full collections short, which shows in p99.
                gc.collect()
                gc.freeze()
                yield
        finally:
            await instance.stop()

    app.router.lifespan_context = lifespan
    return app


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT mark the instance draining first and the process then exits 0 (uvicorn would
    re-raise the signal after its graceful shutdown, which ECS reports as a crash)."""

    def __init__(self, config: uvicorn.Config, instance: Instance) -> None:
        super().__init__(config)
        self.instance = instance

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
            return
        self.instance.draining = True
        log.info('{"event": "draining", "signal": %d}', sig)
        self.should_exit = True


async def serve_http(instance: Instance) -> None:
    config = instance.config
    uv_config = uvicorn.Config(
        build_http_app(instance),
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools",  # pinned in the image; its C parser costs less per request than h11
        timeout_graceful_shutdown=max(1, int(config.drain_seconds)),
        timeout_keep_alive=65,  # above the ALB's 60 s idle timeout, so the ALB closes first
    )
    await DrainingServer(uv_config, instance).serve()


async def serve_stdio(instance: Instance) -> None:
    await instance.start()
    try:
        await build_mcp_server(instance).run_stdio_async()
    finally:
        await instance.stop()
