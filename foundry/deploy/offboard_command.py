"""`python -m foundry offboard ORG/DOMAIN/INSTANCE --environment ENV`: export an instance's data, delete its stack,
and say what was deleted and what was kept (docs/deploy.md, "Offboarding").

An instance still in the environment's manifest is refused unless `--force`: the next rollout would deploy it again
(remove it from the manifest first; `python -m foundry rollout --offboard-removed` then offboards it). The deploy
lock of the instance lives where rollouts keep theirs (FOUNDRY_STATE_URL or --state-url).

Exit codes: 0 offboarded, 1 refused or failed (the message says what was and was not changed), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from foundry.aws.clients import ClientFactory
from foundry.deploy.locks import DeployRefusedError, InstanceLocks
from foundry.deploy.offboard import Offboarder, OffboardError, OffboardReport, OffboardTarget
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.manifests.naming import instance_stack_name, parse_selector
from foundry.manifests.problems import ManifestError
from foundry.state.locations import STATE_URL_ENV
from foundry.state.store import StateStoreError, this_process
from foundry.state.stores import StateStores

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_offboard_parser(sub: Any) -> None:
    p = sub.add_parser(
        "offboard",
        help="export an instance's data to the environment's exports bucket, then delete its stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("instance", metavar="ORG/DOMAIN/INSTANCE")
    p.add_argument("--environment", required=True, metavar="ENV")
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument(
        "--force",
        action="store_true",
        help="offboard even though the instance is still in the environment's manifest (a rollout would deploy it "
        "again)",
    )
    p.add_argument("--state-url", metavar="URL", help=f"where deploy locks live (default: ${STATE_URL_ENV})")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")


def offboard_holder(selector: str) -> str:
    return f"offboarding of {selector} on {this_process()}"


def run_offboard(args: argparse.Namespace, clients: ClientFactory | None = None) -> int:
    if clients is None:
        from foundry.aws.clients import boto3_clients

        clients = boto3_clients
    try:
        key = parse_selector(args.instance)
    except ValueError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    try:
        fleet = load_fleet(args.agents_dir, environment=args.environment)
    except ManifestError as exc:
        return _fail(args, f"the manifests are invalid:\n{exc}", EXIT_FAILED)
    except ValueError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    settings = fleet.tree.platform.model.spec.environments[args.environment]
    listed = {i.key.selector for i in fleet.instances}
    if key.selector in listed and not args.force:
        return _fail(
            args,
            f"instance {key.selector} is still in the manifest of {args.environment}: a rollout would deploy it "
            "again. Remove it from the manifest first (then `python -m foundry rollout --offboard-removed` "
            "offboards it), or pass --force to offboard it anyway. Nothing was exported or deleted.",
            EXIT_FAILED,
        )
    try:
        stores = StateStores.configured(args.agents_dir, clients, url=args.state_url)
    except ValueError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    target = OffboardTarget(
        environment=args.environment,
        instance=key.selector,
        stack_name=instance_stack_name(args.environment, key),
        region=settings.region,
    )
    offboarder = Offboarder(clients=clients, locks=InstanceLocks(stores, holder=offboard_holder(key.selector)))
    try:
        report = offboarder.offboard(target)
    except (OffboardError, DeployRefusedError, StateStoreError) as exc:
        return _fail(args, str(exc), EXIT_FAILED)
    if args.json:
        print(json.dumps({"ok": True, **report.as_dict()}, indent=2))
    else:
        print_report(report, Console())
    return EXIT_OK


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


KEPT_WHY = {
    "AWS::DynamoDB::Table": "retained (DeletionPolicy Retain): its threads and usage stay in the account",
    "AWS::Logs::LogGroup": "retained (DeletionPolicy Retain): its logs expire with the environment's log retention",
    "AWS::KMS::Key": "retained, then scheduled for deletion (below)",
}


def kept_lines(report: OffboardReport) -> list[tuple[str, str, str]]:
    """(what, name, why) of everything that outlives the stack, the export first."""
    export = report.export
    pitr = ""
    if export.enabled_point_in_time_recovery:
        pitr = " (point-in-time recovery was turned on for the export, then off)"
    lines = [
        (
            "export",
            export.location,
            f"{export.item_count} items, {export.files} files, {export.bytes} bytes of table {export.table}{pitr}",
        )
    ]
    for resource in report.kept:
        why = KEPT_WHY.get(resource.resource_type, "retained (DeletionPolicy Retain)")
        lines.append((resource.resource_type, resource.physical_id, why))
    return lines


def print_report(report: OffboardReport, console: Console) -> None:
    console.print(f"[bold]Offboarded {report.environment}/{report.instance}[/bold]: stack {report.stack} deleted")
    console.print(f"Its data (threads and usage): {report.export.location}", soft_wrap=True)
    kept = Table(title="Kept", title_justify="left")
    for column in ("What", "Name", "Why"):
        kept.add_column(column, overflow="fold")
    for row in kept_lines(report):
        kept.add_row(*row)
    console.print(kept)
    deleted = Table(title="Deleted with the stack", title_justify="left")
    for column in ("Type", "Name"):
        deleted.add_column(column, overflow="fold")
    for resource in report.deleted:
        deleted.add_row(resource.resource_type, resource.physical_id or resource.logical_id)
    console.print(deleted)
    for key in report.key_deletions:
        console.print(
            f"Key {key.key_id} is scheduled for deletion in {key.pending_window_days} days: from {key.deletion_date} "
            "the retained table and logs it encrypted are unreadable (the export is not: it is "
            "encrypted by its bucket). Cancel with `aws kms cancel-key-deletion --key-id " + key.key_id + "`."
        )
    if not report.key_deletions:
        console.print(
            "The retained table and logs stay readable to the account (AWS-managed encryption); delete them by hand "
            "when the retention you owe the tenant has passed."
        )
