"""Which ALB shard serves an instance, and at which listener-rule priority.

An ALB holds at most 100 target groups (and 100 listener rules), so an environment with more instances needs
several load balancers ("shards"). Moving an instance to another shard or priority replaces its listener rule and
its DNS alias, which is downtime, so placement is kept in a reviewed file per environment
(`agents/placement/<env>.yaml`) and only ever grows: `assign` places new instances into free slots and never
moves an instance that already has one. Removing an instance frees its slot and moves nobody.

`assign`, `check` and `render` are pure; `load_placement` is the only function here that reads a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, StringConstraints

from foundry.manifests.loader import load_document
from foundry.manifests.problems import ManifestError, Problem, raise_if_any
from foundry.manifests.schema import DNS_LABEL_PATTERN, DnsId, Strict

PLACEMENT_DIR = "placement"
MAX_INSTANCES_PER_SHARD = 100
"""The hard AWS quota: 100 target groups per ALB (and 100 listener rules by default)."""
MAX_PRIORITY = 50_000
"""The highest listener-rule priority AWS accepts."""

_LABEL = DNS_LABEL_PATTERN.strip("^$")
Selector = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}/{_LABEL}/{_LABEL}$")]


@dataclass(frozen=True, order=True)
class Slot:
    """Where one instance lives: its ALB shard (0, 1, ...) and its listener-rule priority on that shard."""

    shard: int
    priority: int


Placement = dict[str, Slot]
"""Instance selector ('org/domain/instance') -> slot."""


class PlacementEntry(Strict):
    instance: Selector
    shard: Annotated[int, Field(ge=0, le=999)]
    priority: Annotated[int, Field(ge=1, le=MAX_PRIORITY)]


class PlacementSpec(Strict):
    environment: DnsId
    slots: list[PlacementEntry] = Field(default_factory=list)


class PlacementFile(Strict):
    """`agents/placement/<env>.yaml`: written by `python -m foundry place`, reviewed like code."""

    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815 - the file's own key
    kind: Literal["Placement"]
    spec: PlacementSpec


def placement_path(agents_dir: Path, environment: str) -> Path:
    return agents_dir / PLACEMENT_DIR / f"{environment}.yaml"


def assign(existing: Mapping[str, Slot], instances: Iterable[str], per_shard: int) -> Placement:
    """Keeps the slot of every instance that has one and is still wanted; gives each new instance (in sorted
    order) the lowest shard with fewer than `per_shard` instances and that shard's lowest free priority.
    Slots of instances no longer wanted are dropped; nobody else moves."""
    if not 1 <= per_shard <= MAX_INSTANCES_PER_SHARD:
        raise ValueError(f"instances per shard must be 1..{MAX_INSTANCES_PER_SHARD}, not {per_shard}")
    wanted = sorted(set(instances))
    placed: Placement = {name: existing[name] for name in wanted if name in existing}
    counts = Counter(slot.shard for slot in placed.values())
    used: dict[int, set[int]] = {}
    for slot in placed.values():
        used.setdefault(slot.shard, set()).add(slot.priority)
    shard = 0
    for name in wanted:
        if name in placed:
            continue
        while counts[shard] >= per_shard:
            shard += 1
        taken = used.setdefault(shard, set())
        priority = next(p for p in range(1, MAX_PRIORITY + 1) if p not in taken)
        taken.add(priority)
        counts[shard] += 1
        placed[name] = Slot(shard=shard, priority=priority)
    return dict(sorted(placed.items()))


def check(placement: Mapping[str, Slot]) -> list[str]:
    """Why a placement cannot be deployed (empty if it can): two instances on one shard and priority, or a shard
    over the ALB quota."""
    reasons = []
    owners: dict[Slot, str] = {}
    for name, slot in sorted(placement.items()):
        if slot in owners:
            reasons.append(
                f"{name} and {owners[slot]} both have shard {slot.shard} priority {slot.priority}; "
                "give one of them a free priority"
            )
        owners.setdefault(slot, name)
    for shard, count in sorted(Counter(s.shard for s in placement.values()).items()):
        if count > MAX_INSTANCES_PER_SHARD:
            reasons.append(
                f"shard {shard} holds {count} instances; an ALB holds at most {MAX_INSTANCES_PER_SHARD} target groups"
            )
    return reasons


def shards_in_use(placement: Mapping[str, Slot]) -> list[int]:
    """The shards the platform must create: every shard holding an instance, and shard 0 always."""
    return sorted({0, *(slot.shard for slot in placement.values())})


def render(environment: str, placement: Mapping[str, Slot]) -> bytes:
    """The placement file's bytes: sorted by instance so that a new instance is a small, reviewable diff."""
    document = PlacementFile(
        apiVersion="agent-foundry/v1",
        kind="Placement",
        spec=PlacementSpec(
            environment=environment,
            slots=[
                PlacementEntry(instance=name, shard=slot.shard, priority=slot.priority)
                for name, slot in sorted(placement.items())
            ],
        ),
    )
    header = (
        "# ALB shard and listener-rule priority of every instance. Written by `python -m foundry place`;\n"
        "# review changes like code: an instance whose slot changes is moved (downtime).\n"
    )
    body = yaml.safe_dump(document.model_dump(mode="json"), sort_keys=False, default_flow_style=False)
    return (header + body).encode("utf-8")


def load_placement(agents_dir: Path, environment: str) -> Placement:
    """Reads and checks `agents/placement/<env>.yaml`; a missing file is an empty placement.
    Raises ManifestError naming the file, line and field of every problem."""
    path = placement_path(agents_dir, environment)
    if not path.exists():
        return {}
    relative = f"{PLACEMENT_DIR}/{environment}.yaml"
    loaded = load_document(agents_dir, relative, PlacementFile)
    if isinstance(loaded, list):
        raise ManifestError(loaded)
    problems: list[Problem] = []
    spec = loaded.model.spec
    if spec.environment != environment:
        problems.append(
            loaded.problem_at(
                ("spec", "environment"),
                f"found {spec.environment!r} but this file places the {environment!r} environment",
            )
        )
    placement: Placement = {}
    for index, entry in enumerate(spec.slots):
        if entry.instance in placement:
            problems.append(
                loaded.problem_at(
                    ("spec", "slots", index, "instance"),
                    f"{entry.instance} is placed twice; keep one slot",
                    entry=f"slot {index} ({entry.instance})",
                )
            )
            continue
        placement[entry.instance] = Slot(shard=entry.shard, priority=entry.priority)
    problems.extend(Problem(file=loaded.file, field="spec.slots", message=reason) for reason in check(placement))
    raise_if_any(problems)
    return placement


def require_placed(agents_dir: Path, environment: str, placement: Mapping[str, Slot], selectors: Iterable[str]) -> None:
    """Synth refuses an instance without a slot: guessing one here could collide with a slot given in another
    branch, and a GitOps pipeline must see the placement change in review."""
    missing = sorted(set(selectors) - set(placement))
    if missing:
        raise ManifestError(
            [
                Problem(
                    file=str(placement_path(agents_dir, environment)),
                    message=f"instance {name} of environment {environment!r} has no ALB slot; run "
                    f"`python -m foundry place --environment {environment}` and commit the file",
                )
                for name in missing
            ]
        )
