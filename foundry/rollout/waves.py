"""Which instances go in which wave: the canary first, then waves growing by the policy's factor. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from foundry.manifests.platform_settings import RolloutPolicy


def plan_waves(instances: Sequence[str], policy: RolloutPolicy) -> list[list[str]]:
    """Splits `instances` (ORG/DOMAIN/INSTANCE selectors) into waves, every instance in exactly one.

    Wave 1 is the canary: the policy's named instances that this rollout deploys, or else the first
    `canary.count` in sorted order (none when the count is 0 and nothing is named). Each later wave is
    `growth_factor` times the previous one (rounded up, at least one more instance), capped at `max_wave_size`.
    """
    ordered = sorted(set(instances))
    if not ordered:
        return []
    named = [i for i in policy.canary.instances if i in set(ordered)]
    canary = sorted(set(named)) if named else ordered[: policy.canary.count]
    rest = [i for i in ordered if i not in set(canary)]
    waves: list[list[str]] = [canary] if canary else []
    size = len(canary) or 1
    cap = policy.max_wave_size or len(ordered)
    first = not canary
    while rest:
        size = min(size if first else max(size + 1, math.ceil(size * policy.growth_factor)), cap)
        first = False
        waves.append(rest[:size])
        rest = rest[size:]
    return waves
