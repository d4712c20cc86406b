"""What the change plan compares, for one revision: each instance's manifest, bundle file hashes and slot.

This file is also run, by its source text, against an OLDER revision's own `foundry` package (see
`foundry.plan.command`), so that a revision's bundles are built by that revision's code and its manifests are
validated by the schema they were written for. It therefore uses only the foundation's long-standing APIs
(load_fleet, bundle_files, content_hash), finds them in either layout of the package (subpackages, or the flat
`foundry/` of revisions before them), and treats placement as optional. Keep it self-contained.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _module(name: str, flat_name: str) -> ModuleType:
    """`foundry.<name>`, or `foundry.<flat_name>` in a revision from before the package had subpackages."""
    try:
        return importlib.import_module(f"foundry.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"foundry.{flat_name}")


def snapshot(agents_dir: Path) -> dict[str, Any]:
    archive = _module("bundles.archive", "bundle")
    bundle_files, content_hash = archive.bundle_files, archive.content_hash
    fleet = _module("fleet.load", "fleet").load_fleet(agents_dir)
    slots: dict[str, dict[str, list[int]]] = {}
    try:
        load_placement = _module("fleet.placement", "placement").load_placement
    except ImportError:  # a revision from before placement files existed
        pass
    else:
        for env in fleet.tree.environments:
            slots[env] = {sel: [s.shard, s.priority] for sel, s in load_placement(agents_dir, env).items()}
    instances = []
    for instance in fleet.instances:
        files = bundle_files(instance)
        env, selector = instance.environment, instance.key.selector
        instances.append(
            {
                "environment": env,
                "selector": selector,
                "stack_name": instance.manifest.spec.stack_name,
                "manifest": instance.manifest.model_dump(mode="json"),
                "bundle": {path: hashlib.sha256(data).hexdigest() for path, data in files.items()},
                "content_hash": content_hash(files),
                "slot": slots.get(env, {}).get(selector),
            }
        )
    return {
        "environments": {
            env: settings.model_dump(mode="json")
            for env, settings in fleet.tree.platform.model.spec.environments.items()
            if env in fleet.tree.environments
        },
        "instances": instances,
        # Prices (issue 24): a revision from before they were kept has none.
        **(
            {"pricing": pricing.model_dump(mode="json")}
            if (pricing := getattr(fleet.tree.platform.model.spec, "pricing", None)) is not None
            else {}
        ),
    }


def main(argv: list[str]) -> int:
    """Prints the snapshot as JSON; on invalid manifests prints {"error": ...} and exits 1."""
    manifest_error: type[Exception] = _module("manifests.problems", "problems").ManifestError
    try:
        result: dict[str, Any] = snapshot(Path(argv[0]))
    except (manifest_error, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
