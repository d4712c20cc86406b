"""Instances that left the manifests but whose stacks remain: a rollout reports them and leaves them, or, with
`--offboard-removed`, offboards each (foundry/deploy/offboard.py: export, then delete) once every wave is done."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory
from foundry.aws.cloudformation import instance_stacks
from foundry.deploy.locks import DeployRefusedError
from foundry.deploy.offboard import Offboarder, OffboardError, OffboardTarget
from foundry.state.store import StateStoreError


@dataclass
class RemovedInstances:
    environment: str
    region: str
    stacks: dict[str, str] = field(default_factory=dict)
    """ORG/DOMAIN/INSTANCE -> the stack still deployed."""
    unreadable: str | None = None
    """Why the stacks could not be listed, if they could not."""

    @classmethod
    def find(cls, clients: ClientFactory, environment: str, region: str, listed: Collection[str]) -> RemovedInstances:
        try:
            deployed = instance_stacks(clients("cloudformation", region), environment)
        except (ClientError, BotoCoreError) as exc:
            return cls(environment, region, unreadable=str(exc))
        return cls(environment, region, {s: n for s, n in deployed.items() if s not in listed})

    def left_note(self) -> str | None:
        """What a rollout without --offboard-removed says of them."""
        if self.unreadable is not None:
            return f"the environment's instance stacks could not be listed to find removed instances: {self.unreadable}"
        if not self.stacks:
            return None
        names = ", ".join(f"{s} ({n})" for s, n in self.stacks.items())
        return (
            f"instances no longer in the manifests still have stacks, left as they are: {names}; offboard them with "
            f"`python -m foundry offboard ORG/DOMAIN/INSTANCE --environment {self.environment}` or "
            "`rollout --offboard-removed` (each is exported, then deleted)"
        )

    def offboard(self, offboarder: Offboarder) -> tuple[list[str], bool]:
        """Offboards each, in sorted order (under the offboarder's own lock holder); (notes, all succeeded). One
        failure does not stop the others. Stacks that could not be listed are none: `left_note` reports that."""
        notes, ok = [], True
        for selector, stack in self.stacks.items():
            target = OffboardTarget(
                environment=self.environment, instance=selector, stack_name=stack, region=self.region
            )
            try:
                report = offboarder.offboard(target)
            except (OffboardError, DeployRefusedError, StateStoreError) as exc:
                notes.append(f"offboarding {selector} failed: {exc}")
                ok = False
                continue
            kept = ", ".join(sorted({r.resource_type for r in report.kept})) or "nothing"
            keys = "".join(f"; key {k.key_id} is deleted on {k.deletion_date}" for k in report.key_deletions)
            notes.append(
                f"offboarded {selector}: its data exported to {report.export.location} "
                f"({report.export.item_count} items), stack {stack} deleted, kept: {kept}{keys}"
            )
        return notes, ok
