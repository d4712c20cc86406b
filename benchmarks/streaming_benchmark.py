"""Streaming and turn-overhead benchmark (issue 25), over real streamable HTTP with the offline model:

- time from sending an `invoke` with a progressToken to its first progress notification (p50, p95);
- invoke p50 without and with a progress token (a streamed turn is answered on SSE);
- invoke p50 with SQLite state against a bare MCP SDK server's no-op tool call (benchmarks/bare_mcp_server.py),
  measured in the same run: the target is at most 8 times.

Both servers are pinned to CPU 0 and the client to the other CPUs; the kinds of call alternate in rounds (so drift
of a shared machine's load hits all of them alike), each round on fresh client connections after a warm-up.
`--profile N` instead runs the runtime under cProfile for N plain invokes and prints where its time went (by
package and by function).

    .venv/bin/python benchmarks/streaming_benchmark.py [--rounds 5] [--requests 200]
    .venv/bin/python benchmarks/streaming_benchmark.py --profile 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.runtime_benchmark import free_port, launch, machine, stop, write_bundle  # noqa: E402
from benchmarks.telemetry_benchmark import percentile  # noqa: E402

MESSAGE = "plan the roadmap"


RUNTIME_ROOT = [ROOT]
"""The checkout whose runtime is measured (`--runtime-root`: compare another revision on the same run's yardstick)."""


def start_runtime(bundle: Path, state_url: str, prefix: list[str] | None = None) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "OTEL_"))}
    root = RUNTIME_ROOT[0]
    env.update({"PYTHONPATH": str(root), "AUTH_MODE": "none", "STATE_URL": state_url, "LOG_LEVEL": "INFO"})
    argv = [*(prefix or [sys.executable]), "-m", "runtime", "serve", "--bundle", str(bundle)]
    process, port = launch([*argv, "--host", "127.0.0.1", "--port", "0"], env, cwd=root)
    while httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
        time.sleep(0.05)
    return process, port


def start_bare() -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    argv = ["taskset", "-c", "0", sys.executable, str(ROOT / "benchmarks" / "bare_mcp_server.py"), str(port)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while True:  # up once it answers at all (404 for /)
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process, port
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the bare MCP server did not start") from None
            time.sleep(0.05)


def _first_seen(first: list[float]) -> ProgressFnT:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not first:
            first.append(time.perf_counter())

    return on_progress


async def _timed_calls(url: str, tool: str, count: int, *, progress: bool) -> tuple[list[float], list[float]]:
    """Milliseconds per call, and (with a progress token) to the first notification of each call."""
    totals: list[float] = []
    firsts: list[float] = []
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(60)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await client.list_tools()
        for i in range(count + 20):  # the first 20 warm up
            arguments = {"message": MESSAGE, "thread_id": f"t-{i % 32}"} if tool == "invoke" else {}
            first: list[float] = []
            on_progress = _first_seen(first) if progress else None
            begin = time.perf_counter()
            result = await client.call_tool(tool, arguments, progress_callback=on_progress)
            end = time.perf_counter()
            assert not result.is_error, result
            if i >= 20:
                totals.append((end - begin) * 1000)
                if progress:
                    assert first, "a streamed call got no progress notification"
                    firsts.append((first[0] - begin) * 1000)
    return totals, firsts


KINDS = ["plain", "streamed", "bare", "raw_plain", "raw_bare"]
RAW_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


async def _raw_calls(url: str, tool: str, count: int) -> list[float]:
    """Milliseconds per tools/call as one plain HTTP POST on a kept-alive connection: the least a client can add."""
    totals: list[float] = []
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(60), headers=RAW_HEADERS) as http:
        for i in range(count + 20):
            arguments = {"message": MESSAGE, "thread_id": f"r-{i % 32}"} if tool == "invoke" else {}
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
            begin = time.perf_counter()
            response = await http.post(url, json=body)
            end = time.perf_counter()
            assert response.status_code == 200 and "error" not in response.json(), response.text
            if i >= 20:
                totals.append((end - begin) * 1000)
    return totals


def compare(bundle: Path, state_url: str, rounds: int, requests: int) -> dict[str, Any]:
    runtime, runtime_port = start_runtime(bundle, state_url)
    try:
        bare, bare_port = start_bare()
    except BaseException:
        stop(runtime)
        raise
    samples: dict[str, list[float]] = defaultdict(list)
    per_round: dict[str, list[float]] = defaultdict(list)
    try:
        runtime_url, bare_url = f"http://127.0.0.1:{runtime_port}/mcp", f"http://127.0.0.1:{bare_port}/mcp"
        for r in range(rounds):
            kinds = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]  # rotate the order each round
            for kind in kinds:
                if kind.startswith("raw_"):
                    totals = asyncio.run(
                        _raw_calls(
                            bare_url if kind == "raw_bare" else runtime_url,
                            "noop" if kind == "raw_bare" else "invoke",
                            requests,
                        )
                    )
                elif kind == "bare":
                    totals, _ = asyncio.run(_timed_calls(bare_url, "noop", requests, progress=False))
                else:
                    totals, firsts = asyncio.run(
                        _timed_calls(runtime_url, "invoke", requests, progress=kind == "streamed")
                    )
                    samples["first_progress"] += firsts
                samples[kind] += totals
                per_round[kind].append(round(statistics.median(totals), 3))
    finally:
        stop(runtime)
        stop(bare)
    p50 = defaultdict(float, {kind: statistics.median(values) for kind, values in samples.items() if values})
    ratios = [p / b for p, b in zip(per_round["plain"], per_round["bare"], strict=True)]
    raw_ratios = [p / b for p, b in zip(per_round["raw_plain"], per_round["raw_bare"], strict=True)]
    return {
        "state": state_url.split(":")[0],
        "requests_per_kind_per_round": requests,
        "rounds": rounds,
        "first_progress_ms_p50": round(p50["first_progress"], 2),
        "first_progress_ms_p95": round(percentile(samples["first_progress"] or [0.0], 0.95), 2),
        "invoke_ms_p50_no_token": round(p50["plain"], 2),
        "invoke_ms_p95_no_token": round(percentile(samples["plain"], 0.95), 2),
        "invoke_ms_p50_with_token": round(p50["streamed"], 2),
        "invoke_ms_p95_with_token": round(percentile(samples["streamed"] or [0.0], 0.95), 2),
        "bare_noop_ms_p50": round(p50["bare"], 3),
        "invoke_over_bare_p50": round(p50["plain"] / p50["bare"], 2),
        "invoke_over_bare_per_round": [round(x, 2) for x in ratios],
        "raw_http_invoke_ms_p50": round(p50["raw_plain"], 2),
        "raw_http_bare_noop_ms_p50": round(p50["raw_bare"], 3),
        "raw_http_invoke_over_bare_p50": round(p50["raw_plain"] / p50["raw_bare"], 2),
        "raw_http_invoke_over_bare_per_round": [round(x, 2) for x in raw_ratios],
        "p50_per_round": dict(per_round),
    }


GROUPS = (
    ("runtime graph/agents", ("/runtime/",)),
    ("langgraph + langchain_core", ("/langgraph/", "/langchain_core/")),
    ("mcp SDK", ("/mcp/", "/mcp_types/")),
    ("sqlite (aiosqlite, sqlite3)", ("aiosqlite", "sqlite3")),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("http (uvicorn, starlette, sse, anyio)", ("/uvicorn/", "/starlette/", "/sse_starlette/", "/httptools/")),
    ("anyio", ("/anyio/",)),
    ("asyncio", ("/asyncio/",)),
    ("opentelemetry", ("/opentelemetry/",)),
    ("json/logging/stdlib", ("/json/", "/logging/", "/python3.11/")),
)


def profile(bundle: Path, state_url: str, requests: int, out: Path) -> dict[str, Any]:
    """The runtime under cProfile for `requests` plain invokes; own time (tottime) grouped by package."""
    prefix = [sys.executable, "-m", "cProfile", "-o", str(out)]
    process, port = start_runtime(bundle, state_url, prefix)
    try:
        totals, _ = asyncio.run(_timed_calls(f"http://127.0.0.1:{port}/mcp", "invoke", requests, progress=False))
    finally:
        stop(process)
    stats = pstats.Stats(str(out))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    grouped: dict[str, float] = defaultdict(float)
    functions: list[tuple[float, float, str]] = []
    for (file, line, name), (_, _, tottime, cumtime, _) in raw.items():
        group = next((g for g, marks in GROUPS if any(m in file for m in marks)), "other (incl. C builtins)")
        grouped[group] += tottime
        where = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        functions.append((tottime, cumtime, f"{where}:{line}({name})"))
    total = sum(grouped.values())
    per_request = (len(totals) + 20) or 1
    runtime_cum = sorted(((cum, f) for _, cum, f in functions if f.startswith("runtime/")), reverse=True)[:25]
    return {
        "profiled_requests": per_request,
        "profiled_p50_ms": round(statistics.median(totals), 2),
        "own_time_ms_per_request_by_group": {
            g: round(t / per_request * 1000, 3) for g, t in sorted(grouped.items(), key=lambda kv: -kv[1])
        },
        "own_time_share_by_group": {g: round(t / total, 3) for g, t in sorted(grouped.items(), key=lambda kv: -kv[1])},
        "top_own_time_us_per_request": [
            (round(t / per_request * 1e6, 1), f) for t, _, f in sorted(functions, reverse=True)[:30]
        ],
        "runtime_cumulative_us_per_request": [(round(c / per_request * 1e6, 1), f) for c, f in runtime_cum],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="calls per kind per round")
    parser.add_argument("--profile", type=int, default=0, help="profile N invokes instead of comparing")
    parser.add_argument("--runtime-root", type=Path, default=ROOT, help="measure the runtime of another checkout")
    parser.add_argument("--no-streaming", action="store_true", help="a runtime that cannot stream (before issue 25)")
    args = parser.parse_args()
    RUNTIME_ROOT[0] = args.runtime_root.resolve()
    if args.no_streaming:
        KINDS.remove("streamed")
    host = machine()
    os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(Path(tmp))
        state_url = f"sqlite:///{Path(tmp) / 'state.db'}"
        if args.profile:
            result = profile(bundle, state_url, args.profile, Path(tmp) / "runtime.prof")
        else:
            result = compare(bundle, state_url, args.rounds, args.requests)
    report = {
        **host,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **result,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
