"""The per-caller session bound in the SDK's own stateful manager, in process: a real MCPServer behind the real
CallerBoundSessionManager, over real HTTP requests (httpx's ASGI transport). The caller is put on each request as the
SDK's bearer-token middleware puts it (the tokens themselves are checked in test_runtime_approvals, which runs the
same bound in a real process with real tokens); the idle timeout is short here so that its end of a session can be
seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from runtime.config import ConfigError, config_from_env
from runtime.edge.caller_sessions import CallerBoundSessionManager
from runtime.edge.sessions_http import session_manager

ISSUER = "https://issuer.example"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)


def requestor(subject: str) -> AuthorizationContext:
    return AuthorizationContext(client_id="desk-app", issuer=ISSUER, subject=subject)


class AsCaller:
    """Sets the authenticated user the SDK's bearer middleware would set for the `X-Subject` header's caller (no
    header: no authenticated caller, as under AUTH_MODE=none)."""

    def __init__(self, manager: CallerBoundSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subject = dict(scope["headers"]).get(b"x-subject")
        if subject is not None:
            token = AccessToken(
                token="t", client_id="desk-app", scopes=[], subject=subject.decode(), claims={"iss": ISSUER}
            )
            scope = {**scope, "user": AuthenticatedUser(token)}
        await self.manager.handle_request(scope, receive, send)


@asynccontextmanager
async def running(
    per_caller: int, *, idle_seconds: float = 60.0
) -> AsyncIterator[tuple[CallerBoundSessionManager, httpx.AsyncClient]]:
    server = MCPServer("sessions")
    server.streamable_http_app(stateless_http=False, transport_security=SECURITY)
    manager = CallerBoundSessionManager(
        server.session_manager.app,
        security_settings=SECURITY,
        session_idle_timeout=idle_seconds,
        max_sessions=100,
        max_sessions_per_caller=per_caller,
    )
    transport = httpx.ASGITransport(app=AsCaller(manager))
    async with manager.run(), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield manager, http


async def open_session(http: httpx.AsyncClient, subject: str | None, **headers: str) -> httpx.Response:
    caller = {"X-Subject": subject} if subject is not None else {}
    return await http.post("/mcp", json=INITIALIZE, headers={**HEADERS, **caller, **headers})


async def test_a_caller_past_its_bound_gets_the_managers_503_and_another_caller_still_opens_a_session() -> None:
    async with running(per_caller=2) as (manager, http):
        opened = [await open_session(http, "alice") for _ in range(2)]
        assert all(r.status_code == 200 and "mcp-session-id" in r.headers for r in opened)
        refused = await open_session(http, "alice")
        assert refused.status_code == 503 and "mcp-session-id" not in refused.headers
        assert (await open_session(http, "bob")).status_code == 200
        assert manager.sessions_held(requestor("alice")) == 2
        assert manager.sessions_held(requestor("bob")) == 1


async def test_concurrent_initializes_of_one_caller_open_no_more_sessions_than_its_bound() -> None:
    """The check is made where the SDK admits a session, under its lock: a burst cannot slip past it."""
    async with running(per_caller=2) as (manager, http):
        answers = await asyncio.gather(*(open_session(http, "alice") for _ in range(8)))
        assert sorted(a.status_code for a in answers) == [200] * 2 + [503] * 6
        assert manager.sessions_held(requestor("alice")) == 2


async def test_a_session_ended_by_its_idle_timeout_gives_its_caller_room_again() -> None:
    async with running(per_caller=1, idle_seconds=0.3) as (manager, http):
        assert (await open_session(http, "alice")).status_code == 200
        assert (await open_session(http, "alice")).status_code == 503
        async with asyncio.timeout(10):
            while manager.sessions_held(requestor("alice")):
                await asyncio.sleep(0.05)
        reopened = await open_session(http, "alice")
        assert reopened.status_code == 200 and "mcp-session-id" in reopened.headers


async def test_opening_requests_that_fail_leave_no_count_behind() -> None:
    """The SDK admits the session, then its transport refuses the request (here: no text/event-stream in Accept) and
    the session is discarded: the caller's count must not keep it."""
    async with running(per_caller=1) as (manager, http):
        for _ in range(3):
            failed = await open_session(http, "alice", Accept="application/json")
            assert failed.status_code == 406
        assert manager.sessions_held(requestor("alice")) == 0
        assert (await open_session(http, "alice")).status_code == 200


async def test_a_session_deleted_by_its_client_gives_its_caller_room_again() -> None:
    async with running(per_caller=1) as (manager, http):
        session = (await open_session(http, "alice")).headers["mcp-session-id"]
        in_session = {**HEADERS, "X-Subject": "alice", "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        assert (await http.delete("/mcp", headers=in_session)).status_code == 200
        assert manager.sessions_held(requestor("alice")) == 0
        assert (await open_session(http, "alice")).status_code == 200


async def test_without_an_authenticated_caller_only_the_task_wide_bound_applies() -> None:
    """AUTH_MODE=none: no principal, so no caller to count; the SDK's max_sessions still bounds the task."""
    async with running(per_caller=1) as (manager, http):
        answers = [await open_session(http, None) for _ in range(3)]
        assert all(a.status_code == 200 and "mcp-session-id" in a.headers for a in answers)
        assert manager.sessions_held(None) == 0


def test_the_runtime_builds_its_session_manager_with_both_bounds() -> None:
    manager = session_manager(MCPServer("bounds"), SECURITY, max_sessions=7, max_sessions_per_caller=3)
    assert (manager.max_sessions, manager.max_sessions_per_caller, manager.stateless) == (7, 3, False)


def test_mcp_max_sessions_per_caller_is_read_from_the_environment_and_a_bad_value_is_named() -> None:
    assert config_from_env({}, bundle="b.tar.gz").max_sessions_per_caller == 20
    assert config_from_env({"MCP_MAX_SESSIONS_PER_CALLER": "2"}, bundle="b.tar.gz").max_sessions_per_caller == 2
    bad: dict[str, Any] = {
        "0": "MCP_MAX_SESSIONS_PER_CALLER must be between 1 and 100000, got 0",
        "100001": "MCP_MAX_SESSIONS_PER_CALLER must be between 1 and 100000, got 100001",
        "many": "MCP_MAX_SESSIONS_PER_CALLER must be an integer, got 'many'",
    }
    for value, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            config_from_env({"MCP_MAX_SESSIONS_PER_CALLER": value}, bundle="b.tar.gz")
