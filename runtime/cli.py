"""`python -m runtime`: serve an instance from its bundle, or call a running instance's tools.

    python -m runtime serve --bundle PATH|s3://BUCKET/KEY [--hash sha256:...] [--host H] [--port N] [--stdio]
                            [--state sqlite:///PATH|dynamodb://TABLE|memory://]
    python -m runtime call --url http://127.0.0.1:8080/mcp --message "plan the Q3 roadmap" [--thread T]
    python -m runtime healthcheck [--port N] [--timeout SECONDS]
    python -m runtime state export|delete --bundle PATH [--state URL] [--thread T]

Exit codes: 0 ok (including a SIGTERM drain; for healthcheck: /healthz answered 200), 1 the instance cannot start
(bad bundle, identity mismatch, bad setting), a call failed or the health check failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from runtime.config import DEFAULT_PORT, ConfigError, config_from_env, current_env
from runtime.state_url import ALLOWED_FORMS

HEALTH_PATH = "/healthz"
HEALTHCHECK_TIMEOUT_SECONDS = 3.0


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
    call.add_argument("--tool", default="invoke", choices=["invoke", "describe", "status"])
    call.add_argument("--message", help="the request text (for invoke)")
    call.add_argument("--thread", default="default", help="thread id (for invoke)")
    call.add_argument("--tenant", help="tenant id (for invoke)")
    health = commands.add_parser(
        "healthcheck", help="exit 0 if this container's runtime answers GET /healthz with 200 (container health check)"
    )
    health.add_argument("--port", type=int, help="port the runtime listens on (default: $PORT or 8080)")
    health.add_argument("--timeout", type=float, default=HEALTHCHECK_TIMEOUT_SECONDS, help="seconds (default: 3)")
    state = commands.add_parser("state", help="export or delete an instance's threads (offboarding)")
    state.add_argument("action", choices=["export", "delete"], help="export: JSON lines to stdout; delete: --thread")
    state.add_argument("--bundle", help="the instance's bundle (default: $BUNDLE_URI): its TTL and default file")
    state.add_argument("--state", help=f"the store: {ALLOWED_FORMS} (default: $STATE_URL or the local file)")
    state.add_argument("--thread", help="only this thread (required for delete)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "call":
        if args.tool == "invoke" and not args.message:
            print("runtime call: --message is required for invoke", file=sys.stderr)
            return 2
        return asyncio.run(_call(args))
    if args.command == "healthcheck":
        return _healthcheck(args)
    if args.command == "state":
        return _state(args)
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
        # the bundle is checked before the graph and server libraries are imported: a bad one fails in moments
        bundle = load_bundle(
            config.bundle_uri, expected_hash=config.bundle_hash, identity=config.identity, region=config.aws_region
        )
        from runtime.instance import Instance
        from runtime.server import serve_http, serve_stdio

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
            }
        )
    )
    from runtime.thread_store import StateStoreError

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:  # before listening: a store that cannot be used is a start-up error, not a failed first request
            runner.run(instance.open_state())
        except StateStoreError as exc:
            print(f"runtime: cannot start: {exc}", file=sys.stderr)
            return 1
        runner.run(serve_stdio(instance) if args.stdio else serve_http(instance))
    return 0


def _state(args: argparse.Namespace) -> int:
    """Offboarding and data requests: every thread (or one) as JSON lines, or one thread deleted."""
    if args.action == "delete" and not args.thread:
        print("runtime state delete: --thread is required", file=sys.stderr)
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
    from runtime.thread_store import StateStoreError

    async def run() -> int:
        instance = Instance(bundle=bundle, config=config)
        state = await instance.open_state()
        try:
            if args.action == "delete":
                await state.delete_thread(args.thread)
                print(json.dumps({"deleted": args.thread}))
                return 0
            for thread in await state.export():
                if args.thread is None or thread["thread_id"] == args.thread:
                    print(json.dumps(thread, sort_keys=True))
            return 0
        finally:
            await state.close()

    try:
        return asyncio.run(run())
    except StateStoreError as exc:
        print(f"runtime state: {exc}", file=sys.stderr)
        return 1


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the image pins it): it costs measurably less CPU per request than asyncio's loop.
    Without it (a platform uvloop does not support) the standard loop serves the same way."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the image and the dev venv both pin uvloop
        return None
    return uvloop.new_event_loop


async def _call(args: argparse.Namespace) -> int:
    from mcp import Client

    arguments: dict[str, Any] = {}
    if args.tool == "invoke":
        arguments = {"message": args.message, "thread_id": args.thread}
        if args.tenant:
            arguments["tenant"] = args.tenant
    async with Client(args.url) as client:
        result = await client.call_tool(args.tool, arguments)
    print(json.dumps(result.structured_content, indent=2, sort_keys=True))
    return 1 if result.is_error else 0
