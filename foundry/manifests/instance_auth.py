"""Which caller authentication one instance gets: the runtime's AUTH_* settings, from its environment's `auth` block
in agents/platform.yaml. Pure: no AWS, no CDK; the instance stack turns the result into container environment
variables (the platform Cognito pool's issuer URL and app client id are deploy-time values it reads from SSM).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from foundry.manifests.platform_settings import EnvironmentSettings, TokenIssuer

INSTANCE_SCOPES = ("agentfoundry/invoke", "agentfoundry/read")
PLATFORM_ISSUER: Literal["platform"] = "platform"
"""`issuer_source` of an instance whose tokens come from its platform stack's Cognito user pool."""

DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400
DEFAULT_JWKS_REFRESH_SECONDS = 3600
"""The runtime's own defaults: a setting equal to them sets no variable (templates stay as they were)."""

PLATFORM_ORG_CLAIM = "org"
"""The organization claim of the platform pool's tokens: its trigger adds it, its instances' AUTH_ORG_CLAIM."""

IssuerSource = Literal["organization", "environment", "platform", "none"]


@dataclass(frozen=True)
class InstanceAuth:
    """What the runtime's AUTH_* variables must say for one instance."""

    mode: Literal["jwt", "none"]
    issuer_source: IssuerSource
    issuer: str | None
    """None when the platform's Cognito user pool issues the tokens (a deploy-time value) or mode is none."""
    audience: str | None
    """None: the platform pool's app client id (a deploy-time value), or mode none."""
    audience_claim: Literal["aud", "client_id"]
    jwks_uri: str | None
    org_claim: str
    max_token_lifetime_seconds: int = DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
    jwks_refresh_seconds: int = DEFAULT_JWKS_REFRESH_SECONDS
    app_roles_as_scopes: bool = False
    """The issuer's app-only tokens' `roles` are their scopes (Entra ID); off, the variable is not set at all."""

    def runtime_environment(
        self, *, platform_issuer: str | None = None, platform_client_id: str | None = None
    ) -> dict[str, str]:
        """The container's AUTH_* variables, sorted; the platform values are needed (and used) only when the
        platform pool is the issuer. Variables left out take the runtime's defaults."""
        if self.mode == "none":
            return {"AUTH_MODE": "none"}
        issuer, audience = self.issuer, self.audience
        if self.issuer_source == PLATFORM_ISSUER:
            if platform_issuer is None or platform_client_id is None:
                raise ValueError("this instance's issuer is the platform's Cognito pool: pass its issuer and client id")
            issuer, audience = platform_issuer, platform_client_id
        if issuer is None:
            raise ValueError(f"an instance whose tokens come from its {self.issuer_source} issuer needs its issuer URL")
        env = {"AUTH_ISSUER": issuer, "AUTH_ORG_CLAIM": self.org_claim}
        if audience is not None:
            env["AUTH_AUDIENCE"] = audience
        if self.audience_claim != "aud":
            env["AUTH_AUDIENCE_CLAIM"] = self.audience_claim
        if self.jwks_uri is not None:
            env["AUTH_JWKS_URI"] = self.jwks_uri
        if self.max_token_lifetime_seconds != DEFAULT_MAX_TOKEN_LIFETIME_SECONDS:
            env["AUTH_MAX_TOKEN_LIFETIME_SECONDS"] = str(self.max_token_lifetime_seconds)
        if self.jwks_refresh_seconds != DEFAULT_JWKS_REFRESH_SECONDS:
            env["AUTH_JWKS_MAX_AGE_SECONDS"] = str(self.jwks_refresh_seconds)
        if self.app_roles_as_scopes:
            env["AUTH_APP_ROLES_AS_SCOPES"] = "true"
        return dict(sorted(env.items()))


def resolve_instance_auth(settings: EnvironmentSettings, *, organization_id: str, hostname: str) -> InstanceAuth:
    """The organization's own issuer if it names one, else the environment's, else the platform's Cognito pool."""
    auth = settings.auth
    if auth.mode == "none":
        return InstanceAuth("none", "none", None, None, "aud", None, "org")
    chosen: TokenIssuer | None = auth.organizations.get(organization_id)
    source: IssuerSource = "organization"
    if chosen is None:
        chosen, source = auth.issuer, "environment"
    lifetime, refresh = auth.max_token_lifetime_seconds, auth.jwks_refresh_seconds
    if chosen is None:  # the platform pool's tokens carry scopes (`scope`), never app roles
        return InstanceAuth(
            "jwt", PLATFORM_ISSUER, None, None, "client_id", None, PLATFORM_ORG_CLAIM, lifetime, refresh
        )
    audience = chosen.audience or f"https://{hostname}/mcp"
    return InstanceAuth(
        "jwt",
        source,
        chosen.issuer,
        audience,
        chosen.audience_claim,
        chosen.jwks_uri,
        chosen.org_claim,
        lifetime,
        refresh,
        app_roles_as_scopes=chosen.app_roles_as_scopes,
    )


def uses_platform_pool(settings: EnvironmentSettings) -> bool:
    """Whether the environment's platform stack has the Cognito pool: JWTs required, no environment issuer."""
    return settings.auth.mode == "jwt" and settings.auth.issuer is None


def platform_pool_organizations(settings: EnvironmentSettings, organization_ids: Iterable[str]) -> list[str]:
    """The organizations (of the environment's manifest) whose instances take their tokens from the platform's
    Cognito pool, sorted: each gets its own app client. Organizations with their own issuer are left out."""
    if not uses_platform_pool(settings):
        return []
    return sorted(set(organization_ids) - set(settings.auth.organizations))
