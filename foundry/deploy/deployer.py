"""Deploy (or dry-run) one instance with the real CDK CLI, one deploy per instance at a time.

The CLI runs as `node_modules/.bin/cdk` with an argv list from the repository root, selecting exactly one instance
through context (`-c environment=ENV -c instance=ORG/DOMAIN/INSTANCE`) and naming its stack (never `--all`). Each
instance gets its own working folder under `build/foundry-deploys/` (cloud assembly, outputs file, lock file), so
deploys of different instances never share a `cdk.out`.

A deploy synthesizes first, then checks the environment's platform stack in AWS (`foundry.deploy.platform_gate`), then
deploys the assembly it just checked with `--exclusively`: only the instance's stack, never the shared platform.
Killing `cdk` does not stop CloudFormation: after a timeout or a cancelled request the instance's stack is read back,
and while CloudFormation is still working on it the instance stays locked (a bounded background watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from foundry.cdk.cloud_assembly import stack_templates
from foundry.cdk.process import ProcessResult, ProcessRunner
from foundry.deploy.platform_gate import (
    ClientFactory,
    PlatformCheck,
    check_platform,
    platform_deploy_command,
    read_stack_status,
    refusal,
)
from foundry.manifests import naming
from foundry.manifests.resolve import ResolvedInstance

DeployMethod = Literal["change-set", "direct"]
Outcome = Literal["deployed", "failed", "timed_out", "synthesized", "platform_not_ready"]
DEFAULT_TIMEOUT_SECONDS = 3600
LOG_TAIL_LINES = 40
WATCH_POLL_SECONDS = 15.0
WATCH_LIMIT_SECONDS = 6 * 3600.0
"""How long a stopped deploy's stack is watched at most: CloudFormation gives up on an ECS service that never
stabilizes after about three hours, and its rollback takes as long again."""
AWS_READ_TIMEOUT_SECONDS = 60.0


class DeployInProgressError(RuntimeError):
    """A deploy of the same instance is already running; the message says since when and from which process."""


@dataclass(frozen=True)
class DeployRequest:
    instance: ResolvedInstance
    agents_dir: Path
    dry_run: bool = False
    runtime_image: str | None = None
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    region: str | None = None
    """The environment's region, for reading CloudFormation's events when a deploy fails."""


@dataclass(frozen=True)
class Failure:
    """The first resource CloudFormation could not create/update, and why (its own words)."""

    stack: str | None
    logical_id: str | None
    resource_type: str | None
    status: str | None
    reason: str

    @classmethod
    def of_command(cls, reason: str) -> Failure:
        """A failure no resource is named for (cdk itself failed or was stopped)."""
        return cls(stack=None, logical_id=None, resource_type=None, status=None, reason=reason)


@dataclass(frozen=True)
class DeployResult:
    outcome: Outcome
    environment: str
    instance: str
    hostname: str
    stacks: list[str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    synthesized_stacks: list[str] = field(default_factory=list)
    diff: str | None = None
    diff_exit_code: int | None = None
    """0: no differences, 1: differences found (with --fail) or the deployed template could not be read."""
    failure: Failure | None = None
    platform: PlatformCheck | None = None
    """The environment's platform stack as read from AWS before deploying (also on a dry run)."""
    stack_status: str | None = None
    """CloudFormation's status of the instance's stack when the deploy ended (read from AWS after a failure,
    a timeout or a stop; e.g. UPDATE_IN_PROGRESS: CloudFormation keeps working after cdk was stopped)."""
    locked_until_settled: bool = False
    """True when the instance stays locked after this call because CloudFormation is still working on its stack."""
    commands: list[list[str]] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    work_dir: str = ""


@dataclass(frozen=True)
class WorkPaths:
    root: Path
    assembly: Path
    outputs_file: Path
    lock_file: Path


def work_paths(work_root: Path, environment: str, instance: ResolvedInstance) -> WorkPaths:
    key = instance.key
    root = work_root / environment / key.organization_id / key.domain_id / key.instance_id
    return WorkPaths(
        root=root, assembly=root / "cdk.out", outputs_file=root / "outputs.json", lock_file=root / "deploy.lock"
    )


def selected_stacks(instance: ResolvedInstance) -> list[str]:
    """The stack names given to cdk: only the instance's own stack (with `--exclusively`, not its dependencies)."""
    return [naming.instance_stack_name(instance.environment, instance.key)]


def context_args(request: DeployRequest) -> list[str]:
    args = [
        "--context",
        f"agentsDir={request.agents_dir}",
        "--context",
        f"environment={request.instance.environment}",
        "--context",
        f"instance={request.instance.key.selector}",
    ]
    if request.runtime_image:
        args += ["--context", f"runtimeImage={request.runtime_image}"]
    return args


def synth_argv(cdk: str, request: DeployRequest, paths: WorkPaths) -> list[str]:
    stacks = selected_stacks(request.instance)
    return [cdk, "synth", *stacks, *context_args(request), "--output", str(paths.assembly), "--quiet", "--no-color"]


def diff_argv(cdk: str, request: DeployRequest, paths: WorkPaths) -> list[str]:
    """Diffs the assembly just synthesized (no second synth) against the deployed template, this stack only."""
    stacks = selected_stacks(request.instance)
    return [cdk, "diff", *stacks, "--exclusively", "--app", str(paths.assembly), "--method=template", "--no-color"]


def deploy_argv(cdk: str, request: DeployRequest, paths: WorkPaths, method: DeployMethod) -> list[str]:
    """Deploys the assembly that was synthesized and checked (no second synth), and only the instance's stack:
    `--exclusively` keeps cdk from deploying the platform stack the instance stack depends on."""
    stacks = selected_stacks(request.instance)
    return [
        cdk,
        "deploy",
        *stacks,
        "--exclusively",
        "--app",
        str(paths.assembly),
        "--require-approval",
        "never",
        "--outputs-file",
        str(paths.outputs_file),
        f"--method={method}",
        "--progress",
        "events",
        "--no-color",
    ]


# --- reading what cdk says ---------------------------------------------------------------------------------

# `af-dev-x | 3/12 | 10:04:05 AM | CREATE_FAILED | AWS::ECS::Service | Service/Service (ServiceABC) reason...`
# (`--method=direct` prints the count without `/total`.)
_EVENT = re.compile(
    r"^\s*(?P<stack>[A-Za-z][A-Za-z0-9-]*)\s*\|\s*(?P<done>\d+)\s*(?:/\s*(?P<total>\d+))?\s*\|[^|]*\|\s*"
    r"(?P<status>[A-Z_]+)\s*\|\s*(?P<type>[A-Za-z0-9:]+)\s*\|\s*(?P<rest>.*)$"
)
_FAILED_STATUSES = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_FAILED")
_CANCELLED = ("Resource creation cancelled", "Resource update cancelled")


@dataclass(frozen=True)
class StackEvent:
    stack: str
    done: int
    total: int | None
    status: str
    resource_type: str
    detail: str


def parse_event_line(line: str) -> StackEvent | None:
    match = _EVENT.match(line)
    if not match:
        return None
    return StackEvent(
        stack=match["stack"],
        done=int(match["done"]),
        total=int(match["total"]) if match["total"] else None,
        status=match["status"],
        resource_type=match["type"],
        detail=match["rest"].strip(),
    )


def failure_from_lines(lines: list[str] | tuple[str, ...]) -> Failure | None:
    """The first *_FAILED resource event cdk printed (skipping 'cancelled' follow-ups), else cdk's own error."""
    fallback: Failure | None = None
    for line in lines:
        event = parse_event_line(line)
        if event is None or event.status not in _FAILED_STATUSES:
            continue
        # detail: "<construct path> (<LogicalId>) <reason>" or "<LogicalId> <reason>"
        with_path = re.match(r"^(?:\S+\s+)?\((?P<logical>[A-Za-z0-9]+)\)\s*(?P<reason>.*)$", event.detail)
        if with_path:
            logical, reason = with_path["logical"], with_path["reason"]
        else:
            logical, _, reason = event.detail.partition(" ")
        failure = Failure(
            stack=event.stack,
            logical_id=logical or None,
            resource_type=event.resource_type,
            status=event.status,
            reason=reason.strip() or event.detail,
        )
        if not any(reason.strip().startswith(c) for c in _CANCELLED):
            return failure
        fallback = fallback or failure
    if fallback:
        return fallback
    return _cdk_error(lines)


def _cdk_error(lines: list[str] | tuple[str, ...]) -> Failure | None:
    """cdk's own summary: `❌  STACK failed to deploy` (or `❌ Deployment failed: ...`), the `‣ Code: message`
    lines that follow it, or a bare `Error:` line."""
    for index, line in enumerate(lines):
        marker = re.match(r"^\s*❌\s*(?:(?P<stack>[A-Za-z][A-Za-z0-9-]*) failed to deploy|(?P<text>.*))", line)
        if not marker:
            continue
        details = []
        for follow in lines[index + 1 :]:
            if not follow.strip().startswith("‣"):
                break
            details.append(follow.strip().lstrip("‣").strip())
        head = marker["text"].strip() if marker["text"] else ""
        reason = "; ".join([d for d in [head, *details] if d]) or line.strip()
        return Failure(stack=marker["stack"], logical_id=None, resource_type=None, status=None, reason=reason)
    errors = [line.strip() for line in lines if re.match(r"^\s*(Error|ValidationError)\b", line)]
    if errors:
        return Failure.of_command(" / ".join(errors[-3:]))
    return None


def read_outputs(paths: WorkPaths) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(paths.outputs_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(stack): {str(k): str(v) for k, v in outs.items()} for stack, outs in data.items() if isinstance(outs, dict)
    }


def assembly_stacks(assembly: Path) -> list[str]:
    """Names of the CloudFormation stacks in a cloud assembly (manifest.json), sorted; none if it is unreadable."""
    try:
        return sorted(stack_templates(assembly))
    except (OSError, ValueError, KeyError):
        return []


# --- one deploy per instance -----------------------------------------------------------------------------


class HeldLock:
    """One instance's lock while it is held: by a running deploy, or by the watch of a stopped deploy's stack.
    `reason` is what a refused request is told; it is also written into the lock file for other processes."""

    def __init__(self, locks: InstanceLocks, key: str, fd: int, reason: str) -> None:
        self._locks, self.key, self._fd = locks, key, fd
        self.released = False
        self.handed_over = False
        """Set when a background watch took the lock over: the request that acquired it no longer releases it."""
        self.describe(reason)

    def describe(self, reason: str) -> None:
        self.reason = reason
        self._locks._held[self.key] = reason
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}: {reason}".encode(), 0)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._locks._held.pop(self.key, None)
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)


class InstanceLocks:
    """One deploy per (environment, instance) at a time, across every process of this repository: an in-process
    map (two MCP sessions in one server) plus an flock on the instance's lock file (two servers, or the CLI)."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    def acquire(self, lock_file: Path, label: str) -> HeldLock:
        """Takes the instance's lock or raises DeployInProgressError saying who holds it and why."""
        key = str(lock_file)
        if key in self._held:
            raise DeployInProgressError(
                f"a deploy of {label} is already running in this server ({self._held[key]}); "
                "this request was refused, not queued: retry when it has finished"
            )
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = lock_file.read_text(errors="replace").strip() or "another process"
            raise DeployInProgressError(
                f"a deploy of {label} is already running ({holder}); "
                "this request was refused, not queued: retry when it has finished"
            ) from None
        return HeldLock(self, key, fd, f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")

    def reason(self, lock_file: Path) -> str | None:
        """Why this process holds the lock (None: it does not; another process may, see the lock file)."""
        return self._held.get(str(lock_file))

    @contextlib.asynccontextmanager
    async def hold(self, lock_file: Path, label: str) -> AsyncIterator[HeldLock]:
        held = self.acquire(lock_file, label)
        try:
            yield held
        finally:
            held.release()


ProgressSink = Callable[[str, StackEvent | None], Awaitable[None]]
FailureLookup = Callable[[str, str, float], Awaitable[Failure | None]]
"""(stack name, region, deploy start as epoch seconds) -> the first failed resource CloudFormation recorded."""


@dataclass(frozen=True)
class Interruption:
    """A deploy whose cdk was stopped (time limit or cancelled request) and what CloudFormation did after it."""

    stack: str
    how: Literal["timed_out", "cancelled"]
    at: str
    status_when_stopped: str | None
    settled_status: str | None = None
    """The stack's status once CloudFormation stopped working on it (e.g. UPDATE_ROLLBACK_COMPLETE)."""
    settled_at: str | None = None
    watch_gave_up: bool = False
    """The watch reached its limit with the stack still in progress (or unreadable); the lock was released."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _in_progress(status: str | None) -> bool:
    return status is not None and status.endswith("_IN_PROGRESS")


@dataclass
class Deployer:
    """Runs `cdk` for one DeployRequest. `clients` (boto3) reads the platform stack and the instance's stack;
    `failure_lookup` (describe_stack_events) refines the failing resource when cdk's own output does not name it."""

    repo_root: Path
    runner: ProcessRunner
    locks: InstanceLocks
    method: DeployMethod = "change-set"
    failure_lookup: FailureLookup | None = None
    work_root: Path | None = None
    """Where each instance's cdk.out, outputs file and lock live; default build/foundry-deploys/."""
    clients: ClientFactory | None = None
    """boto3 clients; a real deploy needs them (the platform check, the stack's state after a stop)."""
    cdk_cli: Path | None = None
    """The CDK CLI; default node_modules/.bin/cdk."""
    watch_poll_seconds: float = WATCH_POLL_SECONDS
    watch_limit_seconds: float = WATCH_LIMIT_SECONDS
    watches: dict[str, asyncio.Task[Interruption]] = field(default_factory=dict, init=False, repr=False)
    """Background watches of stopped deploys' stacks, by lock file; each ends by releasing the instance's lock."""

    @property
    def cdk(self) -> str:
        return str(self.cdk_cli or self.repo_root / "node_modules" / ".bin" / "cdk")

    @property
    def deploys_dir(self) -> Path:
        return self.work_root or self.repo_root / "build" / "foundry-deploys"

    def paths_of(self, instance: ResolvedInstance) -> WorkPaths:
        return work_paths(self.deploys_dir, instance.environment, instance)

    async def run(self, request: DeployRequest, progress: ProgressSink) -> DeployResult:
        instance = request.instance
        paths = self.paths_of(instance)
        label = f"{instance.key.selector} in {instance.environment}"
        held = self.locks.acquire(paths.lock_file, label)
        try:
            if not request.dry_run:
                if self.clients is None or request.region is None:
                    raise RuntimeError("a deploy needs AWS clients and the environment's region (Deployer.clients)")
                await self._refuse_if_stack_in_progress(request, label)
            return await self._run_locked(request, paths, progress, held)
        finally:
            if not held.handed_over:
                held.release()

    async def _read_status(self, region: str, stack: str) -> str | None:
        assert self.clients is not None
        clients = self.clients
        async with asyncio.timeout(AWS_READ_TIMEOUT_SECONDS):
            return await asyncio.to_thread(lambda: read_stack_status(clients("cloudformation", region), stack))

    async def _refuse_if_stack_in_progress(self, request: DeployRequest, label: str) -> None:
        """No deploy starts on top of a running CloudFormation operation (another server's, or one that outlived
        a stopped cdk and this server's watch)."""
        from botocore.exceptions import BotoCoreError, ClientError

        assert request.region is not None
        stack = selected_stacks(request.instance)[0]
        try:
            status = await self._read_status(request.region, stack)
        except (ClientError, BotoCoreError, TimeoutError):
            return  # unreadable here; the platform check reads AWS next and reports what fails
        if _in_progress(status):
            raise DeployInProgressError(
                f"a deploy of {label} is already running: CloudFormation is working on its stack {stack} "
                f"({status}); this request was refused, not queued: retry when the stack has settled "
                "(foundry.get_instance_status shows it)"
            )

    async def _check_platform(self, request: DeployRequest, paths: WorkPaths) -> PlatformCheck:
        from botocore.exceptions import BotoCoreError, ClientError

        instance = request.instance
        clients = self.clients
        assert clients is not None and request.region is not None
        platform = naming.platform_stack_name(instance.environment)
        region = request.region
        try:
            templates = await asyncio.to_thread(stack_templates, paths.assembly)
            platform_template, instance_template = templates[platform], templates[selected_stacks(instance)[0]]
        except (OSError, ValueError, KeyError) as exc:
            return _unchecked_platform(
                instance.environment, platform, f"the synthesized assembly {paths.assembly} lacks a template: {exc}"
            )
        try:
            async with asyncio.timeout(AWS_READ_TIMEOUT_SECONDS):
                return await asyncio.to_thread(
                    check_platform,
                    clients,
                    region=region,
                    environment=instance.environment,
                    platform_template=platform_template,
                    instance_template=instance_template,
                )
        except (ClientError, BotoCoreError, TimeoutError) as exc:
            return _unchecked_platform(
                instance.environment,
                platform,
                f"the platform stack {platform} could not be read from AWS: {exc or type(exc).__name__}",
            )

    async def _run_locked(
        self, request: DeployRequest, paths: WorkPaths, progress: ProgressSink, held: HeldLock
    ) -> DeployResult:
        instance = request.instance
        deadline = time.monotonic() + request.timeout_seconds
        paths.outputs_file.unlink(missing_ok=True)
        base = DeployResult(
            outcome="failed",
            environment=instance.environment,
            instance=instance.key.selector,
            hostname=instance.manifest.spec.hostname,
            stacks=selected_stacks(instance),
            work_dir=str(paths.root),
        )
        commands: list[list[str]] = []

        async def step(argv: list[str]) -> ProcessResult:
            commands.append(argv)

            async def on_line(line: str) -> None:
                await progress(line, parse_event_line(line))

            remaining = max(1.0, deadline - time.monotonic())
            return await self.runner.run(argv, timeout_seconds=remaining, on_line=on_line)

        synth = await step(synth_argv(self.cdk, request, paths))
        if not synth.ok:
            return self._failed(base, synth, commands, paths)
        synthesized = assembly_stacks(paths.assembly)
        platform = await self._check_platform(request, paths) if self.clients and request.region else None

        if request.dry_run:
            diff = await step(diff_argv(self.cdk, request, paths))
            if diff.timed_out:
                return self._failed(base, diff, commands, paths)
            diff_text = "\n".join(diff.lines)
            if diff.exit_code != 0:
                diff_text = (
                    f"(cdk diff exited {diff.exit_code}; the deployed template could not be compared)\n{diff_text}"
                )
            return _replace(
                base,
                outcome="synthesized",
                synthesized_stacks=synthesized,
                diff=diff_text,
                diff_exit_code=diff.exit_code,
                platform=platform,
                commands=commands,
                log_tail=list(synth.lines[-LOG_TAIL_LINES:]),
            )

        assert platform is not None
        if not platform.ready:
            label = f"{instance.key.selector} in {instance.environment}"
            return _replace(
                base,
                outcome="platform_not_ready",
                synthesized_stacks=synthesized,
                platform=platform,
                failure=Failure(
                    stack=platform.stack,
                    logical_id=None,
                    resource_type=None,
                    status=platform.status,
                    reason=refusal(platform, label),
                ),
                commands=commands,
                log_tail=list(synth.lines[-LOG_TAIL_LINES:]),
            )

        started_at = time.time()
        try:
            deploy = await step(deploy_argv(self.cdk, request, paths, self.method))
        except BaseException:
            # The request was cancelled while cdk ran (the runner has stopped cdk). CloudFormation may go on:
            # the lock stays with a watch of the stack until it settles. Shielded: anyio re-raises at every await.
            with anyio.CancelScope(shield=True):
                await self._after_stop(request, paths, held, "cancelled")
            raise
        if deploy.timed_out:
            status, watching = await self._after_stop(request, paths, held, "timed_out")
            result = self._failed(base, deploy, commands, paths)
            return _replace(
                result,
                platform=platform,
                synthesized_stacks=synthesized,
                stack_status=status,
                locked_until_settled=watching,
                failure=Failure.of_command(_stopped_reason(selected_stacks(instance)[0], status, watching, self)),
            )
        if not deploy.ok:
            result = self._failed(base, deploy, commands, paths)
            if self.failure_lookup is not None and request.region:
                looked_up = await self.failure_lookup(selected_stacks(instance)[0], request.region, started_at)
                if looked_up is not None and (result.failure is None or result.failure.logical_id is None):
                    result = _replace(result, failure=looked_up)
            return _replace(result, platform=platform, synthesized_stacks=synthesized)
        return _replace(
            base,
            outcome="deployed",
            outputs=read_outputs(paths),
            synthesized_stacks=synthesized,
            platform=platform,
            commands=commands,
            log_tail=list(deploy.lines[-LOG_TAIL_LINES:]),
        )

    async def _after_stop(
        self, request: DeployRequest, paths: WorkPaths, held: HeldLock, how: Literal["timed_out", "cancelled"]
    ) -> tuple[str | None, bool]:
        """Reads the stack CloudFormation may still be working on; if it is (or cannot be read), hands the lock to
        a background watch. Returns (status read, whether the lock is now held by a watch)."""
        from botocore.exceptions import BotoCoreError, ClientError

        assert request.region is not None
        stack = selected_stacks(request.instance)[0]
        readable = True
        try:
            status = await self._read_status(request.region, stack)
        except (ClientError, BotoCoreError, TimeoutError):
            status, readable = None, False
        interruption = Interruption(stack=stack, how=how, at=_now(), status_when_stopped=status)
        _write_interruption(paths, interruption)
        if readable and not _in_progress(status):
            return status, False
        held.describe(_watch_reason(interruption, status if readable else "unreadable"))
        held.handed_over = True
        task = asyncio.get_running_loop().create_task(
            self._watch(held, interruption, request.region, paths), name=f"watch {stack}"
        )
        self.watches[str(paths.lock_file)] = task
        return status, True

    async def _watch(self, held: HeldLock, interruption: Interruption, region: str, paths: WorkPaths) -> Interruption:
        """Polls the stack until CloudFormation no longer works on it (bounded), then releases the lock."""
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + self.watch_limit_seconds
        status, readable = interruption.status_when_stopped, interruption.status_when_stopped is not None
        try:
            while not readable or _in_progress(status):
                if time.monotonic() >= deadline:
                    final = dataclasses.replace(interruption, settled_status=status, watch_gave_up=True)
                    break
                await asyncio.sleep(self.watch_poll_seconds)
                try:
                    status, readable = await self._read_status(region, interruption.stack), True
                except (ClientError, BotoCoreError, TimeoutError):
                    readable = False
                held.describe(_watch_reason(interruption, status if readable else "unreadable"))
            else:
                final = dataclasses.replace(interruption, settled_status=status, settled_at=_now())
            _write_interruption(paths, final)
            return final
        finally:
            held.release()

    def lock_reason(self, instance: ResolvedInstance) -> str | None:
        """Why this server holds the instance's lock right now (a deploy, or the watch of a stopped one), if it does."""
        return self.locks.reason(self.paths_of(instance).lock_file)

    def last_interruption(self, instance: ResolvedInstance) -> Interruption | None:
        """The last stopped deploy of this instance and how CloudFormation ended it (from its work folder)."""
        try:
            data = json.loads((self.paths_of(instance).root / "interrupted-deploy.json").read_text())
            return Interruption(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _failed(
        self, base: DeployResult, result: ProcessResult, commands: list[list[str]], paths: WorkPaths
    ) -> DeployResult:
        if result.timed_out:
            failure = Failure.of_command(
                f"`{' '.join(result.argv[1:3])}` did not finish within the time limit and was stopped"
            )
            outcome: Outcome = "timed_out"
        else:
            failure = failure_from_lines(result.lines) or Failure.of_command(
                f"`cdk {result.argv[1]}` exited with code {result.exit_code}"
            )
            outcome = "failed"
        return _replace(
            base,
            outcome=outcome,
            failure=failure,
            outputs=read_outputs(paths),
            commands=commands,
            log_tail=list(result.lines[-LOG_TAIL_LINES:]),
        )


def _write_interruption(paths: WorkPaths, interruption: Interruption) -> None:
    with contextlib.suppress(OSError):
        (paths.root / "interrupted-deploy.json").write_text(json.dumps(dataclasses.asdict(interruption), indent=2))


def _watch_reason(interruption: Interruption, status: str | None) -> str:
    what = "timed out" if interruption.how == "timed_out" else "was cancelled"
    return (
        f"its deploy {what} at {interruption.at} and cdk was stopped, but CloudFormation is still working on "
        f"stack {interruption.stack} ({status or 'not readable'} as of {_now()}); no deploy may start on top of it"
    )


def _stopped_reason(stack: str, status: str | None, watching: bool, deployer: Deployer) -> str:
    head = "`cdk deploy` did not finish within the time limit and was stopped"
    if watching:
        return (
            f"{head}; stopping cdk does not stop CloudFormation: stack {stack} is {status or 'not readable'}. "
            f"The instance stays locked until CloudFormation has finished (watched for up to "
            f"{deployer.watch_limit_seconds / 3600:g} h); foundry.get_instance_status shows how it ends"
        )
    return f"{head}; stack {stack} is {status or 'not deployed'} (CloudFormation is not working on it)"


def _replace(result: DeployResult, **changes: Any) -> DeployResult:
    return dataclasses.replace(result, **changes)


def stack_events_failure(clients: Callable[[str, str], Any]) -> FailureLookup:
    """A FailureLookup over boto3: the oldest *_FAILED event since the deploy started, 'cancelled' ones last."""

    def lookup(stack_name: str, region: str, since: float) -> Failure | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            events = clients("cloudformation", region).describe_stack_events(StackName=stack_name)["StackEvents"]
        except (ClientError, BotoCoreError):
            return None
        failed = [
            e
            for e in reversed(events)  # the API lists newest first
            if str(e.get("ResourceStatus", "")).endswith("_FAILED") and e["Timestamp"].timestamp() >= since - 5
        ]
        failed.sort(key=lambda e: any(str(e.get("ResourceStatusReason", "")).startswith(c) for c in _CANCELLED))
        if not failed:
            return None
        event = failed[0]
        return Failure(
            stack=stack_name,
            logical_id=event.get("LogicalResourceId"),
            resource_type=event.get("ResourceType"),
            status=event.get("ResourceStatus"),
            reason=str(event.get("ResourceStatusReason", "")),
        )

    async def run(stack_name: str, region: str, since: float) -> Failure | None:
        return await asyncio.to_thread(lookup, stack_name, region, since)

    return run


def _unchecked_platform(environment: str, platform: str, problem: str) -> PlatformCheck:
    """A platform that could not be checked is reported not ready, never ready, with the command that deploys it."""
    return PlatformCheck(
        stack=platform,
        status=None,
        ready=False,
        problems=[problem],
        deploy_command=platform_deploy_command(environment, platform),
    )
