"""Who is calling: the bearer token's organization, subject and scopes, and what they make of a thread id.

Threads belong to their caller. The invoke handler turns (organization, subject, thread id) into an opaque thread key,
and the graph and the thread store only ever see that key: naming another caller's thread id reaches a different,
empty thread. The tenant that governance checks is the token's organization, never an argument.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from oauth_resource.jwks import KeySet
from oauth_resource.verifier import JwtVerifier, TokenRules
from runtime.config import AuthConfig

INVOKE_SCOPE = "agentfoundry/invoke"
READ_SCOPE = "agentfoundry/read"
INSTANCE_SCOPES = (INVOKE_SCOPE, READ_SCOPE)
"""What a tenant's token carries (and a development token by default)."""
APPROVE_SCOPE = "agentfoundry/approve"
"""Whoever may decide tool calls that wait for approval (runtime.approvals.policy): not in a token by default."""
ADMIN_SCOPE = "agentfoundry/admin"
"""Operators only: the data-subject tools (export and erase one caller's threads). Tenants' tokens never carry it."""
SUPPORTED_SCOPES = (*INSTANCE_SCOPES, APPROVE_SCOPE, ADMIN_SCOPE)
ANONYMOUS_SUBJECT = "anonymous"


class ScopeError(PermissionError):
    """The caller's token lacks the scope a tool needs."""


@dataclass(frozen=True)
class Caller:
    organization: str
    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ScopeError(f"insufficient_scope: this call needs the {scope} scope")


def caller_from_token(token: AccessToken) -> Caller:
    claims = token.claims or {}
    return Caller(
        organization=str(claims["org"]), subject=token.subject or token.client_id, scopes=frozenset(token.scopes)
    )


def anonymous_caller(organization: str) -> Caller:
    """AUTH_MODE=none: one shared caller of the instance's own organization, allowed everything."""
    return Caller(organization=organization, subject=ANONYMOUS_SUBJECT, scopes=frozenset(INSTANCE_SCOPES))


def thread_key(caller: Caller, thread_id: str) -> str:
    """Opaque, fixed-length, and different for every (organization, subject, thread id)."""
    material = json.dumps([caller.organization, caller.subject, thread_id], separators=(",", ":"))
    return "th-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def default_audience(hostname: str) -> str:
    return f"https://{hostname}/mcp"


@dataclass(frozen=True)
class ResourceServer:
    """The instance as an OAuth resource server: the SDK's auth settings and our verifier."""

    settings: AuthSettings
    verifier: JwtVerifier

    @property
    def resource(self) -> str:
        return str(self.settings.resource_server_url)


def resource_server(auth: AuthConfig, *, organization: str, hostname: str) -> ResourceServer:
    assert auth.mode == "jwt" and auth.issuer is not None
    audience = auth.audience or default_audience(hostname)
    rules = TokenRules(
        issuer=auth.issuer,
        audience=audience,
        organization=organization,
        org_claim=auth.org_claim,
        audience_claim=auth.audience_claim,
        max_lifetime_seconds=auth.max_token_lifetime_seconds,
        app_roles_as_scopes=auth.app_roles_as_scopes,
    )
    keys = KeySet(
        issuer=auth.issuer,
        jwks_uri=auth.jwks_uri,
        max_age=auth.jwks_max_age_seconds,
        min_refetch_interval=auth.jwks_min_refetch_seconds,
    )
    # The resource's identifier in its metadata is a URL; an audience that is not one (an app client id, an
    # `api://` application id URI) is still what tokens are checked against.
    resource = audience if audience.startswith(("https://", "http://")) else default_audience(hostname)
    settings = AuthSettings(
        issuer_url=auth.issuer,
        resource_server_url=resource,
        required_scopes=None,  # per tool, see runtime/edge/server.py: invoke and read need different scopes
        validate_token_resource=False,  # the verifier checks `aud` itself
    )
    return ResourceServer(settings=settings, verifier=JwtVerifier(rules, keys))
