"""Bearer JWT verification for an MCP resource server, as the MCP SDK's `TokenVerifier`.

A token is accepted only if it is a JWS signed with RS256 or ES256 by a key from the issuer's JWKS (the algorithm
bound to that key, never the one the header asks for), its `iss` and `aud` are ours, `exp`/`nbf` hold (with a small
clock leeway), it names a subject, and its organization claim equals ours when the server belongs to one
organization. Everything else is refused with a logged reason and no detail for the caller.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from mcp.server.auth.provider import AccessToken

from oauth_resource.jwks import ALLOWED_ALGORITHMS, KeySet

log = logging.getLogger("oauth_resource.verifier")

DEFAULT_ORG_CLAIM = "org"
DEFAULT_LEEWAY_SECONDS = 30
ACCEPTED_CACHE_SIZE = 4096


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


def scopes_of(claims: dict[str, object]) -> list[str]:
    """The standard `scope` claim: space-separated (RFC 8693 / RFC 9068)."""
    scope = claims.get("scope")
    return scope.split() if isinstance(scope, str) else []


class JwtVerifier:
    """The MCP SDK's `TokenVerifier` for JWT access tokens signed with the issuer's published keys."""

    def __init__(self, rules: TokenRules, keys: KeySet, *, cache_size: int = ACCEPTED_CACHE_SIZE) -> None:
        self.rules = rules
        self.keys = keys
        self._accepted: OrderedDict[str, AccessToken] = OrderedDict()
        self._cache_size = cache_size

    async def verify_token(self, token: str) -> AccessToken | None:
        """A client presents the same token on every request until it expires: a token fully verified once is
        remembered (bounded, least recently used first out) and only its expiry is checked again."""
        accepted = self._accepted.get(token)
        if accepted is not None:
            if accepted.expires_at is not None and accepted.expires_at + self.rules.leeway_seconds > time.time():
                self._accepted.move_to_end(token)
                return accepted
            del self._accepted[token]
        try:
            accepted = await self.verify(token)
        except TokenRefusedError as exc:
            log.info('{"event": "token.refused", "reason": "%s"}', str(exc).replace('"', "'"))
            return None
        self._accepted[token] = accepted
        if len(self._accepted) > self._cache_size:
            self._accepted.popitem(last=False)
        return accepted

    async def verify(self, token: str) -> AccessToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefusedError("not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise TokenRefusedError(f"algorithm {algorithm!r} is not allowed (only {', '.join(ALLOWED_ALGORITHMS)})")
        if not isinstance(kid, str) or not kid:
            raise TokenRefusedError("no key id (kid) in the header")
        key = await self.keys.key(kid)
        if key is None:
            raise TokenRefusedError(f"unknown key id {kid!r}")
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
        if not by_aud and claims.get(rules.audience_claim) != rules.audience:
            raise TokenRefusedError(
                f"{rules.audience_claim} {claims.get(rules.audience_claim)!r} is not {rules.audience!r}"
            )
        organization = claims.get(rules.org_claim) if rules.org_claim is not None else None
        if rules.org_claim is not None and (not isinstance(organization, str) or not organization):
            raise TokenRefusedError(f"no organization claim {rules.org_claim!r}")
        if rules.organization is not None and organization != rules.organization:
            raise TokenRefusedError(f"organization {organization!r} is not this server's ({rules.organization!r})")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRefusedError("the subject (sub) is empty")
        client_id = claims.get("client_id") or claims.get("azp") or subject
        return AccessToken(
            token=token,
            client_id=str(client_id),
            scopes=scopes_of(claims),
            expires_at=int(claims["exp"]),
            resource=rules.audience,
            subject=subject,
            claims={"iss": claims["iss"], **({"org": organization} if organization is not None else {})},
        )
