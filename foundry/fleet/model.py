"""The loaded fleet: the validated tree and its resolved instances.

Its own module so that the loader (`foundry.fleet.load`) and the cache (`foundry.fleet.cache`) both import it and
neither imports the other's type.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundry.manifests.loader import AgentsTree
from foundry.manifests.resolve import ResolvedInstance


@dataclass(frozen=True)
class Fleet:
    tree: AgentsTree
    instances: list[ResolvedInstance]
    """Sorted by (environment, organization, domain, instance)."""
