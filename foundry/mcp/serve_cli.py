"""The `serve` subcommand's arguments; the server itself (and its heavy imports) load only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from foundry.fleet.load import DEFAULT_AGENTS_DIR

EXIT_OK, EXIT_USAGE = 0, 2


def tcp_port(text: str) -> int:
    """--port: a TCP port number, refused with the allowed range otherwise (uvicorn would fail less clearly)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a TCP port from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range; expected a TCP port from 1 to 65535")
    return port


def add_serve_parser(sub: Any) -> None:
    help_text = "run the Foundry MCP server (stdio for local clients, streamable HTTP with a bearer token)"
    p: argparse.ArgumentParser = sub.add_parser("serve", help=help_text, description=help_text)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP only; default 127.0.0.1")
    p.add_argument("--port", type=tcp_port, default=8765, help="HTTP only; default 8765")
    p.add_argument(
        "--token-file", type=Path, metavar="FILE", help="HTTP bearer token (default: the FOUNDRY_TOKEN variable)"
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="host name clients use (required with a non-loopback --host; repeatable)",
    )
    p.add_argument("--auth-issuer", metavar="URL", help="also accept JWTs from this issuer (or FOUNDRY_AUTH_ISSUER)")
    p.add_argument(
        "--auth-audience", metavar="URL", help="their audience: this server's URL (or FOUNDRY_AUTH_AUDIENCE)"
    )
    p.add_argument("--auth-jwks-uri", metavar="URL", help="the issuer's JWKS (default: from its discovery document)")
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument(
        "--deploy-method",
        choices=("change-set", "direct"),
        default="change-set",
        help="cdk deploy --method (direct for a local AWS emulator)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="where each instance's cdk.out and outputs file live (default: build/foundry-deploys); deploy locks "
        "live in the deploy state (FOUNDRY_STATE_URL; dynamodb:// shares them with rollouts and other servers)",
    )
    p.add_argument(
        "--cdk-cli",
        type=Path,
        metavar="PATH",
        help="the CDK CLI executable to run (default: node_modules/.bin/cdk, pinned by package.json)",
    )


def run_serve(args: argparse.Namespace) -> int:
    import os

    from foundry.mcp.auth import jwt_options
    from foundry.mcp.serve import ServeError, ServeOptions, serve

    try:
        jwt = jwt_options(os.environ, issuer=args.auth_issuer, audience=args.auth_audience, jwks_uri=args.auth_jwks_uri)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = ServeOptions(
        transport=args.transport,
        host=args.host,
        port=args.port,
        agents_dir=args.agents_dir,
        token_file=args.token_file,
        allowed_hosts=tuple(args.allowed_host),
        deploy_method=args.deploy_method,
        work_dir=args.work_dir,
        jwt=jwt,
        cdk_cli=args.cdk_cli,
    )
    try:
        serve(options)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return EXIT_OK
