"""The issuer's key set: fetched over real HTTP from a local issuer, cached, fetched again for an unknown key id at
most once per interval, and never holding a key we must not verify with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from oauth_resource.dev_issuer import RunningIssuer, generate_key, serve_issuer
from oauth_resource.jwks import KeySet, discovery_urls, parse_key_set
from oauth_resource.urls import check_fetch_url
from oauth_resource.verifier import JwtVerifier, TokenRules


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path / "issuer") as running:
        yield running


def jwks_fetches(issuer: RunningIssuer) -> int:
    return issuer.requests.count("/jwks.json")


async def test_unknown_key_ids_fetch_the_set_again_at_most_once_per_interval(issuer: RunningIssuer) -> None:
    clock = Clock()
    keys = KeySet(issuer=issuer.url, min_refetch_interval=30, clock=clock)
    first = issuer.issuer.current_key().kid
    assert await keys.key(first) is not None
    assert jwks_fetches(issuer) == 1
    for n in range(50):  # a stream of forged key ids
        assert await keys.key(f"forged-{n}") is None
    assert jwks_fetches(issuer) == 1

    rotated = issuer.issuer.rotate().kid
    assert await keys.key(rotated) is None  # still inside the interval
    clock.now += 31
    assert await keys.key(rotated) is not None  # picked up, no restart
    assert await keys.key(first) is not None  # the old key is still published
    assert jwks_fetches(issuer) == 2


async def test_keys_are_served_from_the_cache_until_they_are_stale(issuer: RunningIssuer) -> None:
    clock = Clock()
    keys = KeySet(issuer=issuer.url, max_age=3600, clock=clock)
    kid = issuer.issuer.current_key().kid
    for _ in range(20):
        assert await keys.key(kid) is not None
    assert jwks_fetches(issuer) == 1
    clock.now += 3601
    assert await keys.key(kid) is not None
    assert jwks_fetches(issuer) == 2


async def test_an_unreachable_issuer_keeps_the_keys_already_held(issuer: RunningIssuer) -> None:
    clock = Clock()
    keys = KeySet(issuer=issuer.url, max_age=10, min_refetch_interval=0, clock=clock)
    kid = issuer.issuer.current_key().kid
    assert await keys.key(kid) is not None
    issuer.server.shutdown()
    issuer.server.server_close()
    clock.now += 11
    assert await keys.key(kid) is not None


async def test_the_jwks_url_comes_from_discovery_and_the_issuer_must_match(issuer: RunningIssuer) -> None:
    keys = KeySet(issuer=issuer.url)
    await keys.refresh()
    assert keys.jwks_uri == f"{issuer.url}/jwks.json"
    assert issuer.requests[0] == "/.well-known/openid-configuration"
    impostor = KeySet(issuer=issuer.url.replace("127.0.0.1", "localhost"))
    with pytest.raises(Exception, match="names issuer"):
        await impostor.refresh()


def test_discovery_tries_openid_connect_then_rfc_8414() -> None:
    assert discovery_urls("https://login.example.com/tenant-a") == [
        "https://login.example.com/tenant-a/.well-known/openid-configuration",
        "https://login.example.com/.well-known/oauth-authorization-server/tenant-a",
    ]


def test_only_asymmetric_signing_keys_with_an_allowed_algorithm_are_kept() -> None:
    es = generate_key("ES256").public_jwk()
    rs = generate_key("RS256").public_jwk()
    document = {
        "keys": [
            es,
            rs,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**generate_key("ES256").public_jwk(), "kid": "enc", "use": "enc"},
            {**generate_key("RS256").public_jwk(), "kid": "rs512", "alg": "RS512"},
            {**generate_key("RS256").public_jwk(), "kid": "mismatch", "alg": "ES256"},
            {k: v for k, v in generate_key("ES256").public_jwk().items() if k != "kid"},
        ]
    }
    assert sorted(parse_key_set(document, source="test")) == sorted([es["kid"], rs["kid"]])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://login.example.com/.well-known/jwks.json", True),
        ("http://127.0.0.1:9000/jwks.json", True),
        ("http://login.example.com/jwks.json", False),
        ("file:///etc/keys.json", False),
    ],
)
def test_keys_are_fetched_over_https_or_from_loopback_only(url: str, allowed: bool) -> None:
    if allowed:
        assert check_fetch_url(url, "jwks_uri") == url
    else:
        with pytest.raises(ValueError, match="must be an https:// URL"):
            check_fetch_url(url, "jwks_uri")


async def test_a_cognito_style_token_is_checked_against_its_client_id(issuer: RunningIssuer) -> None:
    """Amazon Cognito's access tokens carry no `aud`: the audience is the app client the token was issued to."""
    rules = TokenRules(issuer=issuer.url, audience="app-client-1", organization="acme", audience_claim="client_id")
    verifier = JwtVerifier(rules, KeySet(issuer=issuer.url))

    def cognito_token(client_id: str) -> str:
        key = issuer.issuer.current_key()
        now = int(time.time())
        claims = {"iss": issuer.url, "sub": client_id, "client_id": client_id, "token_use": "access",
                  "scope": "agentfoundry/invoke", "org": "acme", "iat": now, "exp": now + 60}  # fmt: skip
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})

    accepted = await verifier.verify_token(cognito_token("app-client-1"))
    assert accepted is not None and accepted.scopes == ["agentfoundry/invoke"]
    assert await verifier.verify_token(cognito_token("app-client-2")) is None
