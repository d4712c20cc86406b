"""What a change plan is made of: the state of a fleet at one revision, and the plan that compares two of them.

Plain frozen data: `foundry.plan.changes` builds plans, `foundry.plan.render` shows them to people, `as_dict`
gives them to programs (`plan --json`, the rollout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ChangeKind = Literal["added", "changed", "removed", "unchanged"]
KINDS: tuple[ChangeKind, ...] = ("added", "changed", "removed", "unchanged")


@dataclass(frozen=True)
class InstanceState:
    """What the fast path compares: an instance's resolved manifest and the sha256 of every bundle file."""

    environment: str
    selector: str
    stack_name: str
    manifest_file: str
    manifest: Mapping[str, Any]
    bundle: Mapping[str, str]
    """Bundle archive path -> sha256 hex."""
    content_hash: str
    slot: tuple[int, int] | None = None
    """(ALB shard, listener-rule priority) from agents/placement/<env>.yaml, if placed."""


@dataclass(frozen=True)
class FleetState:
    instances: Mapping[tuple[str, str], InstanceState]
    """Keyed by (environment, 'org/domain/instance')."""
    environments: Mapping[str, Mapping[str, Any]]
    """Each environment's platform settings (agents/platform.yaml), as plain data."""
    manifest_files: Mapping[str, str]
    """Environment -> the environment manifest file that lists its instances."""
    pricing: Mapping[str, Any] | None = None
    """agents/platform.yaml `pricing`, as plain data (None: a revision from before prices were kept)."""


@dataclass(frozen=True)
class InstanceChange:
    environment: str
    instance: str
    stack_name: str
    kind: ChangeKind
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class CostChange:
    """An environment's monthly always-on compute cost (USD) at the base revision and at the head
    (foundry.plan.compute_cost)."""

    before: float
    after: float
    pricing_taken: str
    """The date the prices were recorded (agents/platform.yaml `pricing.taken`)."""

    @property
    def delta(self) -> float:
        return self.after - self.before

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "before": round(self.before, 2),
            "after": round(self.after, 2),
            "delta": round(self.delta, 2),
            "pricing_taken": self.pricing_taken,
        }


@dataclass(frozen=True)
class EnvironmentPlan:
    environment: str
    platform_stack: str
    platform_kind: ChangeKind
    platform_reasons: tuple[str, ...]
    instances: tuple[InstanceChange, ...]
    compute_cost: CostChange | None = None
    """The monthly always-on compute cost before and after the change."""

    @property
    def deploy_stacks(self) -> list[str]:
        """Stacks to deploy for this environment, platform first (instance stacks import its outputs)."""
        head = [self.platform_stack] if self.platform_kind in ("added", "changed") else []
        return head + [i.stack_name for i in self.instances if i.kind in ("added", "changed")]

    @property
    def removed_stacks(self) -> list[str]:
        stacks = [i.stack_name for i in self.instances if i.kind == "removed"]
        return stacks + ([self.platform_stack] if self.platform_kind == "removed" else [])

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for i in self.instances if i.kind == kind)


@dataclass(frozen=True)
class Plan:
    base: str
    head: str
    mode: Literal["fast", "templates"]
    environments: tuple[EnvironmentPlan, ...]
    cdk_code_changed: tuple[str, ...] = field(default=())
    """Changed files under CDK_CODE_PATHS; non-empty means the fast path could not rule out template changes."""

    @property
    def has_changes(self) -> bool:
        return any(e.deploy_stacks or e.removed_stacks for e in self.environments)

    @property
    def recommend_templates(self) -> bool:
        return self.mode == "fast" and bool(self.cdk_code_changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "mode": self.mode,
            "has_changes": self.has_changes,
            "cdk_code_changed": list(self.cdk_code_changed),
            "recommend_templates": self.recommend_templates,
            "environments": [
                {
                    "environment": e.environment,
                    "deploy_stacks": e.deploy_stacks,
                    "removed_stacks": e.removed_stacks,
                    "counts": {kind: e.count(kind) for kind in KINDS},
                    **({"monthly_compute_cost": e.compute_cost.as_dict()} if e.compute_cost else {}),
                    "platform": {
                        "stack": e.platform_stack,
                        "kind": e.platform_kind,
                        "reasons": list(e.platform_reasons),
                    },
                    "instances": [
                        {
                            "instance": i.instance,
                            "stack": i.stack_name,
                            "kind": i.kind,
                            "reasons": list(i.reasons),
                        }
                        for i in e.instances
                    ],
                }
                for e in self.environments
            ],
        }


# --- snapshot -> state --------------------------------------------------------------------------------------------


def fleet_state(snapshot: Mapping[str, Any], agents_label: str = "agents") -> FleetState:
    """From a `foundry.plan.snapshot` document. `agents_label` prefixes file names in reasons, so a reason
    reads the same for both revisions."""
    manifest_files = {env: f"{agents_label}/manifests/manifest.{env}.yaml" for env in snapshot["environments"]}
    instances = {}
    for item in snapshot["instances"]:
        env = item["environment"]
        slot = item.get("slot")
        instances[(env, item["selector"])] = InstanceState(
            environment=env,
            selector=item["selector"],
            stack_name=item["stack_name"],
            manifest_file=manifest_files.get(env, f"{agents_label}/manifests/manifest.{env}.yaml"),
            manifest=item["manifest"],
            bundle=item["bundle"],
            content_hash=item["content_hash"],
            slot=(int(slot[0]), int(slot[1])) if slot else None,
        )
    return FleetState(
        instances=instances,
        environments=snapshot["environments"],
        manifest_files=manifest_files,
        pricing=snapshot.get("pricing"),
    )


EMPTY_FLEET = FleetState(instances={}, environments={}, manifest_files={})
