"""Telemetry benchmark: what OpenTelemetry tracing and metrics add to `invoke` latency (issue 22's budget: at most
15 % on p50 with tracing and metrics on, nothing measurable with the SDK disabled).

Four servers of the same instance (dev, offline provider, memory store, AUTH_MODE=none), measured in interleaved
rounds so that the shared machine's load falls on all of them alike:

  before    the runtime as it was before OpenTelemetry (git revision --before, default 7c27df9: hand-written
            counters), extracted to a temporary folder
  disabled  this tree with OTEL_SDK_DISABLED=true
  default   this tree with no OTEL_* variable (metrics recorded for /metrics and status; no trace exported)
  traced    this tree with OTEL_EXPORTER_OTLP_ENDPOINT set to a local receiver (this process, discarding what it
            gets), OTEL_TRACES_SAMPLER=always_on, batch span export, OTLP metrics every 60 s

Each round starts the four servers afresh, all pinned to CPU 0, and after 50 warm-up calls each, sends `--requests`
steps of one sequential invoke to every server in turn (the order rotated every step; the client, pinned to CPU 1,
has one connection per server): the machine's load, which varies by the second on a shared box, falls on the four
alike. Reported per server: the median over rounds of the round's p50 and p99; the paired ratio to `before` (the
median, over the steps, of this server's latency over `before`'s in the same step); and the server's own CPU time
per invoke (user + system, all threads: the span exporter included), read from /proc, which the other processes'
load disturbs far less than wall time.

    .venv/bin/python benchmarks/telemetry_benchmark.py [--rounds 5] [--requests 300] [--before 7c27df9]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from mcp import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.runtime_benchmark import launch, write_bundle  # noqa: E402

CONFIGS = ("before", "disabled", "default", "traced")


@contextmanager
def discarding_receiver() -> Iterator[tuple[str, dict[str, int]]]:
    """An OTLP/HTTP endpoint that accepts every export (200, empty protobuf answer) and counts bytes per path."""
    received: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            received[self.path] = received.get(self.path, 0) + size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def extract_before(revision: str, into: Path) -> Path:
    """The runtime's packages at `revision`, as files (no checkout of the working tree is touched)."""
    archive = subprocess.run(
        ["git", "archive", revision, "runtime", "instance_contract", "oauth_resource"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start(bundle: Path, code: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "OTEL_"))}
    env.update({"PYTHONPATH": str(code), "LOG_LEVEL": "INFO", "AUTH_MODE": "none", "STATE_URL": "memory://"})
    env.update(extra)
    argv = [sys.executable, "-m", "runtime", "serve", "--bundle", str(bundle), "--host", "127.0.0.1", "--port", "0"]
    process, port = launch(argv, env, cwd=code)
    while httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
        time.sleep(0.05)
    return process, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads: the span exporter's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def interleaved(urls: dict[str, str], requests: int, offset: int) -> dict[str, list[float]]:
    """One sequential client per server; request i goes to every server in turn (order rotated each time), so the
    four samples of one step are taken within a few tens of milliseconds of each other."""
    names = list(urls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    async with AsyncExitStack() as stack:
        clients = {n: await stack.enter_async_context(Client(u)) for n, u in urls.items()}
        for n in names:
            await clients[n].list_tools()
            for i in range(50):  # warm-up
                await clients[n].call_tool("invoke", {"message": "plan the roadmap", "thread_id": f"warm-{i % 8}"})
        for i in range(requests):
            k = (i + offset) % len(names)
            for n in names[k:] + names[:k]:
                begin = time.perf_counter()
                result = await clients[n].call_tool(
                    "invoke", {"message": "plan the roadmap", "thread_id": f"t-{i % 32}"}
                )
                samples[n].append((time.perf_counter() - begin) * 1000)
                assert not result.is_error
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--before", default="7c27df9", help="git revision of the runtime before OpenTelemetry")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the client (and the receiver) on CPU 1; servers on CPU 0
    p50: dict[str, list[float]] = {c: [] for c in CONFIGS}
    p99: dict[str, list[float]] = {c: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
    ratios: dict[str, list[float]] = {c: [] for c in CONFIGS}
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp, discarding_receiver() as (endpoint, received):
        bundle = write_bundle(Path(tmp))
        before = extract_before(args.before, Path(tmp) / "before")
        setups: dict[str, tuple[Path, dict[str, str]]] = {
            "before": (before, {}),
            "disabled": (ROOT, {"OTEL_SDK_DISABLED": "true"}),
            "default": (ROOT, {}),
            "traced": (
                ROOT,
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                    "OTEL_TRACES_SAMPLER": "always_on",
                    "OTEL_METRIC_EXPORT_INTERVAL": "60000",
                },
            ),
        }
        load = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            servers = {c: start(bundle, *setups[c]) for c in CONFIGS}
            try:
                urls = {c: f"http://127.0.0.1:{port}/mcp" for c, (_, port) in servers.items()}
                cpu_before = {c: cpu_seconds(p.pid) for c, (p, _) in servers.items()}
                samples = asyncio.run(interleaved(urls, args.requests, round_))
                calls = args.requests + 50
                for c, (p, _) in servers.items():
                    cpu[c].append((cpu_seconds(p.pid) - cpu_before[c]) * 1000 / calls)
            finally:
                for process, _ in servers.values():
                    process.terminate()
                for process, _ in servers.values():
                    process.wait(timeout=30)
            for c in CONFIGS:
                p50[c].append(statistics.median(samples[c]))
                p99[c].append(percentile(samples[c], 0.99))
                ratios[c].append(statistics.median(a / b for a, b in zip(samples[c], samples["before"], strict=True)))
                print(
                    f"round {round_ + 1} {c:9} p50 {p50[c][-1]:7.2f} ms  p99 {p99[c][-1]:7.2f} ms  "
                    f"cpu {cpu[c][-1]:6.2f} ms/invoke  paired p50 ratio {ratios[c][-1]:.3f}",
                    flush=True,
                )
            load.append(os.getloadavg()[0])
        print(f"\nload average (1 min) after each round: {' '.join(f'{x:.1f}' for x in load)}")
        print(f"OTLP bytes received: {received}")
    print("\n| server | p50 ms | p99 ms | p50 / before (paired) | server CPU ms per invoke | CPU / before |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in CONFIGS:
        cpu_ratio = statistics.median(a / b for a, b in zip(cpu[c], cpu["before"], strict=True))
        print(
            f"| {c} | {statistics.median(p50[c]):.2f} | {statistics.median(p99[c]):.2f} "
            f"| {statistics.median(ratios[c]):.3f} | {statistics.median(cpu[c]):.2f} | {cpu_ratio:.3f} |"
        )


if __name__ == "__main__":
    main()
