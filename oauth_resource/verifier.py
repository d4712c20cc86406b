"""Bearer JWT verification for an MCP resource server, as the MCP SDK's `TokenVerifier`.

A token is accepted only if it is a JWS signed with RS256 or ES256 by a key from the issuer's JWKS (the algorithm
bound to that key, never the one the header asks for), its `typ` header (when present) says it is a JWT access token,
its `iss` and `aud` are ours, `exp`/`nbf` hold (with a small clock leeway), it lives no longer than the maximum token
lifetime, it names a subject, and its organization claim equals ours when the server belongs to one organization.
Everything else is refused with a logged reason (cut to a bounded length) and no detail for the caller.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK
from mcp.server.auth.provider import AccessToken

from oauth_resource.jwks import ALLOWED_ALGORITHMS, KeySet
from oauth_resource.scopes import scopes_of

log = logging.getLogger("oauth_resource.verifier")

DEFAULT_ORG_CLAIM = "org"
DEFAULT_LEEWAY_SECONDS = 30
DEFAULT_MAX_LIFETIME_SECONDS = 24 * 3600
ACCEPTED_CACHE_SIZE = 4096
MAX_LOGGED_REASON_CHARS = 400
"""A refused token's reason is logged at most this long: the header it quotes is the caller's, and unbounded."""
MAX_QUOTED_CHARS = 80
"""How much of a caller-chosen value (a kid, a typ, a claim) a reason quotes."""
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt", "jwt", "application/jwt")
"""`typ` values we accept, lower-cased (RFC 9068's at+jwt, the plain JWT most issuers send; RFC 7515 §4.1.9 lets
the `application/` prefix be left out, so both spellings are the same type). An absent `typ` is accepted too."""


class TokenRefusedError(Exception):
    """Why a token was not accepted (logged; never sent to the caller)."""


@dataclass(frozen=True)
class TokenRules:
    issuer: str
    audience: str
    """The resource identifier the token must be issued for (its `aud`), e.g. https://<instance host>/mcp."""
    organization: str | None = None
    """The value the organization claim must have; None accepts any organization (a server for every tenant)."""
    org_claim: str | None = DEFAULT_ORG_CLAIM
    """None: the token needs no organization (the Foundry's own API, which is not a tenant's)."""
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
    audience_claim: str = "aud"
    """Where the audience is: `aud` (RFC 9068); `client_id` for Amazon Cognito's access tokens, which carry no `aud`
    (its pre-token-generation trigger may not add one), so the audience is the app client the token was issued to."""
    max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS
    """The longest `exp - iat` accepted. A token without `iat` is measured from now (`exp - now`): it is accepted
    only while it expires within this bound, so leaving `iat` out cannot buy a longer life."""
    app_roles_as_scopes: bool = False
    """Read an app-only token's `roles` (no `scope`, no `scp`) as its scopes: Microsoft Entra ID's client credentials
    tokens carry the application's permissions there. Off by default: another issuer's `roles` may be a user's."""


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """`repr` of a caller-chosen value, cut to `limit` characters with the original length said."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def bounded(reason: str, limit: int = MAX_LOGGED_REASON_CHARS) -> str:
    return reason if len(reason) <= limit else f"{reason[:limit]}… ({len(reason)} chars)"


def check_type(header: dict[str, Any]) -> None:
    """An ID token or any other JWT must not pass for an access token: refuse any `typ` but a JWT's (RFC 8725 §3.11)."""
    typ = header.get("typ")
    if typ is None:
        return
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise TokenRefusedError(f"typ {quoted(typ)} is not an access token's (at+jwt or JWT)")


def check_lifetime(claims: dict[str, Any], rules: TokenRules, now: float) -> None:
    """`exp - iat` within the maximum (PyJWT has checked both are integers and iat is not in the future); without
    `iat`, `exp - now`."""
    issued = claims.get("iat")
    lifetime = int(claims["exp"]) - (int(issued) if issued is not None else int(now))
    if lifetime > rules.max_lifetime_seconds + rules.leeway_seconds:
        measured = "exp - iat" if issued is not None else "exp - now (the token has no iat)"
        raise TokenRefusedError(
            f"lives {lifetime} s ({measured}), longer than the maximum of {rules.max_lifetime_seconds} s"
        )


@dataclass(frozen=True)
class _Accepted:
    token: AccessToken
    kid: str
    key: PyJWK
    """The key that verified it: once the key set no longer holds this very key, the token is checked afresh."""


class JwtVerifier:
    """The MCP SDK's `TokenVerifier` for JWT access tokens signed with the issuer's published keys."""

    def __init__(self, rules: TokenRules, keys: KeySet, *, cache_size: int = ACCEPTED_CACHE_SIZE) -> None:
        self.rules = rules
        self.keys = keys
        self._accepted: OrderedDict[str, _Accepted] = OrderedDict()
        self._cache_size = cache_size

    async def verify_token(self, token: str) -> AccessToken | None:
        """A client presents the same token on every request until it expires: a token fully verified once is
        remembered (bounded, least recently used first out) while it has not expired and the key set still holds
        the key that signed it; when the set is refreshed (every `max_age`) without that key, the token is refused."""
        accepted = self._accepted.pop(token, None)
        if accepted is not None:
            expires_at = accepted.token.expires_at
            unexpired = expires_at is None or expires_at + self.rules.leeway_seconds > time.time()
            if unexpired and await self.keys.key(accepted.kid) is accepted.key:
                self._accepted[token] = accepted
                return accepted.token
        try:
            accepted = await self._verify(token)
        except TokenRefusedError as exc:
            log.info("%s", json.dumps({"event": "token.refused", "reason": bounded(str(exc))}))
            return None
        self._accepted[token] = accepted
        if len(self._accepted) > self._cache_size:
            self._accepted.popitem(last=False)
        return accepted.token

    async def verify(self, token: str) -> AccessToken:
        return (await self._verify(token)).token

    async def _verify(self, token: str) -> _Accepted:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefusedError("not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise TokenRefusedError(
                f"algorithm {quoted(algorithm)} is not allowed (only {', '.join(ALLOWED_ALGORITHMS)})"
            )
        check_type(header)
        if not isinstance(kid, str) or not kid:
            raise TokenRefusedError("no key id (kid) in the header")
        key = await self.keys.key(kid)
        if key is None:
            raise TokenRefusedError(f"unknown key id {quoted(kid)}")
        rules = self.rules
        by_aud = rules.audience_claim == "aud"
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=rules.audience if by_aud else None,
                issuer=rules.issuer,
                leeway=rules.leeway_seconds,
                options={
                    "require": ["exp", "iss", "sub", "aud" if by_aud else rules.audience_claim],
                    "verify_signature": True,
                    "verify_aud": by_aud,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenRefusedError(f"{type(exc).__name__}: {exc}") from None
        check_lifetime(claims, rules, time.time())
        if not by_aud and claims.get(rules.audience_claim) != rules.audience:
            raise TokenRefusedError(
                f"{rules.audience_claim} {quoted(claims.get(rules.audience_claim))} is not {rules.audience!r}"
            )
        organization = claims.get(rules.org_claim) if rules.org_claim is not None else None
        if rules.org_claim is not None and (not isinstance(organization, str) or not organization):
            raise TokenRefusedError(f"no organization claim {rules.org_claim!r}")
        if rules.organization is not None and organization != rules.organization:
            raise TokenRefusedError(
                f"organization {quoted(organization)} is not this server's ({rules.organization!r})"
            )
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRefusedError("the subject (sub) is empty")
        client_id = claims.get("client_id") or claims.get("azp") or claims.get("appid") or subject
        access = AccessToken(
            token=token,
            client_id=str(client_id),
            scopes=scopes_of(claims, app_roles_as_scopes=rules.app_roles_as_scopes),
            expires_at=int(claims["exp"]),
            resource=rules.audience,
            subject=subject,
            claims={"iss": claims["iss"], **({"org": organization} if organization is not None else {})},
        )
        return _Accepted(access, kid, key)
