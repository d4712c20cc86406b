"""The one call every consumer uses: load `agents/`, resolve every instance, then select."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundry.loader import AgentsTree, load_tree
from foundry.naming import parse_selector
from foundry.problems import ManifestError, Problem
from foundry.resolve import ResolvedInstance, resolve

DEFAULT_AGENTS_DIR = Path(__file__).resolve().parent.parent / "agents"


@dataclass(frozen=True)
class Fleet:
    tree: AgentsTree
    instances: list[ResolvedInstance]
    """Sorted by (environment, organization, domain, instance)."""


def load_fleet(
    agents_dir: Path = DEFAULT_AGENTS_DIR,
    *,
    environment: str | None = None,
    instance: str | None = None,
) -> Fleet:
    """Validates the whole tree (so cross-environment rules always hold), then keeps the selected instances.
    `instance` is 'ORG/DOMAIN/INSTANCE'. Raises ManifestError (bad files) or ValueError (bad selector)."""
    tree = load_tree(agents_dir)
    instances = resolve(tree)
    if environment is not None:
        if environment not in tree.environments:
            raise ManifestError(
                [
                    Problem(
                        file=str(agents_dir / "manifests" / f"manifest.{environment}.yaml"),
                        message=f"unknown environment {environment!r}; known: {', '.join(sorted(tree.environments))}",
                    )
                ]
            )
        instances = [i for i in instances if i.environment == environment]
    if instance is not None:
        key = parse_selector(instance)
        instances = [i for i in instances if i.key == key]
        if not instances:
            where = f" in environment {environment!r}" if environment else ""
            raise ValueError(f"unknown instance {instance!r}{where}; `python -m foundry validate` lists the instances")
    return Fleet(tree=tree, instances=instances)
