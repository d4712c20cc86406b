"""FleetOperations against AWS: each instance deployed through `foundry.deploy.deployer`, exactly as the Foundry
MCP server deploys it (`cdk deploy <instance stack> --exclusively`: never the shared platform stack) but from the
rollout's one cloud assembly (`--app <assembly>`, never synthesized again), and health
as `foundry.aws.instance_status` reads it (the same verdict `foundry.get_instance_status` returns).

Health, as the gate reads it: none of the instance's CloudWatch alarms is in ALARM (one that is fails the instance
at once, named in the reason, in either health scope), the verdict is `healthy` (stack complete without rollback,
the ECS deployment completed, load-balancer targets healthy) and the instance's own `status` tool answers. Where the
instance cannot be reached by design (the local AWS runs no container), the probe is skipped with a reason the
report shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from foundry.aws.clients import ClientFactory
from foundry.aws.instance_status import InstanceProbe, InstanceStatus, alarm_reason, instance_status, read_stack
from foundry.cdk.output import StackEvent
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import DeployRefusedError, HeldLock
from foundry.deploy.request import DeployRequest
from foundry.manifests.naming import platform_stack_name
from foundry.manifests.resolve import ResolvedInstance
from foundry.rollout.scheduler import DeployOutcome, HealthReading
from foundry.synth.assembly_set import AssemblySet

HealthScope = Literal["full", "records"]
"""`full`: everything `foundry.get_instance_status` reads, plus the instance probe. `records`: for an emulated
AWS (moto) that keeps services as records and runs no container: the stack complete without rollback and its ECS
service ACTIVE; task counts, the ECS rollout state, target health and the probe cannot be read there."""
RECORDS_SKIPPED = (
    "records-only health (emulated AWS, no container runs): skipped task counts, ECS rollout state, "
    "target health and the instance probe"
)
ROLLED_BACK_STACK_STATUSES = ("UPDATE_ROLLBACK_COMPLETE",)
"""After a failed update CloudFormation put the previous template back: the instance runs the old version."""


def classify(status: InstanceStatus, *, probe_skipped: str | None, scope: HealthScope = "full") -> HealthReading:
    """The gate's reading of one InstanceStatus."""
    firing = status.alarms_firing
    if firing:  # whatever else is read: an alarm in ALARM fails the gate, and its name is the reason
        return HealthReading("unhealthy", "; ".join(alarm_reason(alarm) for alarm in firing))
    if status.alarms_error is not None:  # unread alarms are not quiet alarms: no healthy reading without them
        return HealthReading("settling", f"the instance's alarms could not be read: {status.alarms_error}")
    reasons = "; ".join(status.reasons + status.errors)
    if scope == "records" and status.stack is not None:
        stack = status.stack
        if stack.status.endswith("_COMPLETE") and "ROLLBACK" not in stack.status:
            if status.service is not None and status.service.status == "ACTIVE":
                return HealthReading(
                    "healthy",
                    f"stack {stack.name} {stack.status}, ECS service {status.service.name} ACTIVE; " + RECORDS_SKIPPED,
                )
            return HealthReading("settling", f"stack {stack.status}; the ECS service is not ACTIVE (yet)")
    if status.verdict == "healthy":
        if probe_skipped is not None:
            return HealthReading("healthy", f"{reasons}; instance probe skipped: {probe_skipped}")
        if status.instance_status is None:
            return HealthReading(
                "settling", f"{reasons}; but the instance's own status did not answer: {status.instance_status_error}"
            )
        return HealthReading("healthy", f"{reasons}; the instance's status tool answered")
    if status.verdict in ("in_progress", "degraded", "unknown"):
        return HealthReading("settling", reasons)
    if status.verdict == "failed" and (
        "circuit breaker" in reasons or (status.stack is not None and "ROLLBACK" in status.stack.status)
    ):
        return HealthReading("rolled_back", reasons)
    return HealthReading("unhealthy", reasons)


@dataclass
class AwsFleet:
    instances: Mapping[str, ResolvedInstance]
    deployer: Deployer
    agents_dir: Path
    region: str
    clients: ClientFactory
    probe: InstanceProbe | None
    probe_skipped: str | None = None
    """Why the instance probe is not used (shown in every health reading), when `probe` is None."""
    runtime_image: str | None = None
    timeout_seconds: int = 3600
    scope: HealthScope = "full"
    holder: str | None = None
    """How the rollout names itself in the instance locks it holds (`rollout <change id> of <env> on host`)."""
    held: dict[str, HeldLock] = field(default_factory=dict)
    """The instances this run holds: from its deploy until the run ends (`release_all`), so no other deployer
    changes an instance the rollout deployed while its wave bakes, nor one it is about to deploy."""
    assemblies: AssemblySet | None = None
    """The rollout's one assembly (or sharded set): each deploy takes its instance's stack from it, unsynthesized."""

    def release_all(self) -> None:
        for held in self.held.values():
            if not held.handed_over:  # a watch of a stopped deploy releases it when CloudFormation settles
                held.release()
        self.held.clear()

    async def deploy(self, instance: str) -> DeployOutcome:
        resolved = self.instances[instance]
        assembly = platform_assembly = None
        if self.assemblies is not None:
            assembly = self.assemblies.assembly_of(resolved.manifest.spec.stack_name)
            platform = platform_stack_name(resolved.environment)
            platform_assembly = self.assemblies.assembly_of(platform) if platform in self.assemblies.stacks else None
        request = DeployRequest(
            instance=resolved,
            agents_dir=self.agents_dir,
            runtime_image=self.runtime_image,
            timeout_seconds=self.timeout_seconds,
            region=self.region,
            assembly=assembly,
            platform_assembly=platform_assembly,
        )

        async def ignore(line: str, event: StackEvent | None) -> None:
            return None

        try:
            held = self.held.get(instance)
            if held is None or held.released:
                target = self.deployer.lock_target(resolved, self.region)
                held = await asyncio.to_thread(self.deployer.locks.acquire, target, request.label, holder=self.holder)
                self.held[instance] = held
            result = await self.deployer.run(request, ignore, held=held)
        except DeployRefusedError as exc:  # another deployer holds it: the rollout halts saying who
            return DeployOutcome(ok=False, reason=str(exc))
        if result.outcome == "deployed":
            return DeployOutcome(ok=True)
        failure = result.failure
        reason = failure.reason if failure else f"cdk deploy ended {result.outcome}"
        if failure and failure.logical_id:
            reason = f"{failure.logical_id} ({failure.resource_type}) {failure.status}: {failure.reason}"
        rolled_back = await self._rolled_back(resolved)
        if rolled_back:
            reason = f"{reason}; CloudFormation rolled the stack back ({rolled_back}): the previous version runs"
        return DeployOutcome(ok=False, rolled_back=bool(rolled_back), reason=reason)

    async def _rolled_back(self, resolved: ResolvedInstance) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        def read() -> str | None:
            try:
                stack = read_stack(self.clients("cloudformation", self.region), resolved.manifest.spec.stack_name)
            except (ClientError, BotoCoreError):
                return None
            return stack.status if stack and stack.status in ROLLED_BACK_STACK_STATUSES else None

        return await asyncio.to_thread(read)

    async def health(self, instance: str) -> HealthReading:
        status = await instance_status(
            self.instances[instance], region=self.region, clients=self.clients, probe=self.probe
        )
        return classify(status, probe_skipped=self.probe_skipped if self.probe is None else None, scope=self.scope)
