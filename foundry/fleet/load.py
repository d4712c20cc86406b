"""The one call every consumer uses: load `agents/`, resolve every instance, then select."""

from __future__ import annotations

from pathlib import Path

from foundry.files.repo import BUILD_DIR, REPO_ROOT
from foundry.fleet import cache as fleet_cache
from foundry.fleet.model import Fleet
from foundry.manifests.loader import read_tree
from foundry.manifests.naming import parse_selector
from foundry.manifests.problems import ManifestError, Problem, raise_if_any
from foundry.manifests.resolve import ResolvedInstance, resolve

DEFAULT_AGENTS_DIR = REPO_ROOT / "agents"
DEFAULT_CACHE_DIR = BUILD_DIR / "cache"


def load_fleet(
    agents_dir: Path = DEFAULT_AGENTS_DIR,
    *,
    environment: str | None = None,
    instance: str | None = None,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> Fleet:
    """Validates the whole tree (so cross-environment rules always hold), then keeps the selected instances.
    `instance` is 'ORG/DOMAIN/INSTANCE'. Raises ManifestError (bad files) or ValueError (bad selector).
    A tree already validated by the same code is read from `cache_dir` (None: always read the files)."""
    full = _load_all(agents_dir, cache_dir)
    tree, instances = full.tree, full.instances
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


def _load_all(agents_dir: Path, cache_dir: Path | None) -> Fleet:
    key = fleet_cache.cache_key(agents_dir) if cache_dir is not None and agents_dir.is_dir() else None
    cached = fleet_cache.read(cache_dir, key, agents_dir) if cache_dir is not None and key is not None else None
    if cached is not None:
        return cached
    tree, problems = read_tree(agents_dir)
    instances: list[ResolvedInstance] = []
    if tree is not None:
        try:
            instances = resolve(tree)
        except ManifestError as exc:
            problems = [*problems, *exc.problems]
    raise_if_any(problems)
    if tree is None:  # read_tree always reports why it has no tree
        raise ManifestError([Problem(file=str(agents_dir), message="the agents directory could not be read")])
    fleet = Fleet(tree=tree, instances=instances)
    if cache_dir is not None and key is not None:
        fleet_cache.write(cache_dir, key, fleet)
    return fleet
