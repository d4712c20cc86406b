"""What a verified token may do: its scopes, read from the claims issuers put them in.

Delegated tokens (a user's, through a client) carry scopes in `scope` or `scp`. Microsoft Entra ID's app-only tokens
(the client credentials flow: a daemon or a pipeline) carry none: the API's app roles granted to the calling
application are in `roles`, a list. Those are read as scopes only where the issuer's settings ask for it
(`app_roles_as_scopes`), and only from a token without `scope` and `scp`: another issuer's `roles` may be a user's
roles, and a delegated Entra token's `roles` are its user's app roles, never the client's permissions.
"""

from __future__ import annotations

from typing import Any

SCOPE_CLAIMS = ("scope", "scp")
ROLES_CLAIM = "roles"


def scopes_of(claims: dict[str, Any], *, app_roles_as_scopes: bool = False) -> list[str]:
    """The token's scopes: `scope`, space-separated (RFC 9068; Cognito, Auth0, Keycloak), and `scp`, a
    space-separated string (Microsoft Entra ID) or a list (Okta). Both are read; each scope once, in order.
    With `app_roles_as_scopes`, a token with neither claim has its `roles` (app roles) as its scopes."""
    if app_roles_as_scopes and not any(name in claims for name in SCOPE_CLAIMS):
        return app_roles_of(claims)
    found: list[str] = []
    for name in SCOPE_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            found += value.split()
        elif isinstance(value, list):
            found += [s for item in value if isinstance(item, str) for s in item.split()]
    return list(dict.fromkeys(found))


def app_roles_of(claims: dict[str, Any]) -> list[str]:
    """The `roles` claim when it is a list of role values (non-empty strings without whitespace, as Entra ID allows
    them), each once, in order; any other shape grants nothing at all, rather than whatever part of it looks right."""
    roles = claims.get(ROLES_CLAIM)
    if not isinstance(roles, list):
        return []
    if not all(isinstance(role, str) and role and role.split() == [role] for role in roles):
        return []
    return list(dict.fromkeys(roles))
