"""`python -m runtime healthcheck`: the container health check (Dockerfile HEALTHCHECK, ECS task definition)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.runtime.runtime_harness import REPO_ROOT, BuiltBundle, RuntimeProcess, runtime_env, serve


def healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "healthcheck", *args],
        cwd=REPO_ROOT,
        env=runtime_env(env or {}),
        capture_output=True,
        text=True,
        timeout=30,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def failing_server() -> Iterator[int]:
    """An HTTP server whose /healthz answers 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_healthcheck_passes_against_a_serving_runtime_on_port_from_the_environment(
    example_bundles: list[BuiltBundle], runtime_factory: list[RuntimeProcess]
) -> None:
    runtime = serve({}, "--bundle", str(example_bundles[0].path))
    runtime_factory.append(runtime)
    result = healthcheck(env={"PORT": str(runtime.port)})
    assert result.returncode == 0, result.stderr
    assert healthcheck("--port", str(runtime.port)).returncode == 0


def test_healthcheck_fails_naming_the_url_when_nothing_listens() -> None:
    port = free_port()
    result = healthcheck("--port", str(port), "--timeout", "2")
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in result.stderr


def test_healthcheck_fails_when_healthz_does_not_answer_200(failing_server: int) -> None:
    result = healthcheck("--port", str(failing_server))
    assert result.returncode == 1
    assert "answered 500, expected 200" in result.stderr


def test_healthcheck_fails_within_its_timeout_when_the_server_hangs() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections (backlog) but never answers
        result = healthcheck("--port", str(listener.getsockname()[1]), "--timeout", "0.5")
    assert result.returncode == 1
    assert "timed out" in result.stderr


def test_healthcheck_imports_only_the_standard_library_and_the_runtime_cli() -> None:
    """instance_contract and oauth_resource count as ours: what the CLI takes from them (setting names, a URL check)
    is standard library only; anything heavier they pulled in (pydantic, PyJWT, the graph) shows up by its name."""
    probe = (
        "import sys; before = set(sys.modules); import runtime.cli;"
        "new = {m.split('.')[0] for m in set(sys.modules) - before};"
        "ours = {'runtime', 'instance_contract', 'oauth_resource'};"
        "print(','.join(sorted(new - set(sys.stdlib_module_names) - ours)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=runtime_env({}), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
