"""Deploy (or dry-run) one instance with the real CDK CLI, one deploy per instance at a time.

The CLI (`foundry.cdk.cli`) runs from the repository root with an argv list, selecting exactly one instance through
context (`-c environment=ENV -c instance=ORG/DOMAIN/INSTANCE`) and naming its stack (never `--all`), in the
instance's own working folder (`foundry.deploy.request.work_paths`).

A deploy synthesizes first (unless it is given an assembly synthesized beforehand, as a rollout's deploys are),
then checks the environment's platform stack in AWS (`foundry.deploy.platform_gate`), then deploys the assembly it
just checked with `--exclusively`: only the instance's stack, never the shared platform.
Killing `cdk` does not stop CloudFormation: after a timeout or a cancelled request the instance's stack is read back,
and while CloudFormation is still working on it the instance stays locked (`foundry.deploy.interruption`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from foundry.aws.clients import READ_TIMEOUT_SECONDS, ClientFactory
from foundry.aws.cloudformation import Failure, FailureLookup, in_progress, read_stack_status
from foundry.cdk.cli import CdkCli, DeployMethod, repo_cdk
from foundry.cdk.cloud_assembly import assembly_stacks
from foundry.cdk.output import failure_from_lines, parse_event_line, read_outputs
from foundry.cdk.process import ProcessResult, ProcessRunner
from foundry.deploy.interruption import (
    UNREADABLE,
    WATCH_LIMIT_SECONDS,
    WATCH_POLL_SECONDS,
    Interruption,
    StopKind,
    now,
    read_interruption,
    stopped_reason,
    watch_reason,
    watch_until_settled,
    write_interruption,
)
from foundry.deploy.locks import DeployInProgressError, HeldLock, InstanceLocks, LockTarget
from foundry.deploy.platform_gate import PlatformCheck, check_assembly_platform, refusal
from foundry.deploy.request import DeployRequest, DeployResult, Outcome, ProgressSink, WorkPaths, work_paths
from foundry.deploy.secret_names import SECRET_TYPE, SecretConflict, check_assembly_secrets
from foundry.manifests.resolve import ResolvedInstance

LOG_TAIL_LINES = 40
Step = Callable[[list[str]], Awaitable[ProcessResult]]
"""Runs one cdk argv within the deploy's time limit, recording it among the result's commands."""


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
    """Background watches of stopped deploys' stacks, by lock key; each ends by releasing the instance's lock."""

    @property
    def cdk(self) -> CdkCli:
        return CdkCli(str(self.cdk_cli or repo_cdk(self.repo_root)))

    @property
    def deploys_dir(self) -> Path:
        return self.work_root or self.repo_root / "build" / "foundry-deploys"

    def paths_of(self, instance: ResolvedInstance) -> WorkPaths:
        return work_paths(self.deploys_dir, instance.environment, instance)

    @staticmethod
    def lock_target(instance: ResolvedInstance, region: str | None) -> LockTarget:
        return LockTarget(instance.environment, instance.key.selector, region)

    def lock_reason(self, instance: ResolvedInstance, region: str | None = None) -> str | None:
        """Who holds the instance's lock right now and why (this server's deploy or watch of a stopped one, a
        rollout, another server), if anyone does."""
        return self.locks.reason(self.lock_target(instance, region))

    def last_interruption(self, instance: ResolvedInstance) -> Interruption | None:
        """The last stopped deploy of this instance and how CloudFormation ended it (from its work folder)."""
        return read_interruption(self.paths_of(instance).interruption_file)

    async def run(
        self, request: DeployRequest, progress: ProgressSink, *, held: HeldLock | None = None
    ) -> DeployResult:
        """`held`: the instance's lock, already taken by the caller (a rollout holds its instances beyond one
        deploy) and released by it; without it the deploy takes the lock and releases it when done."""
        paths = self.paths_of(request.instance)
        own = held is None
        if held is None:
            held = await asyncio.to_thread(
                self.locks.acquire, self.lock_target(request.instance, request.region), request.label
            )
        try:
            if not request.dry_run:
                if self.clients is None or request.region is None:
                    raise RuntimeError("a deploy needs AWS clients and the environment's region (Deployer.clients)")
                await self._refuse_if_stack_in_progress(request)
            return await self._run_locked(request, paths, progress, held)
        finally:
            if own and not held.handed_over:
                held.release()

    # --- reading AWS -----------------------------------------------------------------------------------------

    async def _read_status(self, region: str, stack: str) -> str | None:
        assert self.clients is not None
        clients = self.clients
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            return await asyncio.to_thread(lambda: read_stack_status(clients("cloudformation", region), stack))

    async def _refuse_if_stack_in_progress(self, request: DeployRequest) -> None:
        """No deploy starts on top of a running CloudFormation operation (another server's, or one that outlived
        a stopped cdk and this server's watch)."""
        assert request.region is not None
        try:
            status = await self._read_status(request.region, request.stack)
        except UNREADABLE:
            return  # unreadable here; the platform check reads AWS next and reports what fails
        if in_progress(status):
            raise DeployInProgressError(
                f"a deploy of {request.label} is already running: CloudFormation is working on its stack "
                f"{request.stack} ({status}); this request was refused, not queued: retry when the stack has settled "
                "(foundry.get_instance_status shows it)"
            )

    async def _check_platform(self, request: DeployRequest, paths: WorkPaths) -> PlatformCheck | None:
        """The platform check, when AWS can be read (always for a real deploy; a dry run may go without)."""
        if not self.clients or not request.region:
            return None
        return await check_assembly_platform(
            self.clients,
            region=request.region,
            environment=request.instance.environment,
            assembly=paths.assembly,
            instance_stack=request.stack,
            platform_assembly=request.platform_assembly,
        )

    async def _check_secrets(self, request: DeployRequest, paths: WorkPaths) -> list[SecretConflict]:
        """The instance's secrets whose names a secret outside its stack holds (foundry.deploy.secret_names)."""
        assert self.clients is not None and request.region is not None
        return await check_assembly_secrets(
            self.clients,
            region=request.region,
            stack=request.stack,
            assembly=paths.assembly,
        )

    # --- the steps of one deploy ---------------------------------------------------------------------------

    async def _run_locked(
        self, request: DeployRequest, paths: WorkPaths, progress: ProgressSink, held: HeldLock
    ) -> DeployResult:
        deadline = time.monotonic() + request.timeout_seconds
        paths.outputs_file.unlink(missing_ok=True)
        base = DeployResult(
            outcome="failed",
            environment=request.instance.environment,
            instance=request.instance.key.selector,
            hostname=request.instance.manifest.spec.hostname,
            stacks=[request.stack],
            work_dir=str(paths.root),
        )
        commands: list[list[str]] = []

        async def step(argv: list[str]) -> ProcessResult:
            commands.append(argv)

            async def on_line(line: str) -> None:
                await progress(line, parse_event_line(line))

            remaining = max(1.0, deadline - time.monotonic())
            return await self.runner.run(argv, timeout_seconds=remaining, on_line=on_line)

        if request.assembly is not None:
            # Synthesized beforehand (a rollout's one assembly): deployed as it is, never synthesized again.
            paths = dataclasses.replace(paths, assembly=request.assembly)
            log_tail: list[str] = []
        else:
            synth = await step(self.cdk.synth_stacks([request.stack], context=request.context(), output=paths.assembly))
            if not synth.ok:
                return self._failed(base, synth, commands, paths)
            log_tail = list(synth.lines[-LOG_TAIL_LINES:])
        base = _replace(
            base,
            synthesized_stacks=assembly_stacks(paths.assembly),
            platform=await self._check_platform(request, paths),
            commands=commands,
            log_tail=log_tail,
        )
        if request.dry_run:
            return await self._diff(request, paths, base, step)
        assert base.platform is not None
        if not base.platform.ready:
            return _platform_not_ready(base, base.platform, request.label)
        conflicts = await self._check_secrets(request, paths)
        if conflicts:
            return _secret_names_taken(base, conflicts, request)
        return await self._deploy(request, paths, base, step, held)

    async def _diff(self, request: DeployRequest, paths: WorkPaths, base: DeployResult, step: Step) -> DeployResult:
        """A dry run: what deploying the synthesized assembly would change, nothing deployed."""
        diff = await step(self.cdk.diff_assembly([request.stack], assembly=paths.assembly))
        if diff.timed_out:  # reported as the command's failure alone, without what synth and the check found
            return self._failed(_replace(base, synthesized_stacks=[], platform=None), diff, base.commands, paths)
        diff_text = "\n".join(diff.lines)
        if diff.exit_code != 0:
            diff_text = f"(cdk diff exited {diff.exit_code}; the deployed template could not be compared)\n{diff_text}"
        return _replace(base, outcome="synthesized", diff=diff_text, diff_exit_code=diff.exit_code)

    async def _deploy(
        self, request: DeployRequest, paths: WorkPaths, base: DeployResult, step: Step, held: HeldLock
    ) -> DeployResult:
        """Deploys the checked assembly; after a stop, reads (and if need be watches) what CloudFormation does."""
        argv = self.cdk.deploy_assembly(
            [request.stack], assembly=paths.assembly, outputs_file=paths.outputs_file, method=self.method
        )
        started_at = time.time()
        try:
            deploy = await step(argv)
        except BaseException:
            # The request was cancelled while cdk ran (the runner has stopped cdk). CloudFormation may go on:
            # the lock stays with a watch of the stack until it settles. Shielded: anyio re-raises at every await.
            with anyio.CancelScope(shield=True):
                await self._after_stop(request, paths, held, "cancelled")
            raise
        if deploy.timed_out:
            status, watching = await self._after_stop(request, paths, held, "timed_out")
            reason = stopped_reason(request.stack, status, watching, self.watch_limit_seconds)
            return _replace(
                self._failed(base, deploy, base.commands, paths),
                stack_status=status,
                locked_until_settled=watching,
                failure=Failure.of_command(reason),
            )
        if not deploy.ok:
            result = self._failed(base, deploy, base.commands, paths)
            if self.failure_lookup is not None and request.region:
                looked_up = await self.failure_lookup(request.stack, request.region, started_at)
                if looked_up is not None and (result.failure is None or result.failure.logical_id is None):
                    result = _replace(result, failure=looked_up)
            return result
        return _replace(
            base,
            outcome="deployed",
            outputs=read_outputs(paths.outputs_file),
            log_tail=list(deploy.lines[-LOG_TAIL_LINES:]),
        )

    async def _after_stop(
        self, request: DeployRequest, paths: WorkPaths, held: HeldLock, how: StopKind
    ) -> tuple[str | None, bool]:
        """Reads the stack CloudFormation may still be working on; if it is (or cannot be read), hands the lock to
        a background watch. Returns (status read, whether the lock is now held by a watch)."""
        assert request.region is not None
        region, stack = request.region, request.stack
        readable = True
        try:
            status = await self._read_status(region, stack)
        except UNREADABLE:
            status, readable = None, False
        interruption = Interruption(stack=stack, how=how, at=now(), status_when_stopped=status)
        write_interruption(paths.interruption_file, interruption)
        if readable and not in_progress(status):
            return status, False
        held.describe(watch_reason(interruption, status if readable else "unreadable"))
        held.handed_over = True
        watch = watch_until_settled(
            held,
            interruption,
            lambda: self._read_status(region, stack),
            paths.interruption_file,
            poll_seconds=self.watch_poll_seconds,
            limit_seconds=self.watch_limit_seconds,
        )
        self.watches[held.key] = asyncio.get_running_loop().create_task(watch, name=f"watch {stack}")
        return status, True

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
            outputs=read_outputs(paths.outputs_file),
            commands=commands,
            log_tail=list(result.lines[-LOG_TAIL_LINES:]),
        )


def _platform_not_ready(base: DeployResult, platform: PlatformCheck, label: str) -> DeployResult:
    """The deploy refused before anything was deployed: the failure names the platform stack and why."""
    return _replace(
        base,
        outcome="platform_not_ready",
        failure=Failure(
            stack=platform.stack,
            logical_id=None,
            resource_type=None,
            status=platform.status,
            reason=refusal(platform, label),
        ),
    )


def _secret_names_taken(base: DeployResult, conflicts: list[SecretConflict], request: DeployRequest) -> DeployResult:
    """The deploy refused before anything was deployed: the failure names the first secret and lists them all."""
    return _replace(
        base,
        failure=Failure(
            stack=request.stack,
            logical_id=conflicts[0].logical_id,
            resource_type=SECRET_TYPE,
            status=None,
            reason=f"the deploy of {request.label} was refused (nothing was deployed): "
            + "; ".join(c.problem for c in conflicts),
        ),
    )


def _replace(result: DeployResult, **changes: Any) -> DeployResult:
    return dataclasses.replace(result, **changes)
