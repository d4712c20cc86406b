"""An Entra ID app-only token (client credentials: `roles`, no `scp`) calling a real runtime process over streamable
HTTP with the SDK's client: with AUTH_APP_ROLES_AS_SCOPES=true its app roles allow their tools, and without it the
same token is refused each tool with the scope it lacks named."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from oauth_resource.dev_issuer import RunningIssuer
from runtime.auth import INVOKE_SCOPE, READ_SCOPE, default_audience
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, auth_env, mcp_client, serve

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"


@pytest.fixture(scope="module")
def bundle(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == INSTANCE)


def served(bundle: BuiltBundle, issuer: RunningIssuer, **extra: str) -> Iterator[RuntimeProcess]:
    process = serve({**bundle.identity_env(), **auth_env(issuer.url, **extra)})
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def roles_on(bundle: BuiltBundle, local_issuer: RunningIssuer) -> Iterator[RuntimeProcess]:
    yield from served(bundle, local_issuer, AUTH_APP_ROLES_AS_SCOPES="true")


@pytest.fixture(scope="module")
def roles_off(bundle: BuiltBundle, local_issuer: RunningIssuer) -> Iterator[RuntimeProcess]:
    yield from served(bundle, local_issuer)


def app_only_token(bundle: BuiltBundle, issuer: RunningIssuer, roles: list[str]) -> str:
    """Claims as Entra ID v2.0 writes them for a daemon's client credentials token, the app roles it was granted."""
    spec = bundle.instance.manifest.spec
    now = int(time.time())
    claims = {"aud": default_audience(spec.hostname), "iss": issuer.url, "iat": now, "nbf": now, "exp": now + 3599,
              "azp": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "azpacr": "1", "idtyp": "app", "roles": roles,
              "oid": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "sub": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
              "ver": "2.0", "org": spec.identity.organization_id}  # fmt: skip
    key = issuer.issuer.current_key()
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})


async def test_an_app_only_tokens_roles_allow_their_tools_when_the_setting_is_on(
    roles_on: RuntimeProcess, bundle: BuiltBundle, local_issuer: RunningIssuer
) -> None:
    async with mcp_client(roles_on.url, app_only_token(bundle, local_issuer, [READ_SCOPE])) as client:
        described = await client.call_tool("describe", {})
        invoked = await client.call_tool("invoke", {"message": "plan the Q3 roadmap"})
    assert not described.is_error
    assert invoked.is_error
    assert f"insufficient_scope: this call needs the {INVOKE_SCOPE} scope" in invoked.content[0].text  # type: ignore[union-attr]


async def test_an_app_only_token_is_refused_naming_the_scope_when_the_setting_is_off(
    roles_off: RuntimeProcess, bundle: BuiltBundle, local_issuer: RunningIssuer
) -> None:
    async with mcp_client(roles_off.url, app_only_token(bundle, local_issuer, [READ_SCOPE, INVOKE_SCOPE])) as client:
        described = await client.call_tool("describe", {})
    assert described.is_error
    assert f"insufficient_scope: this call needs the {READ_SCOPE} scope" in described.content[0].text  # type: ignore[union-attr]
