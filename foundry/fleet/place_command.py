"""`python -m foundry place`: give every new instance an ALB slot, free the slots of removed ones, or (--check)
only report what would change, so that CI fails on an instance nobody placed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from foundry.files.atomic import write_atomically
from foundry.fleet import placement
from foundry.fleet.model import Fleet


def cmd_place(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    agents_dir: Path = args.agents_dir
    settings = fleet.tree.platform.model.spec.environments
    environments = sorted({args.environment} if args.environment else set(fleet.tree.environments))
    changes = []
    files: dict[Path, bytes] = {}
    for env in environments:
        existing = placement.load_placement(agents_dir, env)
        wanted = [i.key.selector for i in fleet.instances if i.environment == env]
        per_shard = settings[env].load_balancer.instances_per_shard
        placed = placement.assign(existing, wanted, per_shard)
        added = sorted(set(placed) - set(existing))
        removed = sorted(set(existing) - set(placed))
        path = placement.placement_path(agents_dir, env)
        if added or removed or (placed and not path.exists()):
            files[path] = placement.render(env, placed)
        changes.append(
            {
                "environment": env,
                "file": str(path),
                "added": [{"instance": n, "shard": placed[n].shard, "priority": placed[n].priority} for n in added],
                "removed": removed,
                "shards": placement.shards_in_use(placed),
            }
        )
    if not args.check:
        write_atomically(files)
    return {"ok": not (args.check and files), "check": bool(args.check), "environments": changes}


def print_place(result: dict[str, Any]) -> None:
    verb = "would place" if result["check"] else "placed"
    for env in result["environments"]:
        for row in env["added"]:
            print(f"{verb} {env['environment']}/{row['instance']} on shard {row['shard']} priority {row['priority']}")
        for name in env["removed"]:
            print(f"{'would free' if result['check'] else 'freed'} the slot of {env['environment']}/{name}")
    if not result["ok"]:
        print("placement is out of date: run `python -m foundry place` and commit agents/placement/")
    elif not any(env["added"] or env["removed"] for env in result["environments"]):
        print("placement is up to date")
