"""Runtime benchmark: request overhead through the whole graph (offline provider) over real streamable HTTP, and
cold start (process start to ready), with each thread-state store (STATE_URL): memory://, a SQLite file, and a
DynamoDB table on moto's server (a local emulator: its latency is not DynamoDB's, the store's call pattern is).
With `--auth-rounds N`, also the cost of bearer-token verification.

The server process is pinned to CPU 0 (one core); the load generator (and moto) run pinned to the other CPUs.

    .venv/bin/python benchmarks/runtime_benchmark.py [--requests 1000] [--concurrency 16] [--stores memory,sqlite]

Targets on the reference machine (memory store): p50 <= 10 ms, p99 <= 30 ms, >= 200 requests/s, cold start <= 1.5 s.

The store numbers are taken with AUTH_MODE=none (the graph's cost). The auth comparison alternates servers with
AUTH_MODE=none and with a local issuer (real ES256 key, JWKS fetched once and cached), N rounds each, sequential
invoke latency on one client, and also times the verifier alone in-process (cached keys); token verification adds
at most 1 ms to invoke p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundry.bundles.archive import build_bundle  # noqa: E402
from foundry.fleet.load import load_fleet  # noqa: E402
from oauth_resource.dev_issuer import RunningIssuer, serve_issuer  # noqa: E402
from oauth_resource.jwks import KeySet  # noqa: E402
from oauth_resource.verifier import JwtVerifier, TokenRules  # noqa: E402

INSTANCE = "default-org/default-domain/dev"


def write_bundle(directory: Path) -> Path:
    (resolved,) = load_fleet(ROOT / "agents", environment="dev", instance=INSTANCE).instances
    path = directory / "bundle.tar.gz"
    path.write_bytes(build_bundle(resolved).archive)
    return path


HOSTNAME = "default-org-default-domain-dev.dev.agentfoundry.internal"
AUDIENCE = f"https://{HOSTNAME}/mcp"


def launch(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[subprocess.Popen[str], int]:
    """Starts a server on CPU 0 and returns it with the port uvicorn reports."""
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    port = 0
    for line in process.stderr:  # uvicorn's 'running on' line has the port
        if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
            port = int(match.group(1))
            break
    if not port:
        raise SystemExit(f"{argv[1:4]} did not start")
    # keep draining stderr (one log line per request), or the pipe fills and the server blocks on logging
    threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
    return process, port


def start(
    bundle: Path, auth: dict[str, str] | None = None, store: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int, float]:
    """Starts the server on CPU 0; returns (process, port, seconds from spawn to /readyz 200)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "INFO",
            **(auth or {"AUTH_MODE": "none"}),
            **(store or {"STATE_URL": "memory://"}),
        }
    )
    started = time.perf_counter()
    argv = [sys.executable, "-m", "runtime", "serve", "--bundle", str(bundle), "--host", "127.0.0.1", "--port", "0"]
    process, port = launch(argv, env)
    while httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
        pass
    ready = time.perf_counter() - started
    return process, port, ready


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=60)  # a runtime under cProfile writes its profile on the way out


async def latency(url: str, count: int, token: str | None = None) -> list[float]:
    samples = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await client.list_tools()
        for i in range(50):
            await client.call_tool("invoke", {"message": "plan the roadmap", "thread_id": f"warm-{i % 8}"})
        for i in range(count):
            begin = time.perf_counter()
            result = await client.call_tool("invoke", {"message": "plan the roadmap", "thread_id": f"t-{i % 32}"})
            samples.append((time.perf_counter() - begin) * 1000)
            assert not result.is_error
    return samples


async def throughput(url: str, count: int, concurrency: int) -> float:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for _ in range(concurrency)]
        for client in clients:
            await client.list_tools()
        return await _drain(clients, count)


async def _drain(clients: list[Client], count: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: Client) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            result = await client.call_tool("invoke", {"message": "file a ticket", "thread_id": f"c-{i % 64}"})
            assert not result.is_error

    begin = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    return count / (time.perf_counter() - begin)


async def store_turn_ms(state_url: str, turns: int) -> tuple[float, float]:
    """The store's own cost of one turn, in this process without HTTP or the graph: take the thread, read its
    history, append a user and an assistant message, release, and add the turn to the usage ledger (what every
    invoke does around the graph); and the ledger's add alone. Both in ms per turn."""
    from runtime.state_url import parse_state_url
    from runtime.store.memory import StoredMessage
    from runtime.store.thread_store import open_thread_state
    from runtime.telemetry.usage_tally import UsageTally, hour_of

    state = await open_thread_state(parse_state_url(state_url), keep=20, ttl_seconds=3600, wait_seconds=30)
    tally = UsageTally()
    tally.note_gateway_call(
        "model_generate", True, {"provider": "offline", "model": "offline-echo", "input_tokens": 40, "output_tokens": 9}
    )
    counters = tally.counters(outcome="ok", seconds=0.012)
    try:
        ledger_seconds = 0.0
        begin = time.perf_counter()
        for i in range(turns):
            thread_id = f"s-{i % 32}"
            async with state.turns.turn(thread_id):
                await state.memory.read(thread_id, 20)
                turn = [StoredMessage("user", "plan the roadmap"), StoredMessage("assistant", "x" * 200)]
                await state.memory.append(thread_id, turn)
            added = time.perf_counter()
            await state.usage.add(hour_of(time.time()), counters)
            ledger_seconds += time.perf_counter() - added
        return (time.perf_counter() - begin) / turns * 1000, ledger_seconds / turns * 1000
    finally:
        await state.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def moto_store(stack: ExitStack) -> dict[str, str]:
    """moto's server on 127.0.0.1 with the instance's table (the keys constructs/af_instance_state.py creates)."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stack.callback(stop, server)
    env = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "STATE_URL": "dynamodb://af-benchmark",
    }  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # for the client that creates the table
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{endpoint}/moto-api/data.json").status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")  # credentials: env below
    keys = [("PK", "HASH"), ("SK", "RANGE")]
    client.create_table(
        TableName="af-benchmark",
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return env


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True, text=True).stdout.strip(),
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": model,
        "python": sys.version.split()[0],
    }


def mint(issuer: RunningIssuer) -> str:
    scopes = ["agentfoundry/invoke", "agentfoundry/read"]
    return issuer.issuer.mint(subject="bench", organization="default-org", audience=AUDIENCE, scopes=scopes)


async def verify_alone(issuer: RunningIssuer, count: int = 1000) -> tuple[float, float]:
    """Microseconds per verification with the issuer's keys cached, median of 5 batches: (a token seen for the first
    time: signature, claims, organization; the same token again, as a client sends it on every request)."""
    rules = TokenRules(issuer=issuer.url, audience=AUDIENCE, organization="default-org")
    verifier = JwtVerifier(rules, KeySet(issuer=issuer.url), cache_size=1)
    assert await verifier.verify_token(mint(issuer)) is not None  # fetches the keys once
    first, again = [], []
    for _ in range(5):
        tokens = [mint(issuer) for _ in range(count)]
        begin = time.perf_counter()
        for token in tokens:
            await verifier.verify_token(token)
        first.append((time.perf_counter() - begin) / count * 1e6)
        begin = time.perf_counter()
        for _ in range(count):
            await verifier.verify_token(tokens[-1])
        again.append((time.perf_counter() - begin) / count * 1e6)
    return statistics.median(first), statistics.median(again)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat), less sensitive to other load than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def auth_comparison(bundle: Path, rounds: int, requests: int) -> dict[str, object]:
    """Alternates a server without auth and one with a local issuer: p50 of sequential invoke latency, and the
    server's CPU time per request, each."""
    p50 = {"none": [], "jwt": []}  # type: dict[str, list[float]]
    cpu = {"none": [], "jwt": []}  # type: dict[str, list[float]]
    with tempfile.TemporaryDirectory() as keys, serve_issuer(Path(keys)) as issuer:
        secured = {"AUTH_ISSUER": issuer.url}
        for _ in range(rounds):
            for mode, auth, token in (("none", None, None), ("jwt", secured, mint(issuer))):
                process, port, _ = start(bundle, auth)
                try:
                    before = cpu_seconds(process.pid)
                    samples = asyncio.run(latency(f"http://127.0.0.1:{port}/mcp", requests, token))
                    used = cpu_seconds(process.pid) - before
                finally:
                    stop(process)
                p50[mode].append(round(statistics.median(samples), 2))
                cpu[mode].append(round(used / (requests + 50) * 1000, 2))  # 50 warm-up calls
        first_us, again_us = asyncio.run(verify_alone(issuer))
    return {
        "auth_rounds": rounds,
        "p50_ms_auth_none": p50["none"],
        "p50_ms_auth_jwt": p50["jwt"],
        "p50_ms_added_by_auth_median": round(statistics.median(p50["jwt"]) - statistics.median(p50["none"]), 2),
        "server_cpu_ms_per_request_auth_none": cpu["none"],
        "server_cpu_ms_per_request_auth_jwt": cpu["jwt"],
        "server_cpu_ms_added_by_auth_median": round(statistics.median(cpu["jwt"]) - statistics.median(cpu["none"]), 2),
        "verify_token_us_new_token": round(first_us, 1),
        "verify_token_us_same_token": round(again_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--stores", default="memory,sqlite,dynamodb", help="comma-separated: memory,sqlite,dynamodb")
    parser.add_argument("--auth-rounds", type=int, default=0, help="also compare invoke p50 without and with auth")
    args = parser.parse_args()
    host = machine()  # before pinning: nproc reports the CPUs this process may use
    os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        bundle = write_bundle(Path(tmp))
        for name in args.stores.split(","):
            if name == "memory":
                store = {"STATE_URL": "memory://"}
            elif name == "sqlite":
                store = {"STATE_URL": f"sqlite:///{Path(tmp) / 'state.db'}"}
            elif name == "dynamodb":
                store = moto_store(stack)
            else:
                raise SystemExit(f"unknown store {name!r}; allowed: memory, sqlite, dynamodb")
            colds = []
            for _ in range(args.cold_starts):
                process, _, ready = start(bundle, store=store)
                colds.append(ready)
                stop(process)
            process, port, _ = start(bundle, store=store)
            try:
                url = f"http://127.0.0.1:{port}/mcp"
                samples = sorted(asyncio.run(latency(url, args.requests)))
                rps = asyncio.run(throughput(url, args.requests, args.concurrency))
            finally:
                stop(process)
            store_ms, ledger_ms = asyncio.run(store_turn_ms(store["STATE_URL"], 300))
            results[name] = {
                "store_ms_per_turn": round(store_ms, 2),
                "usage_ledger_ms_per_turn": round(ledger_ms, 2),
                "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 2),
                "mean_ms": round(statistics.fmean(samples), 2),
                "requests_per_second": round(rps, 1),
                "cold_start_s_median": round(statistics.median(colds), 3),
                "cold_start_s_max": round(max(colds), 3),
            }
        auth = auth_comparison(bundle, args.auth_rounds, args.requests) if args.auth_rounds else {}
    report = {
        **host,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "instance": INSTANCE,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "stores": results,
        **auth,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
