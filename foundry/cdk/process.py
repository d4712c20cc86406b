"""Run one external command the safe way: argv list (never a shell), fixed cwd, hard timeout, lines streamed.

The child gets its own process group, so a timeout or a cancelled request stops the command *and* whatever it
started (cdk runs node, which runs `python app.py`); nothing is left running behind a tool call.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

LineSink = Callable[[str], Awaitable[None]]
KILL_GRACE_SECONDS = 10.0
LINE_LIMIT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    exit_code: int | None
    """None when the command was stopped by the time limit."""
    timed_out: bool
    lines: tuple[str, ...] = field(repr=False)
    """Everything the command printed (stdout and stderr interleaved), without line ends."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class ProcessRunner:
    """Starts commands in `cwd` with `env`; `started` counts every command actually started, and `runs` counts them
    by subcommand (argv[1]: `synth`, `deploy`, ...; a rollout reports how many `cdk` runs of each kind it made)."""

    cwd: Path
    env: Mapping[str, str]
    started: int = 0
    runs: collections.Counter[str] = field(default_factory=collections.Counter)

    async def run(self, argv: Sequence[str], *, timeout_seconds: float, on_line: LineSink) -> ProcessResult:
        if not argv or any(not isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings")
        self.started += 1
        self.runs[argv[1] if len(argv) > 1 else argv[0]] += 1
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.cwd,
            env=dict(self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=LINE_LIMIT_BYTES,
        )
        lines: list[str] = []
        timed_out = False
        try:
            async with asyncio.timeout(timeout_seconds):
                await _pump(process, lines, on_line)
                await process.wait()
        except TimeoutError:
            timed_out = True
            await _stop(process)
        except BaseException:
            # A cancelled request (anyio cancels level-triggered: every bare await would raise again) must still
            # stop and reap the whole group, so the stop is shielded.
            with anyio.CancelScope(shield=True):
                await _stop(process)
            raise
        return ProcessResult(
            argv=tuple(argv),
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            lines=tuple(lines),
        )


def run_blocking(
    runner: ProcessRunner,
    argv: Sequence[str],
    *,
    timeout_seconds: float,
    on_line: Callable[[str], object] | None = None,
) -> ProcessResult:
    """`runner.run` for synchronous callers (the command-line tools): the same subprocess handling, on an event
    loop of its own. Blocks until the command ends, like `subprocess.run`; called from a thread whose event loop
    is running (a sync function inside async code), that loop waits too (its own loop runs in a worker thread)."""

    async def sink(line: str) -> None:
        if on_line is not None:
            on_line(line)

    def run() -> ProcessResult:
        return asyncio.run(runner.run(argv, timeout_seconds=timeout_seconds, on_line=sink))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


async def _pump(process: asyncio.subprocess.Process, lines: list[str], on_line: LineSink) -> None:
    assert process.stdout is not None
    while True:
        raw = await process.stdout.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line)
        await on_line(line)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole group, SIGKILL if it lingers; always reaps the child."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(KILL_GRACE_SECONDS):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    else:
        # The leader exited; children it left in the group (if any) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def tool_environment(repo_root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for cdk/node: the repo's venv (Node 24, python) and node_modules/.bin first on PATH."""
    env = dict(os.environ if base is None else base)
    venv_bin = repo_root / ".venv" / "bin"
    node_bin = repo_root / "node_modules" / ".bin"
    env["PATH"] = os.pathsep.join([str(venv_bin), str(node_bin), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(repo_root / ".venv")
    env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    env["CDK_DISABLE_VERSION_CHECK"] = "true"
    env["NO_COLOR"] = "1"
    env["FORCE_COLOR"] = "0"
    env["CI"] = "true"
    return env


def withhold_secrets(
    env: Mapping[str, str], *, names: Collection[str] = (), values: Collection[str] = ()
) -> dict[str, str]:
    """`env` without the variables in `names` and without any variable whose value contains one of `values`
    (the server's own bearer token must never reach cdk, the app it runs, or anything they start)."""
    secrets = [v for v in values if v]
    return {
        key: value for key, value in env.items() if key not in names and not any(secret in value for secret in secrets)
    }
