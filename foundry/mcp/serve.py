"""`python -m foundry serve`: the Foundry MCP server over stdio (local clients) or streamable HTTP (the UI).

HTTP always needs a bearer token, on loopback too: any local process could otherwise deploy. Either the static token
(from `--token-file` or `FOUNDRY_TOKEN`, for local use) or JWTs from an issuer (`--auth-issuer`, see
foundry/mcp/auth.py), or both. The server refuses to start with neither, and refuses a non-loopback address unless
`--allowed-host` names the host names clients will use (the SDK's DNS-rebinding check).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings

from foundry.aws.clients import boto3_clients
from foundry.aws.cloudformation import stack_events_failure
from foundry.aws.instance_status import probe_instance_mcp
from foundry.cdk.cli import DeployMethod
from foundry.cdk.process import ProcessRunner, tool_environment, withhold_secrets
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import InstanceLocks
from foundry.files.repo import REPO_ROOT
from foundry.mcp.auth import DEPLOY_SCOPE, READ_SCOPE, JwtOptions, auth_for, gate_deploys
from foundry.mcp.server import FoundryConfig, build_server
from foundry.state.store import this_process
from foundry.state.stores import StateStores

TOKEN_ENV = "FOUNDRY_TOKEN"  # noqa: S105 - the variable's name
MIN_TOKEN_LENGTH = 16


class ServeError(Exception):
    """The server was asked to start in a way that is not allowed; the message says what to change."""


class StaticTokenVerifier:
    """Accepts exactly one bearer token, compared in constant time; it may do everything (local use)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token=token, client_id="foundry-client", scopes=[READ_SCOPE, DEPLOY_SCOPE])
        return None


@dataclass(frozen=True)
class ServeOptions:
    transport: Literal["stdio", "http"]
    host: str
    port: int
    agents_dir: Path
    token_file: Path | None
    allowed_hosts: tuple[str, ...]
    deploy_method: DeployMethod
    work_dir: Path | None = None
    """Where each instance's cdk.out and outputs file live (default build/foundry-deploys/; its deploy lock lives
    in the deploy state, FOUNDRY_STATE_URL)."""
    jwt: JwtOptions | None = None
    """JWT bearer verification (issuer, audience), besides or instead of the static token."""
    cdk_cli: Path | None = None
    """The CDK CLI to run (default node_modules/.bin/cdk, the version package.json pins)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None, environ: dict[str, str] | os._Environ[str]) -> str | None:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ServeError(f"--token-file {token_file}: {exc.strerror}") from exc
    else:
        token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ServeError(f"the bearer token is too short ({len(token)} characters, at least {MIN_TOKEN_LENGTH})")
    return token


def http_security(options: ServeOptions) -> TransportSecuritySettings | None:
    if is_loopback(options.host):
        return None  # the SDK's loopback defaults: Host must be 127.0.0.1/localhost/[::1]
    if not options.allowed_hosts:
        raise ServeError(
            f"--host {options.host} is not a loopback address: name the host names clients use with --allowed-host"
        )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h if ":" in h else f"{h}:*" for h in options.allowed_hosts],
        allowed_origins=[f"https://{h}" for h in options.allowed_hosts]
        + [f"http://{h}" for h in options.allowed_hosts],
    )


def make_config(
    agents_dir: Path,
    deploy_method: DeployMethod,
    work_dir: Path | None = None,
    *,
    token: str | None = None,
    cdk_cli: Path | None = None,
) -> FoundryConfig:
    """The server's wiring. The cdk child's environment is the server's own minus its secrets: FOUNDRY_TOKEN and
    any variable that carries the bearer token (e.g. read from --token-file) never reach cdk or the app it runs."""
    env = withhold_secrets(tool_environment(REPO_ROOT), names={TOKEN_ENV}, values={token} if token else ())
    runner = ProcessRunner(cwd=REPO_ROOT, env=env)
    deployer = Deployer(
        repo_root=REPO_ROOT,
        runner=runner,
        locks=InstanceLocks(
            StateStores.configured(agents_dir, boto3_clients), holder=f"the Foundry MCP server on {this_process()}"
        ),
        method=deploy_method,
        failure_lookup=stack_events_failure(boto3_clients),
        work_root=work_dir.resolve() if work_dir is not None else None,
        clients=boto3_clients,
        cdk_cli=cdk_cli.resolve() if cdk_cli is not None else None,
    )
    return FoundryConfig(
        repo_root=REPO_ROOT,
        agents_dir=agents_dir.resolve(),
        deployer=deployer,
        clients=boto3_clients,
        probe=probe_instance_mcp,
    )


def serve(options: ServeOptions) -> None:
    if options.transport == "stdio":
        # No token is used on stdio, but a FOUNDRY_TOKEN in the environment is still a secret: withheld too.
        token = os.environ.get(TOKEN_ENV, "").strip() or None
        stdio_config = make_config(
            options.agents_dir, options.deploy_method, options.work_dir, token=token, cdk_cli=options.cdk_cli
        )
        build_server(stdio_config).run("stdio")
        return
    token = read_token(options.token_file, os.environ)
    if token is None and options.jwt is None:
        where = "non-loopback " if not is_loopback(options.host) else ""
        raise ServeError(
            f"refusing to serve HTTP on {where}{options.host} without a bearer token: "
            f"set {TOKEN_ENV} or pass --token-file, or name a token issuer with --auth-issuer"
        )
    config = make_config(
        options.agents_dir, options.deploy_method, options.work_dir, token=token, cdk_cli=options.cdk_cli
    )
    security = http_security(options)
    # The SDK wires bearer checking through AuthSettings and our verifier(s); see foundry/mcp/auth.py.
    verifier, auth = auth_for(StaticTokenVerifier(token) if token else None, options.jwt)
    server = build_server(config, token_verifier=verifier, auth=auth)
    app = server.streamable_http_app(host=options.host, transport_security=security)
    gate_deploys(app, auth)

    import anyio
    import uvicorn

    uv = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_level="info"))
    print(f"foundry MCP server: http://{options.host}:{options.port}/mcp (bearer token required)", file=sys.stderr)
    anyio.run(uv.serve)
