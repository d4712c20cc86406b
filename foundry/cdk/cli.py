"""The argv of every CDK CLI command the Foundry runs, built in one place.

Each method is one way the Foundry calls `cdk`, and its argv is exactly what that caller has always run (tests pin
several of them): the deployer synthesizes one instance's stacks, diffs and deploys that assembly (never a second
synth) with `--exclusively`; the change plan synthesizes the whole app; the local AWS bootstraps its account and
deploys an environment. Stacks are always named (never `--all`); context is passed as `--context key=value`, in the
order given.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DeployMethod = Literal["change-set", "direct"]
"""`cdk deploy --method`: `direct` where change sets are not available (moto)."""


def repo_cdk(repo_root: Path) -> Path:
    """The CDK CLI pinned by the repository's package.json (`./dev setup` installs it)."""
    return repo_root / "node_modules" / ".bin" / "cdk"


def context_args(context: Mapping[str, str]) -> list[str]:
    """`--context key=value` for each entry, in order."""
    return [arg for key, value in context.items() for arg in ("--context", f"{key}={value}")]


@dataclass(frozen=True)
class CdkCli:
    """The CDK CLI at `executable`, and the argv of each command run with it."""

    executable: str

    @classmethod
    def of_repo(cls, repo_root: Path) -> CdkCli:
        return cls(str(repo_cdk(repo_root)))

    @classmethod
    def installed(cls, tools_root: Path) -> CdkCli | None:
        """The repository's CLI, else one on PATH; None when neither exists."""
        local = repo_cdk(tools_root)
        found = str(local) if local.exists() else shutil.which("cdk")
        return cls(found) if found else None

    def synth_stacks(self, stacks: Sequence[str], *, context: Mapping[str, str], output: Path) -> list[str]:
        """Synthesizes the named stacks (and what they depend on) into the cloud assembly `output`."""
        return [
            self.executable,
            "synth",
            *stacks,
            *context_args(context),
            "--output",
            str(output),
            "--quiet",
            "--no-color",
        ]

    def synth_app(self, *, context: Mapping[str, str], output: Path) -> list[str]:
        """Synthesizes every stack of the app into `output` (the change plan's templates)."""
        return [self.executable, "synth", "--quiet", "--output", str(output), *context_args(context)]

    def diff_assembly(self, stacks: Sequence[str], *, assembly: Path) -> list[str]:
        """Diffs an assembly already synthesized (no second synth) against the deployed templates, these stacks
        only."""
        return [
            self.executable,
            "diff",
            *stacks,
            "--exclusively",
            "--app",
            str(assembly),
            "--method=template",
            "--no-color",
        ]

    def deploy_assembly(
        self, stacks: Sequence[str], *, assembly: Path, outputs_file: Path, method: DeployMethod
    ) -> list[str]:
        """Deploys an assembly already synthesized and checked (no second synth), and only the named stacks:
        `--exclusively` keeps cdk from deploying the platform stack an instance stack depends on."""
        return [
            self.executable,
            "deploy",
            *stacks,
            "--exclusively",
            "--app",
            str(assembly),
            "--require-approval",
            "never",
            "--outputs-file",
            str(outputs_file),
            f"--method={method}",
            "--progress",
            "events",
            "--no-color",
        ]

    def deploy_app(
        self,
        stacks: Sequence[str],
        *,
        context: Mapping[str, str],
        output: Path,
        outputs_file: Path,
        method: DeployMethod,
        concurrency: int,
    ) -> list[str]:
        """Synthesizes and deploys the named stacks together, dependencies first (the local AWS's environment)."""
        return [
            self.executable,
            "deploy",
            *stacks,
            f"--method={method}",
            "--require-approval",
            "never",
            "--concurrency",
            str(concurrency),
            "--output",
            str(output),
            "--outputs-file",
            str(outputs_file),
            *context_args(context),
            "--no-color",
        ]

    def bootstrap(self, *, account: str, region: str) -> list[str]:
        """Bootstraps one account and region (the CDK's staging bucket and roles)."""
        return [self.executable, "bootstrap", f"aws://{account}/{region}", "--no-color"]
