"""The Foundry MCP server over streamable HTTP with JWTs from a local issuer on 127.0.0.1 (real keys, JWKS over
HTTP) besides the static token: `foundry:read` for every call, `foundry:deploy` as well for deploy_instance."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from oauth_resource.dev_issuer import RunningIssuer, generate_key, serve_issuer
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT, ServerProcess, http_server

pytestmark = pytest.mark.slow

STATIC = "static-token-0123456789abcdef"
AUDIENCE = "https://foundry.example.com/mcp"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


@pytest.fixture(scope="module")
def server(issuer: RunningIssuer) -> Iterator[ServerProcess]:
    args = ("--auth-issuer", issuer.url, "--auth-audience", AUDIENCE)
    with http_server(STATIC, extra_args=args) as running:
        yield running


def token(issuer: RunningIssuer, scopes: str, **changes: Any) -> str:
    return issuer.issuer.mint(
        subject="ci-pipeline", organization="platform", audience=AUDIENCE, scopes=scopes.split(), extra=changes
    )


@asynccontextmanager
async def client(url: str, bearer: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=httpx2.Timeout(120)) as http,
        Client(streamable_http_client(url, http_client=http)) as session,
    ):
        yield session


def refused(error: BaseException) -> bool:
    return isinstance(error, MCPError) or (
        isinstance(error, BaseExceptionGroup) and error.subgroup(MCPError) is not None
    )


async def test_a_read_token_lists_instances(server: ServerProcess, issuer: RunningIssuer) -> None:
    async with client(server.url, token(issuer, "foundry:read")) as session:
        result = await session.call_tool("foundry.list_instances", {"environment": "dev"})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["count"] == 2


@pytest.mark.parametrize(
    ("tool", "extra"),
    [
        ("foundry.deploy_instance", {}),
        ("foundry.erase_subject_data", {"subject": "alice", "instance_token": "x" * 20}),
    ],
)
async def test_deploy_needs_the_deploy_scope_and_is_refused_with_403_before_anything_runs(
    server: ServerProcess, issuer: RunningIssuer, tool: str, extra: dict[str, str]
) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"environment": "dev", "instance": "acme/retail/dev", **extra}},
    }
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token(issuer, 'foundry:read')}"}
    async with httpx.AsyncClient() as http:
        response = await http.post(server.url, json=call, headers=headers)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="foundry:deploy"' in challenge
    assert 'resource_metadata="https://foundry.example.com/.well-known/oauth-protected-resource/mcp"' in challenge


async def test_a_deploy_token_reaches_the_deploy_tool(server: ServerProcess, issuer: RunningIssuer) -> None:
    """An unknown instance is the tool's own refusal (a tool error), so the call got past the scope check."""
    async with client(server.url, token(issuer, "foundry:read foundry:deploy")) as session:
        result = await session.call_tool(
            "foundry.deploy_instance", {"environment": "dev", "instance": "nobody/nothing/none", "dry_run": True}
        )
    assert result.is_error
    assert "nobody/nothing/none" in result.content[0].text  # type: ignore[union-attr]


async def test_the_static_token_still_works_beside_jwts(server: ServerProcess) -> None:
    async with client(server.url, STATIC) as session:
        result = await session.call_tool("foundry.list_instances", {})
    assert not result.is_error


@pytest.mark.parametrize("case", ["no scope", "wrong audience", "expired", "unknown key", "hs256"])
async def test_a_bad_jwt_is_refused(case: str, server: ServerProcess, issuer: RunningIssuer) -> None:
    now = int(time.time())
    if case == "no scope":
        bearer = token(issuer, "")
    elif case == "wrong audience":
        bearer = issuer.issuer.mint(
            subject="x", organization="o", audience="https://other/mcp", scopes=["foundry:read"]
        )
    elif case == "expired":
        bearer = token(issuer, "foundry:read", exp=now - 300, nbf=now - 900, iat=now - 900)
    elif case == "unknown key":
        stranger = generate_key()
        bearer = issuer.issuer.mint(
            subject="x", organization="o", audience=AUDIENCE, scopes=["foundry:read"], key=stranger
        )
    else:
        bearer = jwt.encode(
            {"sub": "x", "aud": AUDIENCE, "iss": issuer.url, "exp": now + 60},
            "a-shared-secret-of-at-least-32-bytes!",
            algorithm="HS256",
        )
    with pytest.raises(BaseException) as caught:  # which exception: checked just below
        async with client(server.url, bearer) as session:
            await session.call_tool("foundry.list_instances", {})
    assert refused(caught.value), caught.value
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {bearer}"}
    response = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    assert response.status_code in (401, 403)


def test_an_issuer_without_an_audience_is_a_usage_error(issuer: RunningIssuer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "foundry", "serve", "--transport", "http", "--auth-issuer", issuer.url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--auth-issuer needs --auth-audience" in result.stderr


def test_jwts_alone_are_enough_to_serve_http(issuer: RunningIssuer) -> None:
    with http_server(None, extra_args=("--auth-issuer", issuer.url, "--auth-audience", AUDIENCE)) as running:
        response = httpx.post(running.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=MCP_HEADERS)
    assert response.status_code == 401
