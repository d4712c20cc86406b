"""Only an instance's own callers get in: a real runtime process secured by a local issuer on 127.0.0.1 (real keys,
JWKS and discovery over HTTP), called with the SDK's client over streamable HTTP.

Every refused token is checked twice: the client is refused (401 with a WWW-Authenticate challenge that points at the
protected-resource metadata, or a tool error for a missing scope), and nothing ran (the instance's request counter,
read with a good token afterwards, did not move).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from mcp.shared.exceptions import MCPError

from oauth_resource.dev_issuer import DevIssuer, RunningIssuer, generate_key, serve_issuer
from runtime.auth import ADMIN_SCOPE, APPROVE_SCOPE, INVOKE_SCOPE, READ_SCOPE, default_audience
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    auth_env,
    copy_agents,
    mcp_client,
    runtime_env,
    serve,
    write_bundles,
)

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"
ORG = "default-org"
HOST = "default-org-default-domain-dev.dev.agentfoundry.internal"
AUDIENCE = default_audience(HOST)
METADATA_URL = f"https://{HOST}/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


@pytest.fixture(scope="module")
def bundle(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == INSTANCE)


@pytest.fixture(scope="module")
def runtime(bundle: BuiltBundle, issuer: RunningIssuer) -> Iterator[RuntimeProcess]:
    process = serve({**bundle.identity_env(), **auth_env(issuer.url)})
    yield process
    if process.process.poll() is None:
        process.terminate()


def claims(issuer: RunningIssuer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer.url,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": f"{INVOKE_SCOPE} {READ_SCOPE}",
        "org": ORG,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(issuer: RunningIssuer, payload: dict[str, Any]) -> str:
    key = issuer.issuer.current_key()
    return jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def good_token(issuer: RunningIssuer, **changes: Any) -> str:
    return sign(issuer, claims(issuer, **changes))


async def requests_served(runtime: RuntimeProcess, issuer: RunningIssuer) -> int:
    async with mcp_client(runtime.url, good_token(issuer)) as client:
        status = await client.call_tool("status", {})
    assert status.structured_content is not None
    return int(status.structured_content["metrics"]["requests"])


async def invoke(url: str, token: str | None, message: str = "plan the roadmap", thread: str = "t1") -> Any:
    async with mcp_client(url, token) as client:
        return await client.call_tool("invoke", {"message": message, "thread_id": thread})


async def assert_refused(url: str, token: str | None) -> None:
    """The SDK client raises the server's refusal as MCPError (inside its task group's ExceptionGroup)."""
    try:
        await invoke(url, token)
    except MCPError:
        return
    except BaseExceptionGroup as group:
        if group.subgroup(MCPError) is not None:
            return
        raise
    raise AssertionError("the call was answered")


# --- tokens that must be refused ---------------------------------------------------------------------------


def _alg_none(issuer: RunningIssuer) -> str:
    kid = issuer.issuer.current_key().kid
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64(json.dumps(claims(issuer)).encode())}."


def _hs256_with_public_key(issuer: RunningIssuer) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the issuer's public key (which anyone can fetch)."""
    key = issuer.issuer.current_key()
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid}).encode())}."
        f"{b64(json.dumps(claims(issuer)).encode())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _tampered(issuer: RunningIssuer) -> str:
    """A good token whose payload was edited afterwards (another subject), signature kept."""
    header, _, signature = good_token(issuer).split(".")
    return f"{header}.{b64(json.dumps(claims(issuer, sub='mallory')).encode())}.{signature}"


def _unknown_key_same_kid(issuer: RunningIssuer) -> str:
    """Signed by a key the issuer never published, claiming the published key's id."""
    stranger = generate_key("ES256")
    return jwt.encode(
        claims(issuer), stranger.private_key, algorithm="ES256", headers={"kid": issuer.issuer.current_key().kid}
    )


def _unknown_kid(issuer: RunningIssuer) -> str:
    stranger = generate_key("ES256")
    return jwt.encode(claims(issuer), stranger.private_key, algorithm="ES256", headers={"kid": stranger.kid})


def _now() -> int:
    return int(time.time())


REFUSED: dict[str, Callable[[RunningIssuer], str]] = {
    "garbage": lambda i: "this-is-not-a-jwt",
    "expired": lambda i: good_token(i, iat=_now() - 900, nbf=_now() - 900, exp=_now() - 300),
    "not yet valid": lambda i: good_token(i, nbf=_now() + 300, exp=_now() + 900),
    "wrong issuer": lambda i: good_token(i, iss="https://issuer.example.com"),
    "another instance's audience": lambda i: good_token(i, aud="https://acme-retail-dev.dev.agentfoundry.internal/mcp"),
    "no audience": lambda i: good_token(i, aud=None),
    "another organization": lambda i: good_token(i, org="acme"),
    "no organization claim": lambda i: good_token(i, org=None),
    "no expiry": lambda i: good_token(i, exp=None),
    "no subject": lambda i: good_token(i, sub=None),
    "unknown key": _unknown_key_same_kid,
    "unknown kid": _unknown_kid,
    "alg none": _alg_none,
    "HS256 keyed with the public key": _hs256_with_public_key,
    "tampered claims": _tampered,
}


async def test_a_good_token_is_answered(runtime: RuntimeProcess, issuer: RunningIssuer) -> None:
    result = await invoke(runtime.url, good_token(issuer), "plan the Q3 roadmap")
    assert not result.is_error
    assert result.structured_content["ok"] is True and result.structured_content["workers"] == ["pm-agent"]


async def test_an_rs256_token_from_a_published_rsa_key_is_answered(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    rsa_key = generate_key("RS256")
    issuer.issuer.add_key(rsa_key)  # published, not current: the runtime fetches the set again for its new kid
    token = jwt.encode(claims(issuer), rsa_key.private_key, algorithm="RS256", headers={"kid": rsa_key.kid})
    result = await invoke(runtime.url, token)
    assert not result.is_error and result.structured_content["ok"] is True


async def test_without_a_token_the_answer_is_401_with_a_challenge_naming_the_resource_metadata(
    runtime: RuntimeProcess,
) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "invoke", "arguments": {}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=runtime.base) as http:
        response = await http.post("/mcp", json=request, headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert f'resource_metadata="{METADATA_URL}"' in challenge


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_bad_token_is_refused_and_nothing_runs(
    case: str, runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    before = await requests_served(runtime, issuer)
    token = REFUSED[case](issuer)
    await assert_refused(runtime.url, token)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=runtime.base) as http:
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    assert response.status_code == 401, case
    assert "resource_metadata=" in response.headers["www-authenticate"]
    assert await requests_served(runtime, issuer) == before


async def test_no_token_at_all_is_refused_by_the_sdk_client_and_nothing_runs(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    before = await requests_served(runtime, issuer)
    await assert_refused(runtime.url, None)
    assert await requests_served(runtime, issuer) == before


async def test_invoke_needs_the_invoke_scope_and_describe_the_read_scope(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    before = await requests_served(runtime, issuer)
    read_only = good_token(issuer, scope=READ_SCOPE)
    refused = await invoke(runtime.url, read_only)
    assert refused.is_error and "insufficient_scope" in refused.content[0].text
    assert INVOKE_SCOPE in refused.content[0].text
    assert await requests_served(runtime, issuer) == before
    async with mcp_client(runtime.url, good_token(issuer, scope=INVOKE_SCOPE)) as client:
        described = await client.call_tool("describe", {})
        status = await client.call_tool("status", {})
    assert described.is_error and status.is_error
    assert READ_SCOPE in described.content[0].text  # type: ignore[union-attr]
    async with mcp_client(runtime.url, read_only) as client:
        assert not (await client.call_tool("describe", {})).is_error


async def test_two_subjects_on_one_thread_id_see_only_their_own_thread(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    alice, bob = good_token(issuer, sub="alice"), good_token(issuer, sub="bob")
    await invoke(runtime.url, alice, "plan a payment with card 4111-1111-1111-1111", thread="shared-thread")
    bobs = await invoke(runtime.url, bob, "plan: what card did I give you?", thread="shared-thread")
    alices = await invoke(runtime.url, alice, "plan: what card did I give you?", thread="shared-thread")
    assert "4111" not in bobs.model_dump_json() and "Earlier in this thread" not in bobs.structured_content["answer"]
    assert bobs.structured_content["thread_id"] == "shared-thread"
    assert "4111-1111-1111-1111" in alices.structured_content["answer"]


async def test_the_protected_resource_metadata_names_the_resource_and_its_issuer(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    async with httpx.AsyncClient(base_url=runtime.base) as http:
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            response = await http.get(path)
            assert response.status_code == 200, path
            body = response.json()
            assert body["resource"] == AUDIENCE
            assert body["authorization_servers"] == [issuer.url]
            assert body["scopes_supported"] == [INVOKE_SCOPE, READ_SCOPE, APPROVE_SCOPE, ADMIN_SCOPE]


async def test_health_stays_open_and_metrics_needs_the_read_scope(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    async with httpx.AsyncClient(base_url=runtime.base) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"ready": True, "draining": False}
        anonymous = await http.get("/metrics")
        invoke_only = await http.get(
            "/metrics", headers={"Authorization": f"Bearer {good_token(issuer, scope=INVOKE_SCOPE)}"}
        )
        reader = await http.get("/metrics", headers={"Authorization": f"Bearer {good_token(issuer, scope=READ_SCOPE)}"})
    assert (
        anonymous.status_code == 401 and f'resource_metadata="{METADATA_URL}"' in anonymous.headers["www-authenticate"]
    )
    assert invoke_only.status_code == 403 and 'error="insufficient_scope"' in invoke_only.headers["www-authenticate"]
    assert reader.status_code == 200 and "agentfoundry_requests_total" in reader.text


async def test_describe_shows_no_internal_locations(runtime: RuntimeProcess, issuer: RunningIssuer) -> None:
    async with mcp_client(runtime.url, good_token(issuer)) as client:
        described = await client.call_tool("describe", {})
    text = described.model_dump_json()
    assert "s3://" not in text and "bundle_uri" not in text and ".tar.gz" not in text
    assert described.structured_content is not None and described.structured_content["hostname"] == HOST


async def test_a_hundred_concurrent_authenticated_invokes_are_all_answered(
    runtime: RuntimeProcess, issuer: RunningIssuer
) -> None:
    """Ten callers, each with its own token and connection, ten invokes each at once."""

    async def caller(n: int) -> list[Any]:
        async with mcp_client(runtime.url, good_token(issuer, sub=f"caller-{n}")) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.call_tool("invoke", {"message": f"plan milestone m{i:03d}x", "thread_id": f"c{i}"})
                        for i in range(n * 10, n * 10 + 10)
                    )
                )
            )

    results = [r for batch in await asyncio.gather(*(caller(n) for n in range(10))) for r in batch]
    assert all(not r.is_error and r.structured_content["ok"] for r in results)
    assert [r.structured_content["thread_id"] for r in results] == [f"c{i}" for i in range(100)]
    assert all(f"m{i:03d}x" in r.structured_content["answer"] for i, r in enumerate(results))


async def test_a_rotated_key_is_picked_up_without_a_restart(runtime: RuntimeProcess, issuer: RunningIssuer) -> None:
    old = good_token(issuer)
    assert not (await invoke(runtime.url, old)).is_error
    issuer.issuer.rotate()  # a new current key the runtime has never seen
    new = good_token(issuer)
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    result = await invoke(runtime.url, new)
    assert not result.is_error and result.structured_content["ok"] is True
    assert not (await invoke(runtime.url, old)).is_error  # the old key stays published until its tokens expire


# --- governance's tenant is the token's organization --------------------------------------------------------


async def test_governance_blocks_the_token_organization_whatever_the_arguments_say(
    tmp_path: Path, issuer: RunningIssuer, runtime_factory: list[RuntimeProcess]
) -> None:
    agents = copy_agents(tmp_path / "agents")
    governance = agents / "specs" / "system" / "governance-agent.yaml"
    text = governance.read_text()
    governance.write_text(text.replace("    blocked_tenants: []\n", f"    blocked_tenants:\n    - {ORG}\n"))
    (built,) = write_bundles(agents, tmp_path / "bundle", INSTANCE)
    runtime = serve({**built.identity_env(), **auth_env(issuer.url)})
    runtime_factory.append(runtime)
    async with mcp_client(runtime.url, good_token(issuer)) as client:
        result = await client.call_tool(
            "invoke", {"message": "plan the roadmap", "thread_id": "t", "tenant": "some-other-tenant"}
        )
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error"]["code"] == "blocked_tenant"
    assert ORG in result.structured_content["error"]["message"]


# --- start-up -----------------------------------------------------------------------------------------------


def _start(bundle: BuiltBundle, auth: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = runtime_env(bundle.identity_env())
    del env["AUTH_MODE"]  # the harness's default for tests where auth is not the point
    return subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env={**env, **auth},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no caller authentication configured: set AUTH_ISSUER"),
        ({"AUTH_MODE": "jwt"}, "AUTH_MODE=jwt needs AUTH_ISSUER"),
        ({"AUTH_MODE": "off"}, "AUTH_MODE must be 'jwt' or 'none', got 'off'"),
        ({"AUTH_ISSUER": "http://issuer.example.com"}, "AUTH_ISSUER must be an https:// URL"),
        ({"AUTH_MODE": "none", "AUTH_ISSUER": "https://issuer.example.com"}, "exclude each other"),
    ],
)
def test_the_runtime_refuses_to_start_without_a_clear_auth_setting(
    bundle: BuiltBundle, env: dict[str, str], message: str
) -> None:
    result = _start(bundle, env)
    assert result.returncode == 1
    assert "runtime: cannot start:" in result.stderr and message in result.stderr


# --- the documented local loop --------------------------------------------------------------------------------


async def test_the_token_and_call_commands_make_the_secured_local_loop(
    runtime: RuntimeProcess, issuer: RunningIssuer, bundle: BuiltBundle
) -> None:
    folder = str(issuer.issuer.folder)
    minted = subprocess.run(
        [sys.executable, "-m", "runtime", "token", "--dir", folder, "--bundle", str(bundle.path), "--sub", "dev"],
        cwd=REPO_ROOT, env=runtime_env({}), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = minted.stdout.strip()
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert (decoded["org"], decoded["aud"], decoded["iss"]) == (ORG, AUDIENCE, issuer.url)

    def call(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "runtime", "call", "--url", runtime.url, "--message", "plan it", *extra]
        return subprocess.run(
            argv, cwd=REPO_ROOT, env=runtime_env({}), capture_output=True, text=True, timeout=60, check=False
        )

    answered, refused = await asyncio.gather(asyncio.to_thread(call, "--token", token), asyncio.to_thread(call))
    assert answered.returncode == 0 and json.loads(answered.stdout)["ok"] is True
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr and "resource_metadata=" in refused.stderr


def test_the_dev_issuer_keeps_its_keys_private(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "issuer")
    key = issuer.ensure_key()
    (path,) = (tmp_path / "issuer" / "keys").glob("*.pem")
    assert path.stat().st_mode & 0o777 == 0o600
    assert issuer.ensure_key().kid == key.kid  # created once, then reused
