"""The one cloud assembly a rollout deploys: the set it was given (`--assembly DIR`), or the one it synthesized once,
before its canary, into its own folder; recorded in the rollout's state with its digest and the agents tree's git
revision, and checked again before a resumed run deploys anything from it.

No deploy of a rollout synthesizes: every `cdk deploy` runs with `--app <assembly> --exclusively`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessRunner
from foundry.plan.git_revision import GitError, tree_revision
from foundry.rollout.scheduler import Rollout
from foundry.synth.assembly_set import AssemblySet, AssemblySetError, open_assembly_set
from foundry.synth.synthesize import SynthError, SynthRequest, synthesize

ASSEMBLIES_SUBDIR = "rollout-assemblies"


class RolloutAssemblyError(Exception):
    """The rollout's assembly cannot be used (missing, altered, lacking a stack, failed to synthesize)."""


def own_assembly_dir(repository: Path, environment: str, change_id: str) -> Path:
    """Where a rollout started without `--assembly` synthesizes its change: `build/rollout-assemblies/` of the agents
    tree's repository (git-ignored), one folder a change, removed once it is not needed
    (`foundry.rollout.assembly_pruning`). Its digest is in the shared rollout state; a resume on another machine is
    given the same assembly with `--assembly` (the CI artifact)."""
    return repository / "build" / ASSEMBLIES_SUBDIR / f"{environment}-{change_id}"


def given_assembly(path: Path) -> AssemblySet:
    """`--assembly DIR`, its digests checked against its index."""
    try:
        return open_assembly_set(path.resolve())
    except AssemblySetError as exc:
        raise RolloutAssemblyError(f"--assembly: {exc}") from exc


def synthesize_change(
    *,
    out: Path,
    agents_dir: Path,
    environment: str,
    selectors: Collection[str],
    instance_stacks: Collection[str],
    runtime_image: str | None,
    cdk: CdkCli,
    runner: ProcessRunner,
) -> AssemblySet:
    """One `cdk synth` of the environment's platform stack and the instances the rollout deploys, into `out`."""
    request = SynthRequest(
        out=out,
        agents_dir=agents_dir,
        environment=environment,
        instances=tuple(sorted(selectors)),
        runtime_image=runtime_image,
        jobs=1,
    )
    try:
        return asyncio.run(synthesize(request, cdk, runner, instance_stacks=instance_stacks)).assemblies
    except SynthError as exc:
        raise RolloutAssemblyError(
            f"the rollout could not synthesize its change (nothing was deployed): {exc}"
        ) from exc


def record(rollout: Rollout, assemblies: AssemblySet, agents_dir: Path, *, synthesized: bool) -> None:
    """Writes the assembly, its digest, whether the rollout synthesized it (and may remove it once complete) and the
    agents tree's revision into the rollout's state."""
    rollout.assembly = str(assemblies.root)
    rollout.assembly_synthesized = synthesized
    rollout.assembly_digest = assemblies.digest
    try:
        rollout.git_revision = tree_revision(agents_dir)
    except GitError as exc:
        rollout.git_revision = None
        rollout.notes.append(f"the agents tree's git revision is not recorded: {exc}")


def recorded_assembly(rollout: Rollout) -> AssemblySet:
    """The assembly a resumed rollout must deploy from, exactly as it was when the rollout started."""
    assert rollout.assembly is not None
    path = Path(rollout.assembly)
    restart = (
        "a resumed rollout deploys only the assembly it started with; restore it, or start the rollout over with "
        "--abandon (which synthesizes or takes an assembly again)"
    )
    try:
        found = open_assembly_set(path)
    except AssemblySetError as exc:
        if not path.exists():
            raise RolloutAssemblyError(
                f"the cloud assembly this rollout of {rollout.environment} started with is missing: {path} "
                f"(digest {rollout.assembly_digest}); {restart}"
            ) from exc
        raise RolloutAssemblyError(f"{exc}; {restart}") from exc
    if found.digest != rollout.assembly_digest:
        raise RolloutAssemblyError(
            f"the cloud assembly {path} was altered since this rollout of {rollout.environment} started: its digest "
            f"is {found.digest}, the rollout recorded {rollout.assembly_digest}; {restart}"
        )
    return found
