"""`python -m foundry usage --environment ENV`: what each instance of the environment used over a window (default:
the current UTC month) and what it cost, asked of every instance through its own `usage` MCP tool.

Exit codes: 0 every instance answered, 1 partial (a row says which instance did not answer and why), 2 usage
error (unknown environment or instance, a bad window, an unreadable token file, invalid manifests).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from foundry.aws.clients import ClientFactory, boto3_clients
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.manifests.problems import ManifestError
from foundry.usage.collect import DEFAULT_TOKEN_KEY, UsageAsk, environment_usage
from foundry.usage.render import usage_table
from instance_contract.usage import UsageWindowError, usage_window

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageCommandError(ValueError):
    """An argument that cannot work; the message names it."""


def add_usage_parser(sub: Any) -> None:
    p = sub.add_parser(
        "usage",
        help="what each instance of an environment used and cost over a window, asked through its `usage` tool",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument("--environment", metavar="ENV", required=True)
    p.add_argument("--instance", metavar="ORG/DOMAIN/INSTANCE", help="only this instance")
    p.add_argument("--since", metavar="DATE", help="ISO date or date-time, UTC (default: the month's first day)")
    p.add_argument("--until", metavar="DATE", help="a date includes that day; a date-time is exclusive")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help='JSON {"ORG/DOMAIN/INSTANCE": TOKEN, "*": TOKEN}: operators\' bearer tokens with agentfoundry/read '
        "for environments whose instances check tokens (passed through, never kept)",
    )
    p.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="ORG/DOMAIN/INSTANCE=URL",
        help="ask this instance at URL (a locally served one) instead of its stack's InstanceEndpoint; repeatable",
    )
    p.add_argument("--json", action="store_true", help="the same rows as JSON on stdout")


def run_usage(args: argparse.Namespace, clients: ClientFactory = boto3_clients) -> int:
    err = Console(stderr=True)
    try:
        fleet = load_fleet(args.agents_dir)
    except ManifestError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    try:
        environments = sorted(fleet.tree.environments)
        if args.environment not in environments:
            raise UsageCommandError(
                f"--environment: unknown environment {args.environment!r}; known: {', '.join(environments)}"
            )
        known = sorted(i.key.selector for i in fleet.instances if i.environment == args.environment)
        if args.instance is not None and args.instance not in known:
            raise UsageCommandError(
                f"--instance: no instance {args.instance!r} in {args.environment}; known: {', '.join(known)}"
            )
        window = usage_window(args.since, args.until, now=datetime.datetime.now(datetime.UTC))
        ask = UsageAsk(tokens=_tokens(args.token_file), endpoints=_endpoints(args.endpoint, known))
    except (UsageCommandError, UsageWindowError) as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    report = asyncio.run(environment_usage(fleet, args.environment, window, ask, clients, instance=args.instance))
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        Console(width=max(140, Console().width)).print(usage_table(report))
    return EXIT_PARTIAL if report.partial else EXIT_OK


def _tokens(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageCommandError(f"--token-file {path}: cannot be read as JSON ({exc})") from None
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()):
        raise UsageCommandError(
            f'--token-file {path}: must be a JSON object {{"ORG/DOMAIN/INSTANCE": "TOKEN", "{DEFAULT_TOKEN_KEY}": '
            '"TOKEN"}} of strings'
        )
    return {k: v.strip() for k, v in loaded.items()}


def _endpoints(pairs: list[str], known: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        selector, sep, url = pair.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise UsageCommandError(f"--endpoint {pair!r}: expected ORG/DOMAIN/INSTANCE=http(s)://HOST:PORT/mcp")
        if selector not in known:
            raise UsageCommandError(f"--endpoint {pair!r}: no instance {selector!r} here; known: {', '.join(known)}")
        found[selector] = url
    return found
