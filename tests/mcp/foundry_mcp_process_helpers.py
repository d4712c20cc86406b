"""Start `python -m foundry serve --transport http` as a real process and know when it listens (no sleeps)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
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
def http_server(
    token: str | None, *, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    port = free_port()
    environment = {**os.environ, **(env or {})}
    environment.pop("FOUNDRY_TOKEN", None)
    if token is not None:
        environment["FOUNDRY_TOKEN"] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "foundry", "serve", "--transport", "http", "--port", str(port), *extra_args],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ServerProcess(process=process, url=f"http://127.0.0.1:{port}/mcp")
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.stderr_lines.append(line.rstrip("\n"))
            if READY_MARKER in line:
                ready.set()
        ready.set()  # EOF: the process ended; the caller sees it did not start

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT_SECONDS) or process.poll() is not None:
            raise RuntimeError("foundry serve did not start:\n" + "\n".join(server.stderr_lines))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        thread.join(timeout=5)
