"""A real MCP client against `python -m foundry serve`, over stdio and over streamable HTTP with a bearer token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from foundry.aws.instance_status import exception_leaves
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT, ServerProcess, http_server

TOKEN = "test-token-0123456789abcdef"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http() -> Iterator[ServerProcess]:
    with http_server(TOKEN) as server:
        yield server


async def test_stdio_session_lists_tools_and_instances() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "foundry", "serve"], cwd=str(REPO_ROOT))
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("foundry.list_instances", {"environment": "staging"})
    assert "foundry.deploy_instance" in tools
    assert [r["instance"] for r in result.structured_content["instances"]] == [
        "acme/retail/us-east-1",
        "globex/support/us-east-1",
    ]


async def test_stdio_session_reports_a_refused_argument_as_a_tool_error() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "foundry", "serve"], cwd=str(REPO_ROOT))
    async with Client(params) as client:
        result = await client.call_tool(
            "foundry.deploy_instance", {"environment": "dev", "instance": "acme/retail/dev;reboot"}
        )
    assert result.is_error
    assert "shell metacharacters" in str(result.content[0].model_dump())


async def test_http_session_with_the_token_works(http: ServerProcess) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as session_http,
        Client(streamable_http_client(http.url, http_client=session_http)) as client,
    ):
        result = await client.call_tool("foundry.get_agent_config", {"agent_id": "io-agent", "environment": "prod"})
    assert not result.is_error
    assert result.structured_content["specs"][0]["spec"]["spec"]["role"] == "io"


def test_http_request_without_a_token_is_refused_with_401(http: ServerProcess) -> None:
    response = httpx.post(http.url, json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_http_request_with_a_wrong_token_is_refused_with_401(http: ServerProcess) -> None:
    response = httpx.post(http.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer wrong-token-xyz"})
    assert response.status_code == 401


def test_http_request_with_the_token_is_answered(http: ServerProcess) -> None:
    response = httpx.post(http.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


async def test_mcp_client_without_a_token_cannot_open_a_session(http: ServerProcess) -> None:
    with pytest.raises(BaseException) as caught:
        async with Client(http.url) as client:
            await client.list_tools()
    assert any(isinstance(e, MCPError) for e in exception_leaves(caught.value))


def serve(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if token is not None:
        env["FOUNDRY_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "foundry", "serve", "--transport", "http", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_http_without_a_token_refuses_to_start_even_on_loopback() -> None:
    result = serve("--host", "127.0.0.1")
    assert result.returncode == 2
    assert "refusing to serve HTTP on 127.0.0.1 without a bearer token" in result.stderr


def test_http_on_a_non_loopback_address_without_a_token_refuses_to_start() -> None:
    result = serve("--host", "192.0.2.10")
    assert result.returncode == 2
    assert "non-loopback 192.0.2.10 without a bearer token" in result.stderr


def test_non_loopback_address_needs_the_allowed_host_names() -> None:
    result = serve("--host", "192.0.2.10", token=TOKEN)
    assert result.returncode == 2
    assert "--allowed-host" in result.stderr


def test_too_short_token_is_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    result = serve("--token-file", str(token_file))
    assert result.returncode == 2
    assert "too short" in result.stderr


def test_token_file_is_read(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with http_server(None, extra_args=("--token-file", str(token_file))) as server:
        response = httpx.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"})
        refused = httpx.post(server.url, json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 200
    assert refused.status_code == 401


@pytest.mark.parametrize(("port", "expected"), [("70000", "70000 is out of range"), ("http", "'http' is not a number")])
def test_port_outside_the_tcp_range_is_refused_naming_the_option_and_the_range(port: str, expected: str) -> None:
    result = serve("--port", port, token=TOKEN)
    assert result.returncode == 2
    assert "argument --port" in result.stderr
    assert expected in result.stderr
    assert "expected a TCP port from 1 to 65535" in result.stderr
