"""Start `python -m foundry serve --transport http` as a real process and know when it listens (no sleeps)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MARKER = "Uvicorn running on"
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    stderr_lines: list[str] = field(default_factory=list)


@contextmanager
def started(argv: list[str], *, env: dict[str, str], ready_marker: str, url: str) -> Iterator[ServerProcess]:
    """Starts argv and yields once its stderr shows ready_marker (a thread drains stderr so it never blocks)."""
    process = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ServerProcess(process=process, url=url)
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.stderr_lines.append(line.rstrip("\n"))
            if ready_marker in line:
                ready.set()
        ready.set()  # EOF: the process ended; the caller sees it did not start

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT_SECONDS) or process.poll() is not None:
            raise RuntimeError(f"{argv[:4]} did not start:\n" + "\n".join(server.stderr_lines))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        thread.join(timeout=5)


@contextmanager
def http_server(
    token: str | None, *, extra_args: tuple[str, ...] = (), extra_env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """`python -m foundry serve --transport http` on a free loopback port (extra_env: e.g. a local AWS)."""
    port = free_port()
    environment = {**os.environ, **(extra_env or {})}
    environment.pop("FOUNDRY_TOKEN", None)
    if token is not None:
        environment["FOUNDRY_TOKEN"] = token
    argv = [sys.executable, "-m", "foundry", "serve", "--transport", "http", "--port", str(port), *extra_args]
    with started(argv, env=environment, ready_marker=READY_MARKER, url=f"http://127.0.0.1:{port}/mcp") as server:
        yield server
