"""What a deploy is asked (`DeployRequest`), where it works (`WorkPaths`), and what it answers (`DeployResult`,
which the Foundry MCP server returns as it is).

Each instance gets its own working folder under `build/foundry-deploys/` (cloud assembly, outputs file; its lock
lives in the shared deploy state, `foundry.deploy.locks`),
so deploys of different instances never share a `cdk.out`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from foundry.aws.cloudformation import Failure
from foundry.cdk.output import StackEvent
from foundry.deploy.platform_gate import PlatformCheck
from foundry.manifests import naming
from foundry.manifests.resolve import ResolvedInstance

Outcome = Literal["deployed", "failed", "timed_out", "synthesized", "platform_not_ready"]
DEFAULT_TIMEOUT_SECONDS = 3600
ProgressSink = Callable[[str, StackEvent | None], Awaitable[None]]
"""Called with every line cdk prints, and the stack event it holds (if it is one)."""


@dataclass(frozen=True)
class DeployRequest:
    instance: ResolvedInstance
    agents_dir: Path
    dry_run: bool = False
    runtime_image: str | None = None
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    region: str | None = None
    """The environment's region, for reading CloudFormation's events when a deploy fails."""
    assembly: Path | None = None
    """A cloud assembly synthesized beforehand that holds the instance's stack: deployed as it is, with no synth
    (a rollout deploys every instance from the one assembly it synthesized or was given)."""
    platform_assembly: Path | None = None
    """Where that assembly set keeps the platform stack, when not in `assembly` (a sharded set)."""

    @property
    def label(self) -> str:
        """How messages name the instance: `org/domain/instance in env`."""
        return f"{self.instance.key.selector} in {self.instance.environment}"

    @property
    def stack(self) -> str:
        """The instance's own stack: the only one cdk is given (with `--exclusively`, not its dependencies)."""
        return naming.instance_stack_name(self.instance.environment, self.instance.key)

    def context(self) -> dict[str, str]:
        """The CDK context that selects exactly this instance (and its image, when one is given)."""
        context = {
            "agentsDir": str(self.agents_dir),
            "environment": self.instance.environment,
            "instance": self.instance.key.selector,
        }
        if self.runtime_image:
            context["runtimeImage"] = self.runtime_image
        return context


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

    @property
    def interruption_file(self) -> Path:
        """Where the last stopped deploy and how CloudFormation ended it are recorded."""
        return self.root / "interrupted-deploy.json"


def work_paths(work_root: Path, environment: str, instance: ResolvedInstance) -> WorkPaths:
    key = instance.key
    root = work_root / environment / key.organization_id / key.domain_id / key.instance_id
    return WorkPaths(root=root, assembly=root / "cdk.out", outputs_file=root / "outputs.json")
