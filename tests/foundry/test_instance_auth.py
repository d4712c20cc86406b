"""Each instance's caller authentication, resolved from its environment's `auth` settings (a pure function), and the
platform settings' rules for it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from foundry.manifests.instance_auth import PLATFORM_ORG_CLAIM, platform_pool_organizations, resolve_instance_auth
from foundry.manifests.platform_settings import EnvironmentSettings

HOST = "acme-retail-dev.dev.agentfoundry.internal"


def settings(auth: dict[str, Any] | None = None, *, internet_facing: bool = False) -> EnvironmentSettings:
    load_balancer: dict[str, Any] = {"internet_facing": internet_facing}
    if internet_facing:
        load_balancer["certificate_arn"] = "arn:aws:acm:us-east-1:111111111111:certificate/abc"
    else:
        load_balancer["plain_http"] = True
    document: dict[str, Any] = {
        "account": "111111111111",
        "region": "us-east-1",
        "vpc": {"cidr": "10.0.0.0/16"},
        "zone": {"name": "dev.example.com", "private": True},
        "load_balancer": load_balancer,
    }
    if auth is not None:
        document["auth"] = auth
    return EnvironmentSettings.model_validate(document, strict=False)


def test_without_an_issuer_the_platform_cognito_pool_issues_the_tokens() -> None:
    resolved = resolve_instance_auth(settings(), organization_id="acme", hostname=HOST)
    assert (resolved.mode, resolved.issuer_source, resolved.audience_claim) == ("jwt", "platform", "client_id")
    assert resolved.runtime_environment(
        platform_issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc", platform_client_id="client123"
    ) == {
        "AUTH_AUDIENCE": "client123",
        "AUTH_AUDIENCE_CLAIM": "client_id",
        "AUTH_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc",
        "AUTH_ORG_CLAIM": "org",
    }
    with pytest.raises(ValueError, match="platform's Cognito pool"):
        resolved.runtime_environment()


def test_an_environment_issuer_gives_the_instance_url_as_audience() -> None:
    auth = {"issuer": {"issuer": "https://login.example.com/oauth2/default", "org_claim": "tenant"}}
    resolved = resolve_instance_auth(settings(auth), organization_id="acme", hostname=HOST)
    assert resolved.issuer_source == "environment"
    assert resolved.runtime_environment() == {
        "AUTH_AUDIENCE": f"https://{HOST}/mcp",
        "AUTH_ISSUER": "https://login.example.com/oauth2/default",
        "AUTH_ORG_CLAIM": "tenant",
    }


def test_an_organization_with_its_own_identity_provider_gets_it_and_the_others_do_not() -> None:
    entra = {
        "issuer": "https://login.microsoftonline.com/0000-tenant/v2.0",
        "jwks_uri": "https://login.microsoftonline.com/0000-tenant/discovery/v2.0/keys",
        "org_claim": "https://agentfoundry.example.com/org",
        "audience": "api://agentfoundry-globex",
    }
    auth = {"issuer": {"issuer": "https://login.example.com"}, "organizations": {"globex": entra}}
    globex = resolve_instance_auth(settings(auth), organization_id="globex", hostname=HOST)
    acme = resolve_instance_auth(settings(auth), organization_id="acme", hostname=HOST)
    assert globex.issuer_source == "organization" and globex.issuer == entra["issuer"]
    assert globex.runtime_environment()["AUTH_JWKS_URI"] == entra["jwks_uri"]
    assert globex.runtime_environment()["AUTH_AUDIENCE"] == "api://agentfoundry-globex"
    assert acme.issuer_source == "environment" and acme.issuer == "https://login.example.com"


def test_mode_none_on_an_internal_load_balancer_turns_auth_off() -> None:
    resolved = resolve_instance_auth(settings({"mode": "none"}), organization_id="acme", hostname=HOST)
    assert resolved.runtime_environment() == {"AUTH_MODE": "none"}


def test_mode_none_is_refused_for_an_internet_facing_load_balancer() -> None:
    with pytest.raises(
        ValidationError, match=r"auth\.mode: none is allowed only for an environment whose load balancer"
    ):
        settings({"mode": "none"}, internet_facing=True)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"mode": "none", "issuer": {"issuer": "https://login.example.com"}}, "mode: none checks no tokens"),
        ({"issuer": {"issuer": "http://login.example.com"}}, "String should match pattern"),
        ({"issuer": {"issuer": "https://cognito.example.com", "audience_claim": "client_id"}}, "needs audience"),
        ({"organizations": {"Not_A_Label": {"issuer": "https://login.example.com"}}}, "organizations"),
        ({"issuer": {"issuer": "https://login.example.com", "org_claim": "has space"}}, "org_claim"),
    ],
)
def test_bad_auth_settings_are_refused_naming_the_field(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(auth)


def test_the_token_limits_reach_the_runtime_as_auth_variables_when_they_differ_from_its_defaults() -> None:
    issuer = {"issuer": "https://login.example.com/oauth2/default"}
    default = resolve_instance_auth(settings({"issuer": issuer}), organization_id="acme", hostname=HOST)
    assert not {"AUTH_MAX_TOKEN_LIFETIME_SECONDS", "AUTH_JWKS_MAX_AGE_SECONDS"} & set(default.runtime_environment())
    limited = {"issuer": issuer, "max_token_lifetime_seconds": 3600, "jwks_refresh_seconds": 300}
    for auth in (limited, {k: v for k, v in limited.items() if k != "issuer"}):  # an issuer's or the platform pool's
        resolved = resolve_instance_auth(settings(auth), organization_id="acme", hostname=HOST)
        env = resolved.runtime_environment(platform_issuer="https://cognito.example.com", platform_client_id="c1")
        assert env["AUTH_MAX_TOKEN_LIFETIME_SECONDS"] == "3600" and env["AUTH_JWKS_MAX_AGE_SECONDS"] == "300"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"max_token_lifetime_seconds": 40 * 86400}, "max_token_lifetime_seconds"),
        ({"max_token_lifetime_seconds": 10}, "max_token_lifetime_seconds"),
        ({"jwks_refresh_seconds": 2 * 86400}, "jwks_refresh_seconds"),
    ],
)
def test_token_limits_out_of_range_are_refused_naming_the_field(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(auth)


def test_the_platform_pool_serves_every_organization_without_an_issuer_of_its_own() -> None:
    entra = {"issuer": "https://login.microsoftonline.com/t/v2.0", "audience": "api://af", "org_claim": "tid"}
    manifest_orgs = ["globex", "acme", "acme", "initech"]
    assert platform_pool_organizations(settings(), manifest_orgs) == ["acme", "globex", "initech"]
    assert platform_pool_organizations(settings({"organizations": {"globex": entra}}), manifest_orgs) == [
        "acme",
        "initech",
    ]
    environment_issuer = {"issuer": {"issuer": "https://login.example.com"}}
    assert platform_pool_organizations(settings(environment_issuer), manifest_orgs) == []
    assert platform_pool_organizations(settings({"mode": "none"}), manifest_orgs) == []
    platform = resolve_instance_auth(settings(), organization_id="acme", hostname=HOST)
    assert platform.org_claim == PLATFORM_ORG_CLAIM == "org", "the claim the pool's trigger adds is the one checked"


ENTRA = {
    "issuer": "https://login.microsoftonline.com/0000-tenant/v2.0",
    "audience": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    "org_claim": "https://agentfoundry.example.com/org",
}


def test_app_roles_as_scopes_reaches_only_the_instances_of_the_issuer_that_asks_for_it() -> None:
    auth = {"issuer": {"issuer": "https://login.example.com"}, "organizations": {"globex": {**ENTRA,
            "app_roles_as_scopes": True}}}  # fmt: skip
    globex = resolve_instance_auth(settings(auth), organization_id="globex", hostname=HOST)
    acme = resolve_instance_auth(settings(auth), organization_id="acme", hostname=HOST)
    assert globex.runtime_environment()["AUTH_APP_ROLES_AS_SCOPES"] == "true"
    assert "AUTH_APP_ROLES_AS_SCOPES" not in acme.runtime_environment()


@pytest.mark.parametrize("auth", [{"issuer": ENTRA}, {"issuer": {**ENTRA, "app_roles_as_scopes": False}}, {}])
def test_app_roles_as_scopes_off_sets_no_variable(auth: dict[str, Any]) -> None:
    """Off is the runtime's default: no variable, so the templates of instances that do not ask stay as they were."""
    resolved = resolve_instance_auth(settings(auth), organization_id="acme", hostname=HOST)
    env = resolved.runtime_environment(platform_issuer="https://cognito.example.com", platform_client_id="c1")
    assert "AUTH_APP_ROLES_AS_SCOPES" not in env


@pytest.mark.parametrize("value", ["sometimes", 2, ["yes"]])
def test_a_bad_app_roles_as_scopes_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError, match=r"issuer\.app_roles_as_scopes"):
        settings({"issuer": {**ENTRA, "app_roles_as_scopes": value}})
