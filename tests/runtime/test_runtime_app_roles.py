"""Machine callers of an Entra-secured instance: an app-only token's app roles (`roles`, no `scp`) are its scopes when
AUTH_APP_ROLES_AS_SCOPES=true, and only then. The runtime's own path from its AUTH_* variables to a caller's allowed
tools (config, resource server, verifier, caller), with real tokens signed by a local issuer whose discovery document
and JWKS are served over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from oauth_resource.dev_issuer import RunningIssuer, serve_issuer
from runtime.auth import INVOKE_SCOPE, READ_SCOPE, Caller, ScopeError, caller_from_token, resource_server
from runtime.config import auth_from_env

API_CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
"""The instance's API app in Entra ID: its client id is the v2.0 tokens' `aud`."""
ORG_CLAIM = "https://agentfoundry.example.com/org"
HOST = "acme-retail-dev.dev.agentfoundry.internal"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer"), algorithm="RS256") as running:
        yield running


def app_only(issuer: RunningIssuer, **changes: Any) -> dict[str, Any]:
    """An Entra ID v2.0 app-only access token's claims (client credentials: `idtyp` app, `roles`, no `scp`)."""
    now = int(time.time())
    claims = {"aud": API_CLIENT, "iss": issuer.url, "iat": now, "nbf": now, "exp": now + 3599, "azpacr": "1",
              "azp": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "idtyp": "app", "roles": [INVOKE_SCOPE, READ_SCOPE],
              "oid": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "sub": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
              "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "ver": "2.0", ORG_CLAIM: "acme", **changes}  # fmt: skip
    return {k: v for k, v in claims.items() if v is not None}


async def caller(issuer: RunningIssuer, claims: dict[str, Any], *, roles_as_scopes: str | None) -> Caller:
    """The caller the runtime makes of a token signed with the issuer's current key, configured as an instance is."""
    env = {"AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": API_CLIENT, "AUTH_ORG_CLAIM": ORG_CLAIM}
    if roles_as_scopes is not None:
        env["AUTH_APP_ROLES_AS_SCOPES"] = roles_as_scopes
    server = resource_server(auth_from_env(env), organization="acme", hostname=HOST)
    key = issuer.issuer.current_key()
    token = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})
    return caller_from_token(await server.verifier.verify(token))


async def test_an_app_only_token_is_allowed_the_tools_of_its_app_roles_when_the_setting_is_on(
    issuer: RunningIssuer,
) -> None:
    machine = await caller(issuer, app_only(issuer, roles=[INVOKE_SCOPE]), roles_as_scopes="true")
    assert machine.scopes == {INVOKE_SCOPE}
    machine.require(INVOKE_SCOPE)
    with pytest.raises(ScopeError, match=f"insufficient_scope: this call needs the {READ_SCOPE} scope"):
        machine.require(READ_SCOPE)


@pytest.mark.parametrize("setting", [None, "false"])
async def test_an_app_only_token_is_refused_naming_the_missing_scope_when_the_setting_is_off(
    issuer: RunningIssuer, setting: str | None
) -> None:
    machine = await caller(issuer, app_only(issuer), roles_as_scopes=setting)
    assert machine.scopes == frozenset()
    with pytest.raises(ScopeError, match=f"insufficient_scope: this call needs the {INVOKE_SCOPE} scope"):
        machine.require(INVOKE_SCOPE)


async def test_a_delegated_token_gets_only_its_scp_never_its_users_app_roles(issuer: RunningIssuer) -> None:
    """A user's token (through a client app) has `scp`; its `roles` are the user's app roles, not the client's."""
    delegated = app_only(issuer, idtyp="user", scp=READ_SCOPE, roles=[INVOKE_SCOPE, READ_SCOPE])
    user = await caller(issuer, delegated, roles_as_scopes="true")
    assert user.scopes == {READ_SCOPE}
    with pytest.raises(ScopeError, match=f"insufficient_scope: this call needs the {INVOKE_SCOPE} scope"):
        user.require(INVOKE_SCOPE)


@pytest.mark.parametrize(
    "roles",
    [INVOKE_SCOPE, f"{INVOKE_SCOPE} {READ_SCOPE}", [INVOKE_SCOPE, 7], [f"{INVOKE_SCOPE} {READ_SCOPE}"], [""], {}],
    ids=[
        "a string",
        "a space-separated string",
        "a non-string item",
        "an item with a space",
        "an empty item",
        "an object",
    ],
)
async def test_a_malformed_roles_claim_grants_nothing(issuer: RunningIssuer, roles: Any) -> None:
    machine = await caller(issuer, app_only(issuer, roles=roles), roles_as_scopes="true")
    assert machine.scopes == frozenset()
    with pytest.raises(ScopeError, match=f"insufficient_scope: this call needs the {INVOKE_SCOPE} scope"):
        machine.require(INVOKE_SCOPE)


async def test_an_app_only_token_of_another_organization_is_refused_whatever_its_roles(issuer: RunningIssuer) -> None:
    env = {"AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": API_CLIENT, "AUTH_ORG_CLAIM": ORG_CLAIM,
           "AUTH_APP_ROLES_AS_SCOPES": "true"}  # fmt: skip
    server = resource_server(auth_from_env(env), organization="acme", hostname=HOST)
    key = issuer.issuer.current_key()
    token = jwt.encode(app_only(issuer, **{ORG_CLAIM: "globex"}), key.private_key, algorithm=key.algorithm,
                       headers={"kid": key.kid})  # fmt: skip
    assert await server.verifier.verify_token(token) is None
