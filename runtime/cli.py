"""`python -m runtime`: serve an instance from its bundle, or call a running instance's tools.

    python -m runtime serve --bundle PATH|s3://BUCKET/KEY [--hash sha256:...] [--host H] [--port N] [--stdio]
                            [--state sqlite:///PATH|dynamodb://TABLE|memory://]
    python -m runtime call --url http://127.0.0.1:8080/mcp --message "plan the Q3 roadmap" [--thread T] [--token JWT]
    python -m runtime call --tool approve --approval apr-... --decision approve|reject [--comment WHY]
    python -m runtime healthcheck [--port N] [--timeout SECONDS]
    python -m runtime state export --bundle PATH [--state URL] [--org ORG --sub SUB [--thread T]]
    python -m runtime state delete --bundle PATH [--state URL] --org ORG --sub SUB [--thread T]
    python -m runtime dev-issuer [--dir build/dev-issuer]     # a local token issuer: JWKS + discovery on 127.0.0.1
    python -m runtime token --bundle PATH [--sub alice]       # a development token from that issuer's key

Exit codes: 0 ok (including a SIGTERM drain; for healthcheck: /healthz answered 200), 1 the instance cannot start
(bad bundle, identity mismatch, bad setting), a call failed or the health check failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runtime.config import DEFAULT_PORT, NO_AUTH_MESSAGE, ConfigError, ExpectedIdentity, config_from_env, current_env
from runtime.state_url import ALLOWED_FORMS

HEALTH_PATH = "/healthz"
HEALTHCHECK_TIMEOUT_SECONDS = 3.0
DEV_ISSUER_DIR = Path("build/dev-issuer")
TOKEN_ENV = "AGENTFOUNDRY_TOKEN"  # noqa: S105 - the variable's name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve one instance from its bundle (MCP over streamable HTTP)")
    serve.add_argument("--bundle", help="bundle path or s3://BUCKET/KEY (default: $BUNDLE_URI)")
    serve.add_argument("--hash", dest="bundle_hash", help="expected content hash (default: $BUNDLE_HASH)")
    serve.add_argument("--host", help="interface to listen on (default: $HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8080; 0 picks a free port)")
    serve.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    serve.add_argument("--state", help=f"where threads live: {ALLOWED_FORMS} (default: $STATE_URL or a local file)")
    call = commands.add_parser("call", help="call a running instance's MCP tool and print the JSON result")
    call.add_argument("--url", default="http://127.0.0.1:8080/mcp", help="the instance's MCP endpoint")
    call.add_argument(
        "--tool",
        default="invoke",
        choices=["invoke", "describe", "status", "pending_approvals", "get_approval", "approve"],
    )
    call.add_argument("--message", help="the request text (for invoke)")
    call.add_argument("--thread", help="thread id (for invoke); left out: a new thread, whose id the answer gives")
    call.add_argument("--approval", help="the approval's id (for approve and get_approval)")
    call.add_argument("--decision", choices=["approve", "reject"], help="for approve")
    call.add_argument("--comment", help="why (for approve; kept with the thread)")
    call.add_argument(
        "--token", help=f"bearer token (default: ${TOKEN_ENV}; none for an instance started with AUTH_MODE=none)"
    )
    health = commands.add_parser(
        "healthcheck", help="exit 0 if this container's runtime answers GET /healthz with 200 (container health check)"
    )
    health.add_argument("--port", type=int, help="port the runtime listens on (default: $PORT or 8080)")
    health.add_argument("--timeout", type=float, default=HEALTHCHECK_TIMEOUT_SECONDS, help="seconds (default: 3)")
    state = commands.add_parser(
        "state", help="export an instance's threads (offboarding), or one caller's (data-subject requests); erase them"
    )
    state.add_argument(
        "action", choices=["export", "delete"], help="export: JSON lines to stdout; delete: erase --org/--sub's threads"
    )
    state.add_argument("--bundle", help="the instance's bundle (default: $BUNDLE_URI): its TTL and default file")
    state.add_argument("--state", help=f"the store: {ALLOWED_FORMS} (default: $STATE_URL or the local file)")
    state.add_argument("--org", help="the caller's organization (the token's organization claim)")
    state.add_argument("--sub", help="the caller's subject (the token's sub)")
    state.add_argument("--thread", help="only this thread of the caller (the thread id the caller used)")
    issuer = commands.add_parser(
        "dev-issuer", help="serve a local token issuer (JWKS and discovery on 127.0.0.1) for development"
    )
    issuer.add_argument("--dir", type=Path, default=DEV_ISSUER_DIR, help="its key folder (default: build/dev-issuer)")
    issuer.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    issuer.add_argument(
        "--rotate", action="store_true", help="add a new signing key first (the old one stays published)"
    )
    token = commands.add_parser("token", help="mint a development token from the local issuer's key")
    token.add_argument("--dir", type=Path, default=DEV_ISSUER_DIR, help="the issuer's key folder")
    token.add_argument("--bundle", help="take the organization and audience from this instance's bundle")
    token.add_argument("--org", help="organization claim (default: the bundle's organization)")
    token.add_argument("--audience", help="aud (default: https://<the bundle's hostname>/mcp)")
    token.add_argument("--sub", default="developer", help="subject (default: developer)")
    token.add_argument(
        "--scope", action="append", help="scope, repeatable (default: agentfoundry/invoke and agentfoundry/read)"
    )
    token.add_argument("--org-claim", default="org", help="the organization claim's name (default: org)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "call":
        if args.tool == "invoke" and not args.message:
            print("runtime call: --message is required for invoke", file=sys.stderr)
            return 2
        if args.tool in ("approve", "get_approval") and not args.approval:
            print(f"runtime call: --approval is required for {args.tool}", file=sys.stderr)
            return 2
        if args.tool == "approve" and not args.decision:
            print("runtime call: --decision approve|reject is required for approve", file=sys.stderr)
            return 2
        return asyncio.run(_call(args))
    if args.command == "healthcheck":
        return _healthcheck(args)
    if args.command == "state":
        return _state(args)
    if args.command == "dev-issuer":
        return _dev_issuer(args)
    if args.command == "token":
        return _token(args)
    return _serve(args)


def _healthcheck(args: argparse.Namespace) -> int:
    """The container's health check (Dockerfile HEALTHCHECK, ECS task definition). Standard library only and no
    import of the graph or server modules, so it costs a bare interpreter start every interval."""
    try:
        port = args.port if args.port is not None else int(current_env().get("PORT") or DEFAULT_PORT)
    except ValueError:
        print(f"runtime healthcheck: PORT must be a number, got {current_env().get('PORT')!r}", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, TimeoutError) as exc:
        print(f"runtime healthcheck: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"runtime healthcheck: {url} answered {status}, expected 200", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    env = current_env()
    logging.basicConfig(
        level=env.get("LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from runtime.bundle_source import BundleError, load_bundle

    try:
        config = config_from_env(
            env, bundle=args.bundle, bundle_hash=args.bundle_hash, host=args.host, port=args.port, state=args.state
        )
        if config.auth.mode is None and not args.stdio:
            raise ConfigError(NO_AUTH_MESSAGE)
        # the bundle is checked before the graph and server libraries are imported: a bad one fails in moments
        bundle = load_bundle(
            config.bundle_uri, expected_hash=config.bundle_hash, identity=config.identity, region=config.aws_region
        )
        from runtime.edge.server import serve_http, serve_stdio
        from runtime.instance import Instance

        instance = Instance(bundle=bundle, config=config)
    except (BundleError, ConfigError, ValueError) as exc:
        print(f"runtime: cannot start: {exc}", file=sys.stderr)
        return 1
    identity = instance.bundle.instance.spec.identity
    logging.getLogger("runtime").info(
        json.dumps(
            {
                "event": "bundle.loaded",
                "instance": instance.bundle.instance.metadata.name,
                "environment": identity.environment,
                "bundle_hash": instance.bundle.content_hash,
                "auth": "stdio" if args.stdio else config.auth.mode,
            }
        )
    )
    if config.auth.mode == "none" and not args.stdio:
        logging.getLogger("runtime").warning("AUTH_MODE=none: every caller that reaches this port is served")
    from runtime.store.thread_store import StateStoreError

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:  # before listening: a store that cannot be used is a start-up error, not a failed first request
            runner.run(instance.open_state())
        except StateStoreError as exc:
            print(f"runtime: cannot start: {exc}", file=sys.stderr)
            return 1
        runner.run(serve_stdio(instance) if args.stdio else serve_http(instance))
    return 0


def _state(args: argparse.Namespace) -> int:
    """Offboarding (every thread as JSON lines) and data-subject requests (one caller's threads, exported or
    erased). A request that matches no thread is an error: an erasure that erased nothing must not look done."""
    if (args.org is None) != (args.sub is None) or (args.thread is not None and args.org is None):
        print("runtime state: --org and --sub go together, and --thread needs both", file=sys.stderr)
        return 2
    if args.action == "delete" and args.org is None:
        print("runtime state delete: --org ORG --sub SUB are required (whose threads to erase)", file=sys.stderr)
        return 2
    from runtime.bundle_source import BundleError, load_bundle

    try:
        config = config_from_env(current_env(), bundle=args.bundle, state=args.state)
        bundle = load_bundle(
            config.bundle_uri, expected_hash=config.bundle_hash, identity=config.identity, region=config.aws_region
        )
    except (BundleError, ConfigError, ValueError) as exc:
        print(f"runtime state: {exc}", file=sys.stderr)
        return 1
    from runtime.instance import Instance
    from runtime.store.subject_data import SubjectRequest, erase_subject, export_subject
    from runtime.store.thread_store import StateStoreError

    request = SubjectRequest(args.org, args.sub, args.thread) if args.org is not None else None

    async def run() -> int:
        instance = Instance(bundle=bundle, config=config)
        state = await instance.open_state()
        try:
            if request is None:
                for thread in await state.export():
                    print(json.dumps(thread, sort_keys=True))
                return 0
            if args.action == "delete":
                erased = await erase_subject(state, request)
                print(json.dumps({"erased": erased, **_names(request)}, sort_keys=True))
            else:
                threads = await export_subject(state, request)
                for thread in threads:
                    print(json.dumps(thread, sort_keys=True))
                erased = len(threads)
            if erased == 0:
                print(f"runtime state {args.action}: no {request.describe()} in {state.where}", file=sys.stderr)
                return 1
            return 0
        finally:
            await state.close()

    try:
        return asyncio.run(run())
    except StateStoreError as exc:
        print(f"runtime state: {exc}", file=sys.stderr)
        return 1


def _names(request: Any) -> dict[str, str | None]:
    return {"organization": request.organization, "subject": request.subject, "thread_id": request.thread}


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the image pins it): it costs measurably less CPU per request than asyncio's loop.
    Without it (a platform uvloop does not support) the standard loop serves the same way."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the image and the dev venv both pin uvloop
        return None
    return uvloop.new_event_loop


async def _call(args: argparse.Namespace) -> int:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    arguments: dict[str, Any] = {}
    if args.tool == "invoke":
        arguments = {"message": args.message, **({"thread_id": args.thread} if args.thread else {})}
    elif args.tool in ("approve", "get_approval"):
        arguments = {"approval_id": args.approval}
        if args.tool == "approve":
            arguments |= {"decision": args.decision, **({"comment": args.comment} if args.comment else {})}
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    refusals: list[str] = []

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code in (401, 403):
            refusals.append(f"HTTP {response.status_code}: {response.headers.get('www-authenticate', '')}")

    async with httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(60), event_hooks={"response": [note_refusal]}
    ) as http:
        try:
            async with Client(streamable_http_client(args.url, http_client=http)) as client:
                result = await client.call_tool(args.tool, arguments)
        except (MCPError, BaseExceptionGroup) as exc:
            if isinstance(exc, BaseExceptionGroup) and exc.subgroup(MCPError) is None:
                raise
            print(f"runtime call: refused: {refusals[-1] if refusals else exc}", file=sys.stderr)
            return 1
    if result.structured_content is None:
        print(" ".join(getattr(c, "text", "") for c in result.content))
    else:
        print(json.dumps(result.structured_content, indent=2, sort_keys=True))
    return 1 if result.is_error else 0


def _dev_issuer(args: argparse.Namespace) -> int:
    import threading

    from oauth_resource.dev_issuer import DevIssuer, serve_issuer

    if args.rotate and (args.dir / "current").exists():
        DevIssuer(args.dir).rotate()
    with serve_issuer(args.dir, port=args.port) as running:
        print(f"export AUTH_ISSUER={running.url}", flush=True)
        print(f"dev issuer: {running.url} (keys in {args.dir}; Ctrl-C stops it)", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def _token(args: argparse.Namespace) -> int:
    from oauth_resource.dev_issuer import DevIssuer, DevIssuerError
    from runtime.auth import INSTANCE_SCOPES, default_audience
    from runtime.bundle_source import BundleError, load_bundle

    organization, audience = args.org, args.audience
    try:
        if args.bundle:
            spec = load_bundle(args.bundle, expected_hash=None, identity=ExpectedIdentity()).instance.spec
            organization = organization or spec.identity.organization_id
            audience = audience or default_audience(spec.hostname)
        if not organization or not audience:
            print("runtime token: pass --bundle PATH, or both --org and --audience", file=sys.stderr)
            return 2
        token = DevIssuer(args.dir).mint(
            subject=args.sub,
            organization=organization,
            audience=audience,
            scopes=args.scope or list(INSTANCE_SCOPES),
            ttl_seconds=args.ttl,
            org_claim=args.org_claim,
        )
    except (DevIssuerError, BundleError) as exc:
        print(f"runtime token: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0
