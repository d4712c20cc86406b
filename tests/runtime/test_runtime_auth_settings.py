"""The token limits and AUTH_APP_ROLES_AS_SCOPES among the runtime's AUTH_* variables: read, defaulted and checked,
naming the variable."""

from __future__ import annotations

import pytest

from runtime.config import ConfigError, auth_from_env

ISSUER = {"AUTH_ISSUER": "https://login.example.com/oauth2/default"}


def test_the_limits_default_to_a_day_and_an_hour() -> None:
    auth = auth_from_env(ISSUER)
    assert (auth.max_token_lifetime_seconds, auth.jwks_max_age_seconds) == (86400, 3600.0)


def test_the_limits_are_read_from_their_variables() -> None:
    auth = auth_from_env({**ISSUER, "AUTH_MAX_TOKEN_LIFETIME_SECONDS": "3600", "AUTH_JWKS_MAX_AGE_SECONDS": "300"})
    assert (auth.max_token_lifetime_seconds, auth.jwks_max_age_seconds) == (3600, 300.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a day", "AUTH_MAX_TOKEN_LIFETIME_SECONDS must be an integer, got 'a day'"),
        ("10", "AUTH_MAX_TOKEN_LIFETIME_SECONDS must be between 60 and 2592000, got 10"),
        ("31536000", "AUTH_MAX_TOKEN_LIFETIME_SECONDS must be between 60 and 2592000, got 31536000"),
    ],
)
def test_a_bad_maximum_lifetime_is_refused_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        auth_from_env({**ISSUER, "AUTH_MAX_TOKEN_LIFETIME_SECONDS": value})


def test_app_roles_are_not_scopes_unless_the_variable_says_true() -> None:
    assert auth_from_env(ISSUER).app_roles_as_scopes is False
    assert auth_from_env({**ISSUER, "AUTH_APP_ROLES_AS_SCOPES": ""}).app_roles_as_scopes is False
    assert auth_from_env({**ISSUER, "AUTH_APP_ROLES_AS_SCOPES": "false"}).app_roles_as_scopes is False
    assert auth_from_env({**ISSUER, "AUTH_APP_ROLES_AS_SCOPES": "true"}).app_roles_as_scopes is True
    assert auth_from_env({**ISSUER, "AUTH_APP_ROLES_AS_SCOPES": " True "}).app_roles_as_scopes is True


@pytest.mark.parametrize("value", ["yes", "1", "on", "roles"])
def test_a_bad_app_roles_setting_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=f"AUTH_APP_ROLES_AS_SCOPES must be 'true' or 'false', got '{value}'"):
        auth_from_env({**ISSUER, "AUTH_APP_ROLES_AS_SCOPES": value})
