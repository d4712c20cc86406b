"""Settings of one runtime process, from the environment (ECS) and the command line (local use).

Secret values arrive as `SECRET_<NAME>` variables; they are kept in a mapping that never renders its values,
so no log line, error or tool result can carry them by accident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from instance_contract.mcp_sessions import MAX_SESSIONS_PER_CALLER, MAX_SESSIONS_PER_TASK
from instance_contract.thread_state import STATE_URL_ENV
from oauth_resource.urls import check_fetch_url
from runtime.state_url import StateLocation, StateUrlError, parse_state_url
from runtime.telemetry.telemetry_settings import TelemetryConfigError, TelemetrySettings, telemetry_settings

DEFAULT_PORT = 8080
DEFAULT_THREAD_WAIT_SECONDS = 30.0
"""How long a turn waits for its thread's previous turn (runtime.store.thread_turns) before thread_busy."""
DEFAULT_USAGE_RETENTION_DAYS = 400
"""How long the usage ledger (runtime.store.usage_ledger) keeps an hour: long enough for a year's invoices and
disputes."""
DEFAULT_DRAIN_SECONDS = 20
"""Below ECS's default 30 s stop timeout, so in-flight requests finish before SIGKILL."""
DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
MAX_TOKEN_LIFETIME_CEILING = 30 * 24 * 3600
"""AUTH_MAX_TOKEN_LIFETIME_SECONDS may not exceed 30 days: a bearer token living longer is a password."""
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SECRET_PREFIX = "SECRET_"  # noqa: S105 - the variable-name prefix, not a secret


class ConfigError(ValueError):
    """A setting that cannot work; the message names the variable or option."""


class Secrets(Mapping[str, str]):
    """Secret name -> value. `repr`/`str` list names only, never values."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets(names={sorted(self._values)!r})"

    __str__ = __repr__


def secret_env_name(secret_name: str) -> str:
    """'ticket-api-token' -> 'SECRET_TICKET_API_TOKEN' (the contract with the CDK task definition)."""
    return SECRET_PREFIX + secret_name.upper().replace("-", "_")


@dataclass(frozen=True)
class ExpectedIdentity:
    """What the deployment says this process is; each part left None is not checked (local use)."""

    organization_id: str | None = None
    domain_id: str | None = None
    environment: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class OfflineModelSettings:
    """Knobs of the offline provider, for local runs and tests: slow it down, or make an agent's calls fail."""

    latency_ms: float = 0.0
    slow_agents: frozenset[str] = frozenset()
    """The agents whose calls take `latency_ms`; empty: every agent's."""
    fail_agents: frozenset[str] = frozenset()


AuthMode = Literal["jwt", "none"]


@dataclass(frozen=True)
class AuthConfig:
    """Who may call the instance (the AUTH_* contract). `jwt`: bearer JWTs from `issuer`; `none`: no check at all,
    only when AUTH_MODE=none says so (loopback tries, or an internal load balancer whose settings ask for it)."""

    mode: AuthMode | None = None
    """None: neither AUTH_ISSUER nor AUTH_MODE=none was given; HTTP serving refuses to start."""
    issuer: str | None = None
    audience: str | None = None
    """Default https://<instance hostname>/mcp (from the bundle)."""
    jwks_uri: str | None = None
    """Default: from the issuer's discovery document."""
    org_claim: str = "org"
    audience_claim: str = "aud"
    """`client_id` for Amazon Cognito access tokens (no `aud`); AUDIENCE is then the app client id."""
    jwks_max_age_seconds: float = 3600.0
    """The key set's refresh interval: a key removed from the issuer's JWKS stops working within it."""
    jwks_min_refetch_seconds: float = 30.0
    max_token_lifetime_seconds: int = DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
    """The longest `exp - iat` accepted (a token without `iat`: `exp - now`)."""
    app_roles_as_scopes: bool = False
    """AUTH_APP_ROLES_AS_SCOPES: an app-only token's `roles` (no `scope`/`scp`) are its scopes (Entra ID)."""


@dataclass(frozen=True)
class RuntimeConfig:
    bundle_uri: str
    bundle_hash: str | None = None
    identity: ExpectedIdentity = field(default_factory=ExpectedIdentity)
    host: str = "0.0.0.0"  # noqa: S104 - a container serves on all interfaces; local runs pass --host
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    aws_region: str | None = None
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    offline: OfflineModelSettings = field(default_factory=OfflineModelSettings)
    secrets_env: Mapping[str, str] = field(default_factory=dict)
    """Every SECRET_* variable, keyed by variable name; matched against the bundle's secret names later."""
    log_level: str = "INFO"
    state: StateLocation | None = None
    """Where threads live (STATE_URL / --state); None: the instance's default SQLite file (runtime.state_url)."""
    thread_wait_seconds: float = DEFAULT_THREAD_WAIT_SECONDS
    """How long a turn waits for the thread's previous turn before it is refused (thread_busy)."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    """The OTEL_* variables (runtime.telemetry.telemetry_settings)."""
    usage_retention_days: int = DEFAULT_USAGE_RETENTION_DAYS
    """How long the usage ledger keeps an hour (USAGE_RETENTION_DAYS, 1 to 3650)."""
    max_sessions: int = MAX_SESSIONS_PER_TASK
    """MCP sessions this task holds at most (MCP_MAX_SESSIONS, 1 to 100000; runtime.edge.sessions_http)."""
    max_sessions_per_caller: int = MAX_SESSIONS_PER_CALLER
    """MCP sessions one caller holds on this task at most (MCP_MAX_SESSIONS_PER_CALLER, 1 to 100000;
    runtime.edge.caller_sessions)."""

    def secrets_for(self, names: list[str]) -> tuple[Secrets, list[str]]:
        """The bundle's declared secrets that were injected, and the names that are missing."""
        found = {n: self.secrets_env[secret_env_name(n)] for n in names if secret_env_name(n) in self.secrets_env}
        return Secrets(found), [n for n in names if n not in found]

    def host_allow_list(self) -> list[str]:
        """Host headers MCP accepts: the configured names (with or without a port) and always localhost."""
        hosts: list[str] = []
        for host in (*self.allowed_hosts, *LOCAL_HOSTS):
            hosts += [host, f"{host}:*"]
        return hosts


def config_from_env(
    env: Mapping[str, str],
    *,
    bundle: str | None = None,
    bundle_hash: str | None = None,
    host: str | None = None,
    port: int | None = None,
    state: str | None = None,
) -> RuntimeConfig:
    """Command-line values win over the environment; everything else comes from the contract's variables."""
    bundle_uri = bundle or env.get("BUNDLE_URI", "")
    if not bundle_uri:
        raise ConfigError("no bundle: set BUNDLE_URI or pass --bundle PATH|s3://BUCKET/KEY")
    chosen_hash = bundle_hash or env.get("BUNDLE_HASH") or None
    if chosen_hash is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", chosen_hash):
        raise ConfigError(f"BUNDLE_HASH must look like sha256:<64 hex digits>, got {chosen_hash!r}")
    state_url = state or env.get(STATE_URL_ENV) or None
    try:
        location = parse_state_url(state_url, source="--state" if state else STATE_URL_ENV) if state_url else None
    except StateUrlError as exc:
        raise ConfigError(str(exc)) from None
    try:
        telemetry = telemetry_settings(env)
    except TelemetryConfigError as exc:
        raise ConfigError(str(exc)) from None
    return RuntimeConfig(
        bundle_uri=bundle_uri,
        bundle_hash=chosen_hash,
        identity=ExpectedIdentity(
            organization_id=env.get("ORG_ID") or None,
            domain_id=env.get("DOMAIN_ID") or None,
            environment=env.get("ENVIRONMENT") or None,
            instance_id=env.get("INSTANCE_ID") or None,
        ),
        host=host or env.get("HOST", "0.0.0.0"),  # noqa: S104
        port=port if port is not None else _int(env, "PORT", DEFAULT_PORT, 0, 65535),
        allowed_hosts=tuple(h.strip().lower() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        drain_seconds=_float(env, "DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS),
        offline=OfflineModelSettings(
            latency_ms=_float(env, "OFFLINE_MODEL_LATENCY_MS", 0.0),
            slow_agents=_names(env, "OFFLINE_MODEL_SLOW_AGENTS"),
            fail_agents=_names(env, "OFFLINE_MODEL_FAIL_AGENTS"),
        ),
        secrets_env={k: v for k, v in env.items() if k.startswith(SECRET_PREFIX)},
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        state=location,
        thread_wait_seconds=_float(env, "THREAD_WAIT_SECONDS", DEFAULT_THREAD_WAIT_SECONDS),
        auth=auth_from_env(env),
        telemetry=telemetry,
        usage_retention_days=_int(env, "USAGE_RETENTION_DAYS", DEFAULT_USAGE_RETENTION_DAYS, 1, 3650),
        max_sessions=_int(env, "MCP_MAX_SESSIONS", MAX_SESSIONS_PER_TASK, 1, 100_000),
        max_sessions_per_caller=_int(env, "MCP_MAX_SESSIONS_PER_CALLER", MAX_SESSIONS_PER_CALLER, 1, 100_000),
    )


def auth_from_env(env: Mapping[str, str]) -> AuthConfig:
    """The AUTH_* variables, checked; whether a missing mode may serve is decided by the caller (stdio needs none)."""
    mode = env.get("AUTH_MODE", "").strip().lower()
    issuer = env.get("AUTH_ISSUER", "").strip() or None
    if mode not in ("", "jwt", "none"):
        raise ConfigError(f"AUTH_MODE must be 'jwt' or 'none', got {mode!r}")
    if mode == "none":
        if issuer:
            raise ConfigError("AUTH_MODE=none and AUTH_ISSUER exclude each other: unset one of them")
        return AuthConfig(mode="none")
    if issuer is None:
        if mode == "jwt":
            raise ConfigError("AUTH_MODE=jwt needs AUTH_ISSUER (the token issuer's URL)")
        return AuthConfig()
    jwks_uri = env.get("AUTH_JWKS_URI", "").strip() or None
    audience = env.get("AUTH_AUDIENCE", "").strip() or None
    for name, value in (("AUTH_ISSUER", issuer), ("AUTH_JWKS_URI", jwks_uri)):
        if value is not None:
            try:
                check_fetch_url(value, name)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    org_claim = env.get("AUTH_ORG_CLAIM", "").strip() or "org"
    audience_claim = env.get("AUTH_AUDIENCE_CLAIM", "").strip() or "aud"
    if audience_claim not in ("aud", "client_id"):
        raise ConfigError(f"AUTH_AUDIENCE_CLAIM must be 'aud' or 'client_id', got {audience_claim!r}")
    if audience_claim != "aud" and audience is None:
        raise ConfigError(f"AUTH_AUDIENCE_CLAIM={audience_claim} needs AUTH_AUDIENCE (the app client id)")
    return AuthConfig(
        mode="jwt",
        issuer=issuer,
        audience=audience,
        jwks_uri=jwks_uri,
        org_claim=org_claim,
        audience_claim=audience_claim,
        jwks_max_age_seconds=_float(env, "AUTH_JWKS_MAX_AGE_SECONDS", 3600.0),
        jwks_min_refetch_seconds=_float(env, "AUTH_JWKS_MIN_REFETCH_SECONDS", 30.0),
        max_token_lifetime_seconds=_int(
            env, "AUTH_MAX_TOKEN_LIFETIME_SECONDS", DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, 60, MAX_TOKEN_LIFETIME_CEILING
        ),
        app_roles_as_scopes=_bool(env, "AUTH_APP_ROLES_AS_SCOPES"),
    )


NO_AUTH_MESSAGE = (
    "no caller authentication configured: set AUTH_ISSUER (the URL of the issuer whose JWTs callers present; "
    "for local use `python -m runtime dev-issuer` prints one) or, only where every caller may use the instance "
    "(loopback, an internal load balancer), AUTH_MODE=none"
)


def current_env() -> Mapping[str, str]:
    return os.environ


def _names(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(a.strip() for a in env.get(name, "").split(",") if a.strip())


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    """`true` or `false` (any case); unset or empty is false."""
    raw = env.get(name, "").strip()
    if raw.lower() not in ("", "true", "false"):
        raise ConfigError(f"{name} must be 'true' or 'false', got {raw!r}")
    return raw.lower() == "true"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value
