"""`python -m foundry`: check, render and bundle the manifests in `agents/`.

Exit codes: 0 success, 1 invalid input (every problem listed, nothing written), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from foundry.bundles.archive import build_bundle
from foundry.bundles.render import instance_yaml
from foundry.deploy.offboard_command import add_offboard_parser, run_offboard
from foundry.files.atomic import write_atomically
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.fleet.model import Fleet
from foundry.fleet.place_command import cmd_place, print_place
from foundry.manifests.json_schemas import write_schemas
from foundry.manifests.naming import bundle_file
from foundry.manifests.problems import ManifestError
from foundry.manifests.resolve import ResolvedInstance
from foundry.mcp.serve_cli import add_serve_parser, run_serve
from foundry.plan.command import add_plan_parser, run_plan
from foundry.rollout.command import add_rollout_parser, run_rollout
from foundry.synth.command import add_synth_parser, run_synth
from foundry.usage.command import add_usage_parser, run_usage

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _instance_summary(instance: ResolvedInstance) -> dict[str, Any]:
    spec = instance.manifest.spec
    return {
        "environment": instance.environment,
        "instance": instance.key.selector,
        "hostname": spec.hostname,
        "stack_name": spec.stack_name,
        "agents": [a.agent_id for a in spec.agents],
        "secrets": list(spec.secrets),
    }


def cmd_validate(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    return {"instances": [_instance_summary(i) for i in fleet.instances]}


def cmd_render(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    files = {out / i.environment / i.file_name: instance_yaml(i.manifest) for i in fleet.instances}
    write_atomically(files)
    return {"written": [str(p) for p in sorted(files)]}


def cmd_bundle(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    bundles = []
    files: dict[Path, bytes] = {}
    for instance in fleet.instances:
        bundle = build_bundle(instance)
        path = out / instance.environment / bundle_file(instance.key)
        files[path] = bundle.archive
        bundles.append(
            {
                "environment": instance.environment,
                "instance": instance.key.selector,
                "path": str(path),
                "content_hash": bundle.content_hash,
                "archive_sha256": bundle.archive_sha256,
            }
        )
    write_atomically(files)
    return {"bundles": bundles}


def _print_human(command: str, result: dict[str, Any]) -> None:
    if command == "validate":
        rows = result["instances"]
        for row in rows:
            print(f"ok  {row['environment']:<10} {row['instance']:<40} {row['hostname']}")
        print(f"{len(rows)} instance{'s' if len(rows) != 1 else ''} valid")
    elif command == "render":
        for path in result["written"]:
            print(f"wrote {path}")
    elif command == "place":
        print_place(result)
    elif command == "bundle":
        for row in result["bundles"]:
            print(f"wrote {row['path']}  {row['content_hash']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m foundry", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def selecting(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
        p.add_argument("--environment", metavar="ENV", help="only this environment")
        p.add_argument("--instance", metavar="ORG/DOMAIN/INSTANCE", help="only this instance")
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        return p

    selecting("validate", "check every manifest and agent spec; list the instances they resolve to")
    selecting("render", "write one instance manifest per instance to DIR/<env>/").add_argument(
        "--out", type=Path, required=True, metavar="DIR"
    )
    selecting("bundle", "write one runtime bundle per instance to DIR/<env>/").add_argument(
        "--out", type=Path, required=True, metavar="DIR"
    )
    add_plan_parser(sub)
    place = sub.add_parser(
        "place",
        help="give new instances an ALB shard and listener priority in agents/placement/<env>.yaml",
        description="give new instances an ALB shard and listener priority; never moves a placed instance",
    )
    place.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    place.add_argument("--environment", metavar="ENV", help="only this environment")
    place.add_argument("--check", action="store_true", help="write nothing; exit 1 if the placement is out of date")
    place.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    place.set_defaults(instance=None)
    schema = sub.add_parser("schema", help="write the JSON Schema of every manifest kind to DIR")
    schema.add_argument("--out", type=Path, default=DEFAULT_AGENTS_DIR / "schemas", metavar="DIR")
    add_serve_parser(sub)
    add_rollout_parser(sub)
    add_synth_parser(sub)
    add_usage_parser(sub)
    add_offboard_parser(sub)
    return parser


COMMANDS: dict[str, Callable[[Fleet, argparse.Namespace], dict[str, Any]]] = {
    "validate": cmd_validate,
    "render": cmd_render,
    "bundle": cmd_bundle,
    "place": cmd_place,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "schema":
        for path in write_schemas(args.out):
            print(f"wrote {path}")
        return EXIT_OK
    if args.command == "plan":
        return run_plan(args)
    if args.command == "rollout":
        return run_rollout(args)
    if args.command == "synth":
        return run_synth(args)
    if args.command == "usage":
        return run_usage(args)
    if args.command == "offboard":
        return run_offboard(args)
    try:
        fleet = load_fleet(args.agents_dir, environment=args.environment, instance=args.instance)
    except ManifestError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problems": [p.as_dict() for p in exc.problems]}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problems": [{"message": str(exc)}]}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = COMMANDS[args.command](fleet, args)
    if args.json:
        print(json.dumps({"ok": True, **result}, indent=2))
    else:
        _print_human(args.command, result)
    return EXIT_OK if result.get("ok", True) else EXIT_INVALID
