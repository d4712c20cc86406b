"""Synthesizing the fleet (or part of it) into a set of cloud assemblies.

Unsharded, one `cdk synth` (the real CDK CLI) writes `OUT/app/`. With `shards=N`, the platform stacks are
synthesized once (`shard=platform` into `OUT/platform/`) and the instance stacks in N processes (`shard=K/N` into
`OUT/shard-K/`, `foundry.fleet.shards` decides which stack goes where), at most `jobs` at once: each process holds
only its shard's stacks, so the largest one is bounded by the shard, not the fleet. A shard's process is the app
itself (`foundry.cdk.app_synth`: cdk.json's command with the environment `cdk synth` would give it), not a CLI
waiting beside the app, so it costs the app alone. The set is built in a sibling folder and moved into place only
when every process succeeded, so `OUT` never holds half a synth.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from foundry.cdk.app_synth import CdkApp, CdkAppError, missing_context
from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessResult, ProcessRunner
from foundry.fleet.shards import PLATFORM, shard_of
from foundry.synth.assembly_set import INDEX_FILE, AssemblySet, describe_assembly

UNSHARDED = "app"
SYNTH_TIMEOUT_SECONDS = 3600
ERROR_TAIL_LINES = 25
APP_SYNTH_LABEL = "app-synth"
"""What `ProcessRunner.runs` counts a shard's own app process as (a `cdk synth` counts as `synth`)."""


class SynthError(Exception):
    """A synth process failed; the message names the assembly and ends with what it printed."""


@dataclass(frozen=True)
class SynthRequest:
    out: Path
    agents_dir: Path
    environment: str | None = None
    instances: tuple[str, ...] | None = None
    """Selectors of `environment` (may be empty: its platform stack only); None: every instance."""
    shards: int | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    runtime_image: str | None = None
    timeout_seconds: float = SYNTH_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.shards is not None and self.shards < 1:
            raise ValueError(f"--shards must be at least 1, not {self.shards}")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {self.jobs}")
        if self.instances is not None and self.environment is None:
            raise ValueError("--instances selects instances of one environment: give --environment ENV with it")

    def context(self) -> dict[str, str]:
        """The CDK context every process of this synth shares (`stacks.fleet_app.FleetSelection`)."""
        context = {"agentsDir": str(self.agents_dir.resolve())}
        if self.environment is not None:
            context["environment"] = self.environment
        if self.instances is not None:
            context["instances"] = ",".join(self.instances)
        if self.runtime_image is not None:
            context["runtimeImage"] = self.runtime_image
        return context

    def jobs_to_run(self, instance_stacks: Collection[str]) -> dict[str, dict[str, str]]:
        """Assembly name -> its context: one unsharded, else the platform and one per shard that holds at least one
        of `instance_stacks` (the CDK CLI refuses an app without stacks; an empty shard has no assembly)."""
        if self.shards is None:
            return {UNSHARDED: self.context()}
        used = sorted({shard_of(stack, self.shards) for stack in instance_stacks})
        jobs = {PLATFORM: {**self.context(), "shard": PLATFORM}}
        jobs |= {f"shard-{k}": {**self.context(), "shard": f"{k}/{self.shards}"} for k in used}
        return jobs


@dataclass(frozen=True)
class SynthResult:
    assemblies: AssemblySet
    index: Path | None
    seconds: float
    processes: int


async def synthesize(
    request: SynthRequest,
    cdk: CdkCli,
    runner: ProcessRunner,
    *,
    instance_stacks: Collection[str],
    app: CdkApp | None = None,
) -> SynthResult:
    """Runs the synth processes (`instance_stacks`: the names of the instance stacks the request selects), writes
    the index, and moves the set to `request.out` (replacing what a previous synth left there). SynthError when a
    process fails (the others are stopped, nothing is moved). A sharded synth runs `app` (default: cdk.json's in
    the runner's folder) directly; an unsharded one runs `cdk synth`."""
    started = time.monotonic()
    out = request.out.resolve()
    _check_replaceable(out)
    try:
        direct = (app or CdkApp.of_repo(runner.cwd)) if request.shards is not None else None
    except CdkAppError as exc:
        raise SynthError(f"the CDK app cannot be run for the shards: {exc}") from exc
    staging = out.with_name(f".{out.name}.synth-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    jobs = request.jobs_to_run(instance_stacks)
    limit = asyncio.Semaphore(request.jobs)

    async def one(name: str, context: Mapping[str, str]) -> None:
        output = staging / name
        async with limit:
            if direct is None:
                argv, extra_env, label = cdk.synth_app(context=context, output=output), None, None
            else:
                try:
                    command = direct.synth_command(context=context, output=output)
                except CdkAppError as exc:
                    raise SynthError(f"the assembly {name!r} cannot be synthesized: {exc}") from exc
                argv, extra_env, label = list(command.argv), dict(command.env), APP_SYNTH_LABEL
            result = await runner.run(
                argv,
                timeout_seconds=request.timeout_seconds,
                on_line=_ignore,
                extra_env=extra_env,
                label=label,
            )
        if not result.ok:
            raise SynthError(_failure(name, result))
        if direct is not None:
            _check_complete(name, output)

    try:
        try:
            async with asyncio.TaskGroup() as group:
                for name, context in jobs.items():
                    group.create_task(one(name, context))
        except* SynthError as failures:
            raise failures.exceptions[0] from None
        entries = {name: describe_assembly(staging, name) for name in jobs}
        staged = AssemblySet(root=staging, assemblies=entries, shards=request.shards, indexed=True)
        staged.write_index()
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = AssemblySet(root=out, assemblies=entries, shards=request.shards, indexed=True)
    return SynthResult(
        assemblies=result, index=out / INDEX_FILE, seconds=time.monotonic() - started, processes=len(jobs)
    )


def _check_replaceable(out: Path) -> None:
    """`out` may be missing, empty, a set a previous synth wrote, or a cloud assembly `cdk synth` wrote (`cdk.out`);
    anything else is not ours to delete."""
    if not out.exists():
        return
    ours = out.is_dir() and (
        not any(out.iterdir()) or (out / INDEX_FILE).is_file() or (out / "manifest.json").is_file()
    )
    if not ours:
        raise SynthError(
            f"{out} exists and is not a cloud assembly (no {INDEX_FILE}, no manifest.json): it is not replaced; "
            "choose an empty or new folder"
        )


def _check_complete(name: str, output: Path) -> None:
    """What the CLI checks after running the app: a readable manifest, and no context the app still needs (the
    CLI would look it up and run the app again; a shard cannot)."""
    try:
        missing = missing_context(output)
    except (OSError, ValueError) as exc:
        raise SynthError(f"the app wrote no readable cloud assembly for {name!r} in {output}: {exc}") from exc
    if missing:
        raise SynthError(
            f"the app needs context it was not given for the assembly {name!r}: {', '.join(missing)}; "
            "run `cdk synth` once so the CLI looks it up into cdk.context.json, then synthesize again"
        )


def _failure(name: str, result: ProcessResult) -> str:
    how = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
    tail = "\n".join(result.lines[-ERROR_TAIL_LINES:])
    return f"`{' '.join(result.argv[:2])}` of the assembly {name!r} {how}:\n{tail}"


async def _ignore(line: str) -> None:
    return None
