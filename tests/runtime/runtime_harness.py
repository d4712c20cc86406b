"""Helpers for the runtime tests: bundles of the example fleet, and a real runtime process on 127.0.0.1."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from foundry.bundles.archive import build_bundle
from foundry.fleet.load import load_fleet
from foundry.manifests.resolve import ResolvedInstance
from oauth_resource.dev_issuer import DevIssuer
from runtime.auth import INSTANCE_SCOPES, default_audience

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENTS_DIR = REPO_ROOT / "agents"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class BuiltBundle:
    instance: ResolvedInstance
    path: Path
    content_hash: str

    def identity_env(self) -> dict[str, str]:
        identity = self.instance.manifest.spec.identity
        return {
            "ORG_ID": identity.organization_id,
            "DOMAIN_ID": identity.domain_id,
            "ENVIRONMENT": identity.environment,
            "INSTANCE_ID": identity.instance_id,
            "BUNDLE_URI": str(self.path),
            "BUNDLE_HASH": self.content_hash,
        }

    def token(self, issuer: DevIssuer, *, subject: str = "tester", scopes: tuple[str, ...] = INSTANCE_SCOPES) -> str:
        """A token the local issuer signs for this instance (its organization and audience)."""
        spec = self.instance.manifest.spec
        return issuer.mint(
            subject=subject,
            organization=spec.identity.organization_id,
            audience=default_audience(spec.hostname),
            scopes=list(scopes),
        )


@asynccontextmanager
async def mcp_client(url: str, token: str | None = None) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, presenting `token` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def write_bundles(agents_dir: Path, out: Path, instance: str | None = None) -> list[BuiltBundle]:
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for resolved in load_fleet(agents_dir, instance=instance).instances:
        bundle = build_bundle(resolved)
        path = out / f"{resolved.environment}.{resolved.manifest.metadata.name}.tar.gz"
        path.write_bytes(bundle.archive)
        built.append(BuiltBundle(resolved, path, bundle.content_hash))
    return built


def copy_agents(target: Path) -> Path:
    shutil.copytree(AGENTS_DIR, target, ignore=shutil.ignore_patterns("schemas"))
    return target


@dataclass
class RuntimeProcess:
    """`python -m runtime serve` as a child process; stderr lines are collected by a reader thread."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """Blocks until a stderr line matches (event-driven: the reader thread hands over each line)."""
        regex = re.compile(pattern)
        for old in self.seen:
            if match := regex.search(old):
                return match
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no stderr line matched {pattern!r}; got:\n" + "".join(self.seen)) from None
            if line is None:
                raise AssertionError(f"process exited before {pattern!r}; stderr:\n" + "".join(self.seen))
            self.seen.append(line)
            if match := regex.search(line):
                return match

    def stderr_text(self) -> str:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def runtime_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's variables over a cleaned environment. Without AUTH_ISSUER in `extra` the runtime runs with
    AUTH_MODE=none (tests where caller authentication is not the point); `auth_env()` gives the secured set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_", "BUNDLE_", "OFFLINE_MODEL_", "AUTH_"))}
    for name in ("ORG_ID", "DOMAIN_ID", "ENVIRONMENT", "INSTANCE_ID", "ALLOWED_HOSTS", "PORT"):
        env.pop(name, None)
    env.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true"})
    # Hermetic by default: a test that is about the store names one (the local default is a file under build/).
    env["STATE_URL"] = "memory://"
    if "AUTH_ISSUER" not in extra and "AUTH_MODE" not in extra:
        env["AUTH_MODE"] = "none"
    env.update(extra)
    for unset in [k for k, v in env.items() if not v]:  # an empty value in `extra` means: leave it unset
        del env[unset]
    return env


def auth_env(issuer_url: str, **extra: str) -> dict[str, str]:
    """A runtime secured by a local issuer (oauth_resource.dev_issuer.serve_issuer): its JWKS found by discovery,
    and an unknown key id fetched again at once (tests rotate keys; the rate limit has its own test)."""
    return {"AUTH_ISSUER": issuer_url, "AUTH_JWKS_MIN_REFETCH_SECONDS": "0", **extra}


def start_runtime(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> RuntimeProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--host", "127.0.0.1", "--port", "0", *args],
        cwd=cwd,
        env=runtime_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    runtime = RuntimeProcess(process)

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            runtime.lines.put(line)
        runtime.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return runtime


def serve(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> RuntimeProcess:
    """Starts a runtime and waits until uvicorn reports its port (the lifespan, and so readiness, came first)."""
    runtime = start_runtime(env, *args, cwd=cwd)
    try:
        runtime.port = int(runtime.wait_for_line(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))
    except BaseException:
        runtime.process.kill()
        runtime.process.wait(timeout=10)
        raise
    return runtime
