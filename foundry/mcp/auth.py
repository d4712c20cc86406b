"""Who may call the Foundry MCP server over HTTP: the static bearer token for local use (all scopes), and, when an
issuer is configured, the same JWT verification as the instances (oauth_resource/) with the Foundry's scopes:
`foundry:read` for every call, `foundry:deploy` as well for `foundry.deploy_instance` and for
`foundry.erase_subject_data` (it changes what an instance holds; the operator's instance token is needed besides).

The deploy scope is checked on the JSON-RPC request before the tool runs (an ASGI gate around the SDK's /mcp route),
so a token without it gets the MCP authorization specification's answer: 403 with
`WWW-Authenticate: Bearer error="insufficient_scope", scope="foundry:deploy"`, and nothing runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauth_resource.jwks import KeySet
from oauth_resource.urls import check_fetch_url
from oauth_resource.verifier import JwtVerifier, TokenRules

READ_SCOPE = "foundry:read"
DEPLOY_SCOPE = "foundry:deploy"
DEPLOY_TOOL = "foundry.deploy_instance"
GATED_TOOLS = (DEPLOY_TOOL, "foundry.erase_subject_data")
"""The tools that change something outside the Foundry: each needs the deploy scope."""
ISSUER_ENV, AUDIENCE_ENV, JWKS_ENV = "FOUNDRY_AUTH_ISSUER", "FOUNDRY_AUTH_AUDIENCE", "FOUNDRY_AUTH_JWKS_URI"
MAX_GATED_BODY = 1024 * 1024


@dataclass(frozen=True)
class JwtOptions:
    issuer: str
    audience: str
    """The Foundry's own resource identifier, e.g. https://foundry.example.com/mcp (the tokens' `aud`)."""
    jwks_uri: str | None = None


def jwt_options(
    environ: Mapping[str, str], *, issuer: str | None, audience: str | None, jwks_uri: str | None
) -> JwtOptions | None:
    """Options win over FOUNDRY_AUTH_* variables; None when no issuer is configured. Raises ValueError naming the
    option when the set is incomplete or a URL could be read in clear text over a network."""
    issuer = issuer or environ.get(ISSUER_ENV, "").strip() or None
    audience = audience or environ.get(AUDIENCE_ENV, "").strip() or None
    jwks_uri = jwks_uri or environ.get(JWKS_ENV, "").strip() or None
    if issuer is None:
        if audience or jwks_uri:
            raise ValueError(f"--auth-audience/--auth-jwks-uri need --auth-issuer (or {ISSUER_ENV})")
        return None
    if audience is None:
        raise ValueError(
            f"--auth-issuer needs --auth-audience (or {AUDIENCE_ENV}): this server's URL, e.g. https://HOST/mcp"
        )
    check_fetch_url(issuer, "--auth-issuer")
    if jwks_uri is not None:
        check_fetch_url(jwks_uri, "--auth-jwks-uri")
    return JwtOptions(issuer=issuer, audience=audience, jwks_uri=jwks_uri)


class FirstAcceptingVerifier:
    """Tries each verifier in turn (the static token first: a constant-time compare, no key lookup)."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self.verifiers = list(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            if (accepted := await verifier.verify_token(token)) is not None:
                return accepted
        return None


def auth_for(static: TokenVerifier | None, jwt: JwtOptions | None) -> tuple[TokenVerifier, AuthSettings]:
    """The verifier and the SDK's auth settings for the HTTP transport (at least one of the two schemes)."""
    verifiers: list[TokenVerifier] = [v for v in (static,) if v is not None]
    if jwt is None:
        # No OAuth server: the issuer URL that AuthSettings requires is never advertised or used.
        return verifiers[0], AuthSettings(issuer_url="http://localhost", resource_server_url=None)
    rules = TokenRules(issuer=jwt.issuer, audience=jwt.audience, organization=None, org_claim=None)
    verifiers.append(JwtVerifier(rules, KeySet(issuer=jwt.issuer, jwks_uri=jwt.jwks_uri)))
    settings = AuthSettings(
        issuer_url=jwt.issuer,
        resource_server_url=jwt.audience,
        required_scopes=[READ_SCOPE],
        validate_token_resource=False,  # the JWT verifier checks `aud` itself
    )
    return FirstAcceptingVerifier(verifiers), settings


def gate_deploys(app: Starlette, settings: AuthSettings, path: str = "/mcp") -> None:
    """Wraps the SDK's /mcp route so that a `tools/call` of a GATED_TOOLS tool needs the deploy scope."""
    metadata = str(build_resource_metadata_url(settings.resource_server_url)) if settings.resource_server_url else None
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == path:
            route.app = DeployScopeGate(route.app, metadata)


class DeployScopeGate:
    def __init__(self, app: ASGIApp, resource_metadata_url: str | None) -> None:
        self.app = app
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] != "http" or scope.get("method") != "POST" or not isinstance(user, AuthenticatedUser):
            await self.app(scope, receive, send)  # the SDK's RequireAuthMiddleware answers the unauthenticated
            return
        if DEPLOY_SCOPE in user.scopes:
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        if any(_calls_tool(body, tool) for tool in GATED_TOOLS):
            await self._refuse(send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        parts = ['error="insufficient_scope"', f'error_description="Required scope: {DEPLOY_SCOPE}"']
        parts.append(f'scope="{DEPLOY_SCOPE}"')
        if self.resource_metadata_url:
            parts.append(f'resource_metadata="{self.resource_metadata_url}"')
        body = json.dumps({"error": "insufficient_scope", "error_description": f"Required scope: {DEPLOY_SCOPE}"})
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", ("Bearer " + ", ".join(parts)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False) or size > MAX_GATED_BODY:
            break
    return messages, b"".join(chunks)


def _calls_tool(body: bytes, tool: str) -> bool:
    """Whether a JSON-RPC request (or batch) calls `tool`; anything unparsable is left to the SDK to refuse, except
    an oversized body, which counts as a call (it cannot be checked)."""
    if len(body) > MAX_GATED_BODY:
        return True
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return False
    requests = parsed if isinstance(parsed, list) else [parsed]
    return any(
        isinstance(r, dict)
        and r.get("method") == "tools/call"
        and isinstance(r.get("params"), dict)
        and r["params"].get("name") == tool
        for r in requests
    )
