"""Synthesizing the fleet (or part of it) into a set of cloud assemblies with the real CDK CLI.

Unsharded, one `cdk synth` writes `OUT/app/`. With `shards=N`, the platform stacks are synthesized once
(`-c shard=platform` into `OUT/platform/`) and the instance stacks in N processes (`-c shard=K/N` into
`OUT/shard-K/`, `foundry.fleet.shards` decides which stack goes where), at most `jobs` at once: each process holds
only its shard's stacks, so the largest one is bounded by the shard, not the fleet. The set is built in a sibling
folder and moved into place only when every process succeeded, so `OUT` never holds half a synth.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessResult, ProcessRunner
from foundry.fleet.shards import PLATFORM, shard_of
from foundry.synth.assembly_set import INDEX_FILE, AssemblySet, describe_assembly

UNSHARDED = "app"
SYNTH_TIMEOUT_SECONDS = 3600
ERROR_TAIL_LINES = 25


class SynthError(Exception):
    """A `cdk synth` failed; the message names the assembly and ends with what cdk printed."""


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
    request: SynthRequest, cdk: CdkCli, runner: ProcessRunner, *, instance_stacks: Collection[str]
) -> SynthResult:
    """Runs the synth processes (`instance_stacks`: the names of the instance stacks the request selects), writes
    the index, and moves the set to `request.out` (replacing what a previous synth left there). SynthError when a
    process fails (the others are stopped, nothing is moved)."""
    started = time.monotonic()
    out = request.out.resolve()
    _check_replaceable(out)
    staging = out.with_name(f".{out.name}.synth-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    jobs = request.jobs_to_run(instance_stacks)
    limit = asyncio.Semaphore(request.jobs)

    async def one(name: str, context: Mapping[str, str]) -> None:
        async with limit:
            result = await runner.run(
                cdk.synth_app(context=context, output=staging / name),
                timeout_seconds=request.timeout_seconds,
                on_line=_ignore,
            )
        if not result.ok:
            raise SynthError(_failure(name, result))

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


def _failure(name: str, result: ProcessResult) -> str:
    how = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
    tail = "\n".join(result.lines[-ERROR_TAIL_LINES:])
    return f"`cdk synth` of the assembly {name!r} {how}:\n{tail}"


async def _ignore(line: str) -> None:
    return None
