"""Deploy (or dry-run) one instance with the real CDK CLI, one deploy per instance at a time.

The CLI runs as `node_modules/.bin/cdk` with an argv list from the repository root, selecting exactly one instance
through context (`-c environment=ENV -c instance=ORG/DOMAIN/INSTANCE`) and naming its stack (never `--all`). Each
instance gets its own working folder under `build/foundry-deploys/` (cloud assembly, outputs file, lock file), so
deploys of different instances never share a `cdk.out`.
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

from foundry import naming
from foundry.cloud_assembly import stack_templates
from foundry.process import ProcessResult, ProcessRunner
from foundry.resolve import ResolvedInstance

DeployMethod = Literal["change-set", "direct"]
Outcome = Literal["deployed", "failed", "timed_out", "synthesized"]
DEFAULT_TIMEOUT_SECONDS = 3600
LOG_TAIL_LINES = 40


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
    """The stack names given to cdk. Only the instance's own stack is named; cdk adds the platform stack only when
    the app declares it as a dependency (and then deploys it unchanged if it is already up to date)."""
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
    """Diffs the assembly just synthesized (no second synth) against the deployed template."""
    stacks = selected_stacks(request.instance)
    return [cdk, "diff", *stacks, "--app", str(paths.assembly), "--method=template", "--no-color"]


def deploy_argv(cdk: str, request: DeployRequest, paths: WorkPaths, method: DeployMethod) -> list[str]:
    stacks = selected_stacks(request.instance)
    return [
        cdk,
        "deploy",
        *stacks,
        *context_args(request),
        "--output",
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


class InstanceLocks:
    """One deploy per (environment, instance) at a time, across every process of this repository: an in-process
    set (two MCP sessions in one server) plus an flock on the instance's lock file (two servers, or the CLI)."""

    def __init__(self) -> None:
        self._held: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def hold(self, lock_file: Path, label: str) -> AsyncIterator[None]:
        key = str(lock_file)
        if key in self._held:
            since = time.strftime("%H:%M:%S", time.localtime(self._held[key]))
            raise DeployInProgressError(
                f"a deploy of {label} is already running in this server (started {since}); "
                "this request was refused, not queued: retry when it has finished"
            )
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = lock_file.read_text(errors="replace").strip() or "another process"
                raise DeployInProgressError(
                    f"a deploy of {label} is already running ({holder}); "
                    "this request was refused, not queued: retry when it has finished"
                ) from None
            started = time.time()
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}".encode())
            self._held[key] = started
            try:
                yield
            finally:
                del self._held[key]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


ProgressSink = Callable[[str, StackEvent | None], Awaitable[None]]
FailureLookup = Callable[[str, str, float], Awaitable[Failure | None]]
"""(stack name, region, deploy start as epoch seconds) -> the first failed resource CloudFormation recorded."""


@dataclass
class Deployer:
    """Runs `cdk` for one DeployRequest. `failure_lookup` (boto3 describe_stack_events) refines the failing
    resource when cdk's own output does not name it."""

    repo_root: Path
    runner: ProcessRunner
    locks: InstanceLocks
    method: DeployMethod = "change-set"
    failure_lookup: FailureLookup | None = None
    work_root: Path | None = None
    """Where each instance's cdk.out, outputs file and lock live; default build/foundry-deploys/."""

    @property
    def cdk(self) -> str:
        return str(self.repo_root / "node_modules" / ".bin" / "cdk")

    @property
    def deploys_dir(self) -> Path:
        return self.work_root or self.repo_root / "build" / "foundry-deploys"

    async def run(self, request: DeployRequest, progress: ProgressSink) -> DeployResult:
        instance = request.instance
        paths = work_paths(self.deploys_dir, instance.environment, instance)
        label = f"{instance.key.selector} in {instance.environment}"
        async with self.locks.hold(paths.lock_file, label):
            return await self._run_locked(request, paths, progress)

    async def _run_locked(self, request: DeployRequest, paths: WorkPaths, progress: ProgressSink) -> DeployResult:
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

        if request.dry_run:
            synth = await step(synth_argv(self.cdk, request, paths))
            if not synth.ok:
                return self._failed(base, synth, commands, paths)
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
                synthesized_stacks=assembly_stacks(paths.assembly),
                diff=diff_text,
                diff_exit_code=diff.exit_code,
                commands=commands,
                log_tail=list(synth.lines[-LOG_TAIL_LINES:]),
            )

        started_at = time.time()
        deploy = await step(deploy_argv(self.cdk, request, paths, self.method))
        if not deploy.ok:
            result = self._failed(base, deploy, commands, paths)
            if self.failure_lookup is not None and request.region and not deploy.timed_out:
                looked_up = await self.failure_lookup(selected_stacks(instance)[0], request.region, started_at)
                if looked_up is not None and (result.failure is None or result.failure.logical_id is None):
                    result = _replace(result, failure=looked_up)
            return result
        return _replace(
            base,
            outcome="deployed",
            outputs=read_outputs(paths),
            synthesized_stacks=assembly_stacks(paths.assembly),
            commands=commands,
            log_tail=list(deploy.lines[-LOG_TAIL_LINES:]),
        )

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
