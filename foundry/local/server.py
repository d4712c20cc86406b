"""moto's server on 127.0.0.1 as a process of its own: started in a new session with its log in the state dir,
found again by its pid (and only if that pid still runs moto's server), stopped with its whole process group.

Also the environment every AWS client (boto3, the CDK CLI) needs to talk to it and to nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from foundry.files.repo import REPO_ROOT

MOTO_SERVER_MODULE = "foundry.local.moto"
"""moto's server plus the CloudFormation types our stacks need and moto lacks (foundry/local/moto.py)."""
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class LocalAwsError(Exception):
    """The local AWS cannot do what was asked; the message says why and what to run instead."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    port: int
    account: str
    region: str
    environment: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def aws_environment(state: ServerState, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every AWS client here (boto3, the CDK CLI) must see to talk to moto and nothing else.
    The S3 URL for CloudFormation says `localhost`: moto's CloudFormation reads a TemplateURL path-style only
    when its host contains 'localhost' (the name resolves to the same 127.0.0.1 server)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL=state.endpoint,
        AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION=f"http://localhost:{state.port}",
        AWS_REGION=state.region,
        AWS_DEFAULT_REGION=state.region,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@contextlib.contextmanager
def using_aws_environment(env: Mapping[str, str]) -> Iterator[None]:
    """boto3 reads endpoint and credentials from the environment; set them for the read-back only."""
    keys = {k for k in os.environ if k.startswith("AWS_")} | {k for k in env if k.startswith("AWS_")}
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            os.environ.pop(k, None)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spawn_server(*, state_dir: Path, log_file: Path, port: int, account: str) -> subprocess.Popen[bytes]:
    """Starts moto's server on 127.0.0.1:`port` as `account`, in a session of its own, logging to `log_file`."""
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "MOTO_ACCOUNT_ID": account, "PYTHONPATH": python_path}
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", "127.0.0.1", "-p", str(port)],
            cwd=state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_serving(state: ServerState, process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Returns once the server answers; raises LocalAwsError (with its log's last lines) if it exits or is slow."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-10:]
            raise LocalAwsError(f"moto's server exited (code {process.returncode}):\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(f"{state.endpoint}/moto-api/data.json", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise LocalAwsError(f"moto's server did not answer on {state.endpoint} within {START_TIMEOUT_S:.0f}s")


def stop_server(pid: int) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still alive after STOP_TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as stopped
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def is_our_server(pid: int) -> bool:
    """Only a live process whose command line is moto's server counts: never signal a recycled pid."""
    if not alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MOTO_SERVER_MODULE.encode() in cmdline
