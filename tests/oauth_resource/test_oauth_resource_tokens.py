"""What the verifier accepts and refuses, with real keys served as a JWKS over HTTP on 127.0.0.1: each issuer's token
shape from the issuer table in docs/runtime.md, keys that leave the set, the maximum token lifetime, the `typ`
header, and refused-token log lines of bounded length."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest

from oauth_resource.dev_issuer import RunningIssuer, SigningKey, serve_issuer
from oauth_resource.jwks import KeySet
from oauth_resource.scopes import scopes_of
from oauth_resource.verifier import MAX_LOGGED_REASON_CHARS, JwtVerifier, TokenRules

INVOKE, READ = "agentfoundry/invoke", "agentfoundry/read"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path / "issuer", algorithm="RS256") as running:
        yield running


def sign(key: SigningKey, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """PyJWT adds `typ: JWT` unless the header says otherwise; a `typ` of None leaves it out (Cognito, Okta)."""
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, **(header or {})})


# --- the issuer table ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerShape:
    """One row of docs/runtime.md's issuer table: the settings an instance gets, and a token as that issuer mints
    it (header and claims as the issuer's documentation shows them)."""

    issuer: str
    audience: str
    audience_claim: str
    org_claim: str
    header: dict[str, Any]
    claims: dict[str, Any]
    app_roles_as_scopes: bool = False


def shapes(now: int) -> dict[str, IssuerShape]:
    tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
    api_client = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
    return {
        "Amazon Cognito (client credentials, V3_0 trigger adds org)": IssuerShape(
            issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34E",
            audience="3n4b5urk1ft4fl3mg5e62d9ado",
            audience_claim="client_id",
            org_claim="org",
            header={"typ": None},
            claims={"sub": "3n4b5urk1ft4fl3mg5e62d9ado", "token_use": "access", "scope": f"{INVOKE} {READ}",
                    "auth_time": now, "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34E",
                    "exp": now + 3600, "iat": now, "version": 2, "jti": str(uuid.uuid4()),
                    "client_id": "3n4b5urk1ft4fl3mg5e62d9ado", "org": "acme"},
        ),
        "Microsoft Entra ID (v2.0 access token, scp string)": IssuerShape(
            issuer=f"https://login.microsoftonline.com/{tenant}/v2.0",
            audience=api_client,
            audience_claim="aud",
            org_claim="https://agentfoundry.example.com/org",
            header={"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
            claims={"aud": api_client, "iss": f"https://login.microsoftonline.com/{tenant}/v2.0", "iat": now,
                    "nbf": now, "exp": now + 4500, "aio": "AXQAi/8TAAAA", "azp": "0b9a8ab2-a7f1-4c8e-9c1c-0d2b3e4f5a6b",
                    "azpacr": "1", "name": "Alice Example", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
                    "preferred_username": "alice@acme.example", "rh": "0.AAAA", "scp": f"{INVOKE} {READ}",
                    "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": tenant, "uti": "fqiBqXLPj0eQa82S",
                    "ver": "2.0", "https://agentfoundry.example.com/org": "acme"},
        ),
        "Microsoft Entra ID (v2.0 app-only token, roles, app_roles_as_scopes)": IssuerShape(
            issuer=f"https://login.microsoftonline.com/{tenant}/v2.0",
            audience=api_client,
            audience_claim="aud",
            org_claim="https://agentfoundry.example.com/org",
            header={"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
            claims={"aud": api_client, "iss": f"https://login.microsoftonline.com/{tenant}/v2.0", "iat": now,
                    "nbf": now, "exp": now + 3599, "aio": "k2BgYJhrg3+vKl",
                    "azp": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "azpacr": "1", "idtyp": "app",
                    "oid": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "rh": "0.AAAA",
                    "roles": [INVOKE, READ], "sub": "2b9e3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "tid": tenant,
                    "uti": "3s8Jq0lZ1EuWb9", "ver": "2.0", "https://agentfoundry.example.com/org": "acme"},
            app_roles_as_scopes=True,
        ),
        "Okta (custom authorization server, scp list)": IssuerShape(
            issuer="https://acme.okta.com/oauth2/default",
            audience="api://default",
            audience_claim="aud",
            org_claim="org",
            header={"typ": None},
            claims={"ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE", "iss":
                    "https://acme.okta.com/oauth2/default", "aud": "api://default", "iat": now, "exp": now + 3600,
                    "cid": "0oa1b2c3d4e5f6g7h8i9", "uid": "00uid4BxXw6I6TV4m0g3", "scp": [INVOKE, READ],
                    "auth_time": now, "sub": "alice@acme.example", "org": "acme"},
        ),
        "Auth0 (RFC 9068 profile, namespaced org claim)": IssuerShape(
            issuer="https://acme.eu.auth0.com/",
            audience="https://acme-retail-dev.instances.example.com/mcp",
            audience_claim="aud",
            org_claim="https://agentfoundry.example.com/org",
            header={"typ": "at+jwt"},
            claims={"iss": "https://acme.eu.auth0.com/", "sub": "auth0|6543210fedcba",
                    "aud": ["https://acme-retail-dev.instances.example.com/mcp", "https://acme.eu.auth0.com/userinfo"],
                    "iat": now, "exp": now + 86400, "scope": f"openid profile {INVOKE} {READ}",
                    "azp": "Xy1bQk3T0kAp7vWQ2nF8cL5m", "client_id": "Xy1bQk3T0kAp7vWQ2nF8cL5m",
                    "jti": "a1b2c3d4", "https://agentfoundry.example.com/org": "acme"},
        ),
        "Keycloak (realm token, azp, org mapper)": IssuerShape(
            issuer="https://sso.acme.example/realms/acme",
            audience="agentfoundry",
            audience_claim="aud",
            org_claim="org",
            header={"typ": "JWT"},
            claims={"exp": now + 300, "iat": now, "jti": str(uuid.uuid4()),
                    "iss": "https://sso.acme.example/realms/acme", "aud": ["agentfoundry", "account"],
                    "sub": "f1c2e3d4-5b6a-4789-8c0d-1e2f3a4b5c6d", "typ": "Bearer", "azp": "acme-portal",
                    "sid": str(uuid.uuid4()), "acr": "1", "realm_access": {"roles": ["default-roles-acme"]},
                    "scope": f"profile email {INVOKE} {READ}", "preferred_username": "alice", "org": "acme"},
        ),
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(shapes(0)))
async def test_each_issuer_in_the_table_is_accepted_with_its_scopes(issuer: RunningIssuer, name: str) -> None:
    shape = shapes(int(time.time()))[name]
    rules = TokenRules(
        issuer=shape.issuer,
        audience=shape.audience,
        organization="acme",
        org_claim=shape.org_claim,
        audience_claim=shape.audience_claim,
        app_roles_as_scopes=shape.app_roles_as_scopes,
    )
    verifier = JwtVerifier(rules, KeySet(issuer=shape.issuer, jwks_uri=f"{issuer.url}/jwks.json"))
    token = sign(issuer.issuer.current_key(), shape.claims, shape.header)
    accepted = await verifier.verify(token)
    assert INVOKE in accepted.scopes and READ in accepted.scopes
    assert accepted.claims == {"iss": shape.issuer, "org": "acme"}
    other_org = {**shape.claims, shape.org_claim: "globex"}
    assert await verifier.verify_token(sign(issuer.issuer.current_key(), other_org, shape.header)) is None


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": f"{INVOKE} {READ}"}, [INVOKE, READ]),
        ({"scp": f"{INVOKE} {READ}"}, [INVOKE, READ]),
        ({"scp": [INVOKE, READ]}, [INVOKE, READ]),
        ({"scope": INVOKE, "scp": [READ, INVOKE]}, [INVOKE, READ]),
        ({"scp": [INVOKE, 7, None]}, [INVOKE]),
        ({"scope": 42}, []),
        ({}, []),
    ],
)
def test_scopes_come_from_scope_and_scp(claims: dict[str, Any], scopes: list[str]) -> None:
    assert scopes_of(claims) == scopes


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"roles": [INVOKE, READ, INVOKE]}, [INVOKE, READ]),
        ({"scp": READ, "roles": [INVOKE]}, [READ]),  # delegated: the user's app roles are not the client's
        ({"scope": READ, "roles": [INVOKE]}, [READ]),
        ({"scp": "", "roles": [INVOKE]}, []),  # an (empty) scp still makes it a delegated token
        ({"roles": INVOKE}, []),  # not a list
        ({"roles": [INVOKE, 7]}, []),  # one bad item spoils the claim, not just itself
        ({"roles": [f"{INVOKE} {READ}"]}, []),  # a role value has no whitespace
        ({"roles": [""]}, []),
        ({"roles": {INVOKE: True}}, []),
        ({"roles": []}, []),
        ({}, []),
    ],
)
def test_app_roles_are_scopes_only_of_a_token_without_scope_or_scp(claims: dict[str, Any], scopes: list[str]) -> None:
    assert scopes_of(claims, app_roles_as_scopes=True) == scopes


def test_app_roles_are_not_scopes_unless_asked_for() -> None:
    assert scopes_of({"roles": [INVOKE, READ]}) == []


# --- keys that leave the set -----------------------------------------------------------------------------------


def claims_for(issuer: RunningIssuer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": issuer.url, "sub": "alice", "aud": "https://instance.example.com/mcp", "iat": now, "nbf": now,
            "exp": now + 600, "scope": INVOKE, "org": "acme"}  # fmt: skip
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def verifier_for(issuer: RunningIssuer, clock: Clock | None = None, **rules: Any) -> JwtVerifier:
    keys = KeySet(issuer=issuer.url, max_age=60, min_refetch_interval=0, clock=clock or time.monotonic)
    base = TokenRules(issuer=issuer.url, audience="https://instance.example.com/mcp", organization="acme")
    return JwtVerifier(replace(base, **rules), keys)


async def test_a_key_removed_from_the_jwks_stops_working_within_the_refresh_interval(issuer: RunningIssuer) -> None:
    clock = Clock()
    verifier = verifier_for(issuer, clock)
    old_key = issuer.issuer.current_key()
    old_token = sign(old_key, claims_for(issuer))
    assert await verifier.verify_token(old_token) is not None

    new_key = issuer.issuer.rotate()
    issuer.issuer.remove_key(old_key.kid)  # retired (or compromised): no longer published
    assert await verifier.verify_token(old_token) is not None  # inside the refresh interval: still held
    new_token = sign(new_key, claims_for(issuer))
    assert await verifier.verify_token(new_token) is not None  # its unknown kid made the verifier read the set
    assert await verifier.verify_token(old_token) is None  # ... which no longer holds the old key
    assert await verifier.verify_token(sign(old_key, claims_for(issuer, sub="bob"))) is None
    assert await verifier.verify_token(new_token) is not None


async def test_a_cached_token_whose_key_is_gone_is_refused_at_the_next_refresh(issuer: RunningIssuer) -> None:
    """The accepted-token cache does not outlive the key: no unknown kid is needed to notice the removal."""
    clock = Clock()
    verifier = verifier_for(issuer, clock)
    old_key = issuer.issuer.current_key()
    token = sign(old_key, claims_for(issuer))
    for _ in range(3):
        assert await verifier.verify_token(token) is not None
    issuer.issuer.rotate()
    issuer.issuer.remove_key(old_key.kid)
    clock.now += 30
    assert await verifier.verify_token(token) is not None  # inside the interval: served from the cache
    clock.now += 31
    assert await verifier.verify_token(token) is None


async def test_a_refreshed_set_that_still_holds_the_key_keeps_the_token(issuer: RunningIssuer) -> None:
    clock = Clock()
    verifier = verifier_for(issuer, clock)
    token = sign(issuer.issuer.current_key(), claims_for(issuer))
    assert await verifier.verify_token(token) is not None
    clock.now += 61
    assert await verifier.verify_token(token) is not None
    assert issuer.requests.count("/jwks.json") == 2


# --- lifetime and typ -----------------------------------------------------------------------------------------

YEAR_9999 = 253402300799


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({}, True),
        ({"exp": YEAR_9999}, False),
        ({"iat": "now", "exp": 25 * 3600}, False),
        ({"iat": "now", "exp": 23 * 3600}, True),
        ({"iat": "now-2h", "exp": 23 * 3600}, False),  # issued 2 h ago, lives 25 h in all
        ({"iat": None, "exp": 23 * 3600}, True),  # no iat: measured from now
        ({"iat": None, "exp": 25 * 3600}, False),
        ({"iat": None, "exp": YEAR_9999}, False),
    ],
)
async def test_a_token_living_longer_than_the_maximum_is_refused(
    issuer: RunningIssuer, changes: dict[str, Any], accepted: bool
) -> None:
    now = int(time.time())
    claims = claims_for(issuer)
    if "iat" in changes:
        claims.pop("iat")
        if changes["iat"] is not None:
            claims["iat"] = now if changes["iat"] == "now" else now - 7200
    if "exp" in changes:
        claims["exp"] = changes["exp"] if changes["exp"] == YEAR_9999 else now + changes["exp"]
    verifier = verifier_for(issuer)  # the default maximum: 24 h
    result = await verifier.verify_token(sign(issuer.issuer.current_key(), claims))
    assert (result is not None) is accepted


async def test_the_maximum_lifetime_is_a_setting(issuer: RunningIssuer) -> None:
    now = int(time.time())
    token = sign(issuer.issuer.current_key(), claims_for(issuer, iat=now, exp=now + 7200))
    assert await verifier_for(issuer).verify_token(token) is not None
    assert await verifier_for(issuer, max_lifetime_seconds=3600).verify_token(token) is None


@pytest.mark.parametrize(
    ("typ", "accepted"),
    [
        (None, True),
        ("at+jwt", True),
        ("AT+JWT", True),
        ("application/at+jwt", True),
        ("JWT", True),
        ("jwt", True),
        ("id_token+jwt", False),
        ("logout+jwt", False),
        ("secevent+jwt", False),
        ("dpop+jwt", False),
        ("JOSE", False),
        (7, False),
    ],
)
async def test_only_an_access_token_typ_is_accepted(issuer: RunningIssuer, typ: object, accepted: bool) -> None:
    token = sign(issuer.issuer.current_key(), claims_for(issuer), {"typ": typ})
    assert (await verifier_for(issuer).verify_token(token) is not None) is accepted


# --- log lines ------------------------------------------------------------------------------------------------


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{base64.urlsafe_b64encode(b'x' * 64).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": "k" * 8 * 1024 * 1024},
        {"alg": "RS256", "kid": "k", "typ": "t" * 1024 * 1024},
        {"alg": "x" * 1024 * 1024, "kid": "k"},
    ],
    ids=["8 MB kid", "1 MB typ", "1 MB alg"],
)
async def test_a_refused_token_log_line_is_bounded(
    issuer: RunningIssuer, caplog: pytest.LogCaptureFixture, header: dict[str, Any]
) -> None:
    verifier = verifier_for(issuer)
    with caplog.at_level(logging.DEBUG):
        assert await verifier.verify_token(unsigned(header, claims_for(issuer))) is None
    lines = [r.getMessage() for r in caplog.records]
    assert any('"token.refused"' in line for line in lines)
    assert max(len(line) for line in lines) < MAX_LOGGED_REASON_CHARS + 200
    refused = next(line for line in lines if '"token.refused"' in line)
    assert "chars)" in json.loads(refused)["reason"]  # cut, saying how long the value was
