"""External MCP servers, reached only from the instance's backend (the manifests' `spec.mcp.servers`).

Each server's tools are listed on first use and cached, and re-exposed namespaced (`ticketing.create_ticket`).
Every call opens a streamable-HTTP session with the SDK's client, sends the instance's secret as a bearer token,
and runs under the server's time limit. The SDK's httpx client runs on runtime.backend.egress_http's transport: it
connects only to addresses the egress rule allows, and stops reading an answer (or a listing) once it is past the
server's size limit, so a huge answer never sits in memory. A server that cannot be reached, is refused, or answers too
much fails its own tools with an error naming it, and nothing else.

The token is read from the task's secrets when a call is made, put only in the Authorization header, and never
logged or returned: errors name the secret, never its value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import propagate

from instance_contract.schema import ExternalMcpServer
from runtime.backend.egress_http import EgressPolicy, EgressTransport, Exchange
from runtime.config import Secrets, secret_env_name

T = TypeVar("T")

ENVELOPE_BYTES = 65_536
"""Allowance over max_response_bytes for what wraps a result on the wire (JSON-RPC envelope, SSE framing)."""


class ExternalToolError(RuntimeError):
    """An external tool could not be listed or called; the message names server and tool, never a secret."""


@dataclass(frozen=True)
class ExternalTool:
    """One tool of an external server, as agents see it."""

    name: str
    """`<server>.<tool>`."""
    server: str
    tool: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ExternalResult:
    text: str
    data: dict[str, Any] | None


def split_tool_name(name: str) -> tuple[str, str] | None:
    """'ticketing.create_ticket' -> ('ticketing', 'create_ticket'); a backend tool name -> None."""
    server, dot, tool = name.partition(".")
    return (server, tool) if dot and server and tool else None


class ExternalServers:
    """The instance's external MCP servers. One per process; safe to share between concurrent requests."""

    def __init__(self, servers: list[ExternalMcpServer], secrets: Secrets, egress: EgressPolicy | None = None) -> None:
        self._servers = {server.name: server for server in servers}
        self._secrets = secrets
        self._egress = egress or EgressPolicy()
        self._tools: dict[str, list[ExternalTool]] = {}
        self._locks = {name: asyncio.Lock() for name in self._servers}

    @property
    def names(self) -> list[str]:
        return sorted(self._servers)

    def owns(self, name: str) -> bool:
        parts = split_tool_name(name)
        return parts is not None and parts[0] in self._servers

    async def tools(self, server_name: str) -> list[ExternalTool]:
        """The server's tools, listed once and cached; raises ExternalToolError if it cannot be listed."""
        cached = self._tools.get(server_name)
        if cached is not None:
            return cached
        server = self._server(server_name)
        async with self._locks[server_name]:
            if server_name not in self._tools:
                listed = await self._run(
                    server,
                    "listing tools",
                    Exchange(limit=server.max_listing_bytes),
                    "max_listing_bytes",
                    lambda exchange: self._list(server, exchange),
                )
                self._tools[server_name] = listed
        return self._tools[server_name]

    async def all_tools(self) -> list[ExternalTool]:
        """Every reachable server's tools; an unreachable server contributes none (its calls fail on their own)."""
        found: list[ExternalTool] = []
        for name in self.names:
            try:
                found.extend(await self.tools(name))
            except ExternalToolError:
                continue
        return found

    async def call(self, name: str, arguments: dict[str, Any]) -> ExternalResult:
        parts = split_tool_name(name)
        if parts is None or parts[0] not in self._servers:
            raise ExternalToolError(f"{name!r} is not a tool of a declared MCP server ({', '.join(self.names)})")
        server = self._servers[parts[0]]
        result = await self._run(
            server,
            f"calling {parts[1]}",
            Exchange(limit=server.max_response_bytes + ENVELOPE_BYTES),
            "max_response_bytes",
            lambda exchange: self._call(server, parts[1], arguments, exchange),
        )
        content = [block.model_dump(mode="json", by_alias=True) for block in result.content]
        size = len(json.dumps([content, result.structured_content], ensure_ascii=False).encode("utf-8"))
        if size > server.max_response_bytes:
            raise ExternalToolError(
                f"MCP server {server.name!r} answered {name} with {size} bytes; the limit is "
                f"{server.max_response_bytes} (max_response_bytes)"
            )
        text = " ".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error:
            raise ExternalToolError(f"tool {name} of MCP server {server.name!r} failed: {text or 'no detail'}")
        data = result.structured_content if isinstance(result.structured_content, dict) else None
        return ExternalResult(text=text or json.dumps(data, sort_keys=True), data=data)

    def _server(self, name: str) -> ExternalMcpServer:
        server = self._servers.get(name)
        if server is None:
            raise ExternalToolError(f"no MCP server {name!r} is declared ({', '.join(self.names) or 'none'})")
        return server

    def _headers(self, server: ExternalMcpServer) -> dict[str, str]:
        if server.bearer_secret is None:
            return {}
        token = self._secrets.get(server.bearer_secret)
        if not token:
            raise ExternalToolError(
                f"MCP server {server.name!r} needs secret {server.bearer_secret!r}, which has no value in this task "
                f"({secret_env_name(server.bearer_secret)} is not set)"
            )
        return {"Authorization": f"Bearer {token}"}

    def _client(self, server: ExternalMcpServer, http: httpx2.AsyncClient, exchange: Exchange) -> Client:
        """The SDK's client; its own limit on one SSE event (1 MiB by default) follows the operation's limit, so an
        answer within max_response_bytes arrives whether the server streams it as SSE or as JSON."""
        transport = streamable_http_client(server.url, http_client=http, max_sse_event_size=exchange.limit)
        return Client(transport, read_timeout_seconds=server.timeout_seconds)

    def _http(self, server: ExternalMcpServer, exchange: Exchange) -> httpx2.AsyncClient:
        """An HTTP client sending the bearer token over the egress transport, which notes what it refused and the
        statuses it saw (the SDK's client reports a 401/403 only as a generic error response). Each request carries
        the current W3C trace context as a `traceparent` header (the SDK's client also puts it in the request's
        `_meta`), so the server's spans join the instance's trace."""
        return httpx2.AsyncClient(
            headers=self._headers(server),
            timeout=server.timeout_seconds,
            transport=EgressTransport(self._egress, exchange),
            trust_env=False,  # no proxy from the environment: the transport connects only to addresses it checked
            event_hooks={"request": [_carry_trace_context]},
        )

    async def _list(self, server: ExternalMcpServer, exchange: Exchange) -> list[ExternalTool]:
        async with self._http(server, exchange) as http, self._client(server, http, exchange) as client:
            listed = await client.list_tools()
        return [
            ExternalTool(
                name=f"{server.name}.{tool.name}",
                server=server.name,
                tool=tool.name,
                description=tool.description or "",
                input_schema=dict(tool.input_schema or {}),
            )
            for tool in listed.tools
        ]

    async def _call(
        self, server: ExternalMcpServer, tool: str, arguments: dict[str, Any], exchange: Exchange
    ) -> types.CallToolResult:
        async with self._http(server, exchange) as http, self._client(server, http, exchange) as client:
            return await client.call_tool(tool, arguments)

    async def _run(
        self,
        server: ExternalMcpServer,
        doing: str,
        exchange: Exchange,
        limit_name: str,
        work: Callable[[Exchange], Awaitable[T]],
    ) -> T:
        try:
            async with asyncio.timeout(server.timeout_seconds):
                return await work(exchange)
        except ExternalToolError:
            raise
        except TimeoutError:
            raise ExternalToolError(
                f"MCP server {server.name!r} did not answer within {server.timeout_seconds:g} s ({doing})"
            ) from None
        except Exception as exc:  # connection refused, HTTP errors, protocol errors: all one server's failure
            if exchange.refusal is not None:
                raise ExternalToolError(
                    f"MCP server {server.name!r} ({server.url}) was not contacted ({doing}): {exchange.refusal}"
                ) from None
            if exchange.overflow:
                limit = getattr(server, limit_name)
                raise ExternalToolError(
                    f"MCP server {server.name!r} answered {doing} with more than {exchange.limit} bytes; the limit "
                    f"is {limit} ({limit_name}); the transfer was stopped"
                ) from None
            refused = [status for status in exchange.statuses if status in (401, 403)]
            if refused:
                raise ExternalToolError(
                    f"MCP server {server.name!r} refused the instance's token (HTTP {refused[0]}) {doing}; check the "
                    f"value of secret {server.bearer_secret!r}"
                    if server.bearer_secret
                    else f"MCP server {server.name!r} needs a token (HTTP {refused[0]}); give it a bearer_secret"
                ) from None
            detail = _describe(exc)
            raise ExternalToolError(f"MCP server {server.name!r} ({server.url}) failed {doing}: {detail}") from None


async def _carry_trace_context(request: httpx2.Request) -> None:
    propagate.inject(request.headers)


def _describe(exc: BaseException) -> str:
    """The innermost useful cause, with the HTTP status if there is one (401: the token was refused)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(exc)
    for leaf in leaves:
        response = getattr(leaf, "response", None)
        status = getattr(response, "status_code", None)
        if status in (401, 403):
            return f"HTTP {status}: the server refused the instance's token (check the bearer secret's value)"
        if status is not None:
            return f"HTTP {status}"
    first = leaves[0] if leaves else exc
    return f"{type(first).__name__}: {str(first)[:300]}" if str(first) else type(first).__name__
