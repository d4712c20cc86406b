"""The token rules of a served runtime, set through its AUTH_* variables: a key removed from the issuer's JWKS stops
working within AUTH_JWKS_MAX_AGE_SECONDS, tokens living longer than AUTH_MAX_TOKEN_LIFETIME_SECONDS or typed as
something other than an access token are refused, and a hostile header does not reach the log whole. A real
runtime process, a local issuer serving its JWKS over HTTP, and the SDK's client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from mcp.shared.exceptions import MCPError

from oauth_resource.dev_issuer import RunningIssuer, SigningKey, serve_issuer
from runtime.auth import INVOKE_SCOPE, READ_SCOPE, default_audience
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, auth_env, mcp_client, serve

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"
AUDIENCE = default_audience("default-org-default-domain-dev.dev.agentfoundry.internal")
REFRESH_SECONDS = 1.0
MAX_LIFETIME = 7200


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


@pytest.fixture(scope="module")
def runtime(example_bundles: list[BuiltBundle], issuer: RunningIssuer) -> Iterator[RuntimeProcess]:
    bundle = next(b for b in example_bundles if b.instance.key.selector == INSTANCE)
    limits = {"AUTH_JWKS_MAX_AGE_SECONDS": str(REFRESH_SECONDS), "AUTH_MAX_TOKEN_LIFETIME_SECONDS": str(MAX_LIFETIME)}
    process = serve({**bundle.identity_env(), **auth_env(issuer.url, **limits)})
    yield process
    if process.process.poll() is None:
        process.terminate()


def token(
    issuer: RunningIssuer,
    key: SigningKey | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A token for the instance; `claims` change or (None) remove the usual ones."""
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": "alice", "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600,
              "scope": f"{INVOKE_SCOPE} {READ_SCOPE}", "org": "default-org", **(claims or {})}  # fmt: skip
    signing = key or issuer.issuer.current_key()
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        signing.private_key,
        algorithm=signing.algorithm,
        headers={"kid": signing.kid, **(header or {})},
    )


async def answered(runtime: RuntimeProcess, bearer: str) -> bool:
    """True when a real MCP call with the token is answered; False when the bearer middleware refuses the token
    (401 with the challenge, checked on a plain JSON-RPC ping, and the SDK's client refused too)."""
    headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=runtime.base, timeout=60) as http:
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    if response.status_code == 401:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        try:
            async with mcp_client(runtime.url, bearer) as client:
                await client.call_tool("describe", {})
        except MCPError:
            return False
        except BaseExceptionGroup as group:
            if group.subgroup(MCPError) is not None:
                return False
            raise
        raise AssertionError("the SDK's client was answered with a token the server refused")
    assert response.status_code == 200, response.text
    async with mcp_client(runtime.url, bearer) as client:
        result = await client.call_tool("describe", {})
    assert not result.is_error
    return True


async def test_a_key_removed_from_the_jwks_is_refused_after_the_refresh_interval(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    old_key = issuer.issuer.current_key()
    old_token = token(issuer, old_key)
    assert await answered(runtime, old_token)
    issuer.issuer.rotate()
    issuer.issuer.remove_key(old_key.kid)
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    assert not await answered(runtime, old_token)
    assert await answered(runtime, token(issuer))


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({"exp": 253402300799}, False),  # the year 9999
        ({"exp": "iat+3h"}, False),
        ({"exp": "iat+1h"}, True),
        ({"iat": None, "exp": "now+3h"}, False),
    ],
)
async def test_a_token_living_longer_than_the_setting_is_refused(
    runtime: RuntimeProcess, issuer: RunningIssuer, changes: dict[str, Any], ok: bool
) -> None:
    now = int(time.time())
    offsets = {"iat+3h": now + 3 * 3600, "iat+1h": now + 3600, "now+3h": now + 3 * 3600}
    resolved = {k: offsets.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}
    assert await answered(runtime, token(issuer, claims=resolved)) is ok


@pytest.mark.parametrize(("typ", "ok"), [("at+jwt", True), ("JWT", True), ("secevent+jwt", False), ("JOSE", False)])
async def test_only_an_access_token_typ_is_accepted(
    runtime: RuntimeProcess, issuer: RunningIssuer, typ: str, ok: bool
) -> None:
    assert await answered(runtime, token(issuer, header={"typ": typ})) is ok


async def test_an_8_mb_kid_is_refused_without_reaching_the_log_whole(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    hostile = f"{part({'alg': 'ES256', 'kid': 'k' * 8 * 1024 * 1024})}.{part({'sub': 'x'})}.c2ln"
    headers = {"Authorization": f"Bearer {hostile}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=runtime.base, timeout=60) as http:
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    assert response.status_code == 401
    assert await answered(runtime, token(issuer))  # the process is fine, and its log has been written meanwhile
    log = runtime.stderr_text()
    assert max(len(line) for line in log.splitlines()) < 2000
    (refused,) = [line for line in log.splitlines() if "token.refused" in line and "kkkkkkkk" in line]
    assert f"({8 * 1024 * 1024 + 2} chars)" in refused  # cut, saying how long the repr of the kid was
