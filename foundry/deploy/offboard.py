"""Offboarding one instance: export its state table (threads and usage ledger) to the environment's retained
exports bucket, then delete its stack, then (when it has a key of its own) schedule the key's deletion.

The export is DynamoDB's own `ExportTableToPointInTime` into the platform stack's bucket (its name is the stack
output `OffboardingBucketName`): it reads the table, not the instance, so a paused instance (no task) offboards
like a running one, and it does not consume the table's read capacity. It needs point-in-time recovery: a table
without it (an internal dev environment's default) has it turned on for the export and off again, as the report
says.

Nothing half-done: the stack is deleted only after the export has COMPLETED and its files are in the bucket; any
failure before that leaves the stack exactly as it was and says why. The instance's deploy lock is held throughout,
as a deploy holds it, so a rollout or an MCP deploy of the same instance is refused meanwhile (and an offboarding
is refused while they hold it).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import ClientFactory
from foundry.aws.cloudformation import (
    describe_stack,
    first_failure_since,
    in_progress,
    read_deployed_template,
    read_stack_status,
    stack_outputs,
)
from foundry.deploy.locks import InstanceLocks, LockTarget
from foundry.manifests.naming import platform_stack_name

PLATFORM_BUCKET_OUTPUT = "OffboardingBucketName"
"""constructs/af_platform_contract.py's OFFBOARDING_BUCKET_OUTPUT (a test ties the two)."""
TABLE_TYPE = "AWS::DynamoDB::Table"
KEY_TYPE = "AWS::KMS::Key"
DEFAULT_KEY_PENDING_DAYS = 30
EXPORT_FORMAT = "DYNAMODB_JSON"


class OffboardError(RuntimeError):
    """Offboarding stopped; the message says where, why, and what was (or was not) changed."""


@dataclass(frozen=True)
class OffboardTarget:
    environment: str
    instance: str
    """ORG/DOMAIN/INSTANCE."""
    stack_name: str
    region: str


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str
    retained: bool
    """Its DeletionPolicy is Retain: deleting the stack leaves it in the account."""
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableExport:
    table: str
    export_arn: str
    bucket: str
    prefix: str
    item_count: int
    files: int
    bytes: int
    enabled_point_in_time_recovery: bool
    """The table had no point-in-time recovery, which the export needs: offboarding turned it on for the export
    (and off again once it completed)."""

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/"


@dataclass(frozen=True)
class KeyDeletion:
    key_id: str
    deletion_date: str
    """ISO 8601: from then on the retained table, logs and secret versions encrypted with the key are unreadable."""
    pending_window_days: int


@dataclass(frozen=True)
class OffboardReport:
    environment: str
    instance: str
    stack: str
    export: TableExport
    deleted: list[StackResource]
    kept: list[StackResource]
    key_deletions: list[KeyDeletion]

    def as_dict(self) -> dict[str, Any]:
        def resource(r: StackResource) -> dict[str, str]:
            return {"logical_id": r.logical_id, "type": r.resource_type, "physical_id": r.physical_id}

        return {
            "environment": self.environment,
            "instance": self.instance,
            "stack": self.stack,
            "stack_deleted": True,
            "export": {**asdict(self.export), "location": self.export.location},
            "deleted": [resource(r) for r in self.deleted],
            "kept": [resource(r) for r in self.kept],
            "key_deletions": [asdict(k) for k in self.key_deletions],
        }


def export_prefix(target: OffboardTarget, now: datetime.datetime) -> str:
    """'dev/acme/retail/dev/20261203T053000Z': one folder per instance, one per offboarding (never overwritten)."""
    return f"{target.environment}/{target.instance}/{now.strftime('%Y%m%dT%H%M%SZ')}"


class Offboarder:
    """`poll_seconds` and the timeouts bound the waits for the export and the stack deletion; `sleep` and `now`
    are the clock (tests pass a fast one)."""

    def __init__(
        self,
        *,
        clients: ClientFactory,
        locks: InstanceLocks,
        poll_seconds: float = 10.0,
        export_timeout_seconds: float = 4 * 3600,
        delete_timeout_seconds: float = 3600,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.clients, self.locks = clients, locks
        self.poll_seconds = poll_seconds
        self.export_timeout_seconds, self.delete_timeout_seconds = export_timeout_seconds, delete_timeout_seconds
        self.sleep, self.now = sleep, now

    def offboard(self, target: OffboardTarget) -> OffboardReport:
        """Export, delete, schedule the key's deletion; OffboardError (or DeployRefusedError: the lock is held)
        before anything is deleted leaves the stack as it was."""
        cloudformation = self.clients("cloudformation", target.region)
        stack = self._aws(f"reading stack {target.stack_name}", describe_stack, cloudformation, target.stack_name)
        if stack is None:
            raise OffboardError(
                f"instance {target.instance} has no stack {target.stack_name} in {target.region}: nothing to offboard"
            )
        bucket = self.export_bucket(target.environment, target.region)
        label = f"{target.environment}/{target.instance}"
        held = self.locks.acquire(LockTarget(target.environment, target.instance, target.region), label)
        try:
            held.describe(f"offboarding {label}: exporting its data")
            status = self._aws("reading the stack", read_stack_status, cloudformation, target.stack_name)
            if status is None:
                raise OffboardError(f"stack {target.stack_name} was deleted meanwhile: nothing was exported")
            if in_progress(status):
                raise OffboardError(
                    f"stack {target.stack_name} is {status}: CloudFormation is working on it; offboard it when that "
                    "has finished (nothing was exported or deleted)"
                )
            resources = self.resources(cloudformation, target.stack_name)
            tables = [r for r in resources if r.resource_type == TABLE_TYPE]
            if len(tables) != 1:
                raise OffboardError(
                    f"stack {target.stack_name} holds {len(tables)} DynamoDB tables, not the one state table an "
                    "instance stack has: nothing was exported or deleted"
                )
            export = self.export_table(target, tables[0].physical_id, bucket)
            held.describe(f"offboarding {label}: deleting stack {target.stack_name} (exported to {export.location})")
            if held.lease.lost:
                raise OffboardError(
                    f"the deploy lock of {label} was lost during the export (its lease expired or was taken over): "
                    f"stack {target.stack_name} was not deleted; its data was exported to {export.location}"
                )
            self.delete_stack(cloudformation, target, export)
            try:
                keys = [self.schedule_key_deletion(target.region, r) for r in resources if r.resource_type == KEY_TYPE]
            except OffboardError as exc:
                raise OffboardError(
                    f"stack {target.stack_name} was deleted and its data exported to {export.location}, but {exc}; "
                    "schedule the key's deletion with `aws kms schedule-key-deletion`"
                ) from exc
        finally:
            held.release()
        return OffboardReport(
            environment=target.environment,
            instance=target.instance,
            stack=target.stack_name,
            export=export,
            deleted=[r for r in resources if not r.retained],
            kept=[r for r in resources if r.retained],
            key_deletions=[k for k in keys if k is not None],
        )

    # --- the steps ---------------------------------------------------------------------------------------------

    def export_bucket(self, environment: str, region: str) -> str:
        """The exports bucket, from the environment's platform stack output."""
        name = platform_stack_name(environment)
        stack = self._aws(f"reading stack {name}", describe_stack, self.clients("cloudformation", region), name)
        outputs = stack_outputs(stack)
        if PLATFORM_BUCKET_OUTPUT not in outputs:
            raise OffboardError(
                f"the platform stack {name} has no output {PLATFORM_BUCKET_OUTPUT} (the bucket offboarding exports "
                "to): deploy the platform stack first (`cdk deploy " + name + " --exclusively`); nothing was exported "
                "or deleted"
            )
        return str(outputs[PLATFORM_BUCKET_OUTPUT])

    def resources(self, cloudformation: Any, stack_name: str) -> list[StackResource]:
        """The stack's resources, each with whether its DeletionPolicy keeps it, from the deployed template."""
        template = self._aws("reading the template", read_deployed_template, cloudformation, stack_name)
        declared = template.get("Resources", {})
        found: list[StackResource] = []
        paginator = cloudformation.get_paginator("list_stack_resources")
        pages = self._aws("listing the stack's resources", lambda: list(paginator.paginate(StackName=stack_name)))
        for page in pages:
            for summary in page["StackResourceSummaries"]:
                logical_id = summary["LogicalResourceId"]
                spec = declared.get(logical_id, {})
                found.append(
                    StackResource(
                        logical_id=logical_id,
                        resource_type=str(spec.get("Type") or summary.get("ResourceType", "")),
                        physical_id=str(summary.get("PhysicalResourceId", "")),
                        retained=spec.get("DeletionPolicy") == "Retain",
                        properties=spec.get("Properties", {}),
                    )
                )
        return sorted(found, key=lambda r: (r.resource_type, r.logical_id))

    def export_table(self, target: OffboardTarget, table_name: str, bucket: str) -> TableExport:
        dynamodb = self.clients("dynamodb", target.region)
        table_arn = self._aws("describing the table", dynamodb.describe_table, TableName=table_name)["Table"][
            "TableArn"
        ]
        enabled = self._ensure_point_in_time_recovery(dynamodb, table_name)
        prefix = export_prefix(target, self.now())
        where = f"s3://{bucket}/{prefix}/"
        described = self._aws(
            f"starting the export of table {table_name} to {where}",
            dynamodb.export_table_to_point_in_time,
            TableArn=table_arn,
            S3Bucket=bucket,
            S3Prefix=prefix,
            S3SseAlgorithm="AES256",
            ExportFormat=EXPORT_FORMAT,
        )["ExportDescription"]
        arn = described["ExportArn"]
        deadline = time.monotonic() + self.export_timeout_seconds
        while described["ExportStatus"] == "IN_PROGRESS":
            if time.monotonic() > deadline:
                raise OffboardError(
                    f"the export of table {table_name} to {where} ({arn}) did not finish within "
                    f"{self.export_timeout_seconds:.0f}s: nothing was deleted; run the same command again later"
                )
            self.sleep(self.poll_seconds)
            described = self._aws("reading the export", dynamodb.describe_export, ExportArn=arn)["ExportDescription"]
        if described["ExportStatus"] != "COMPLETED":
            why = f"{described.get('FailureCode') or 'FAILED'}: {described.get('FailureMessage') or 'no reason given'}"
            raise OffboardError(
                f"the export of table {table_name} to {where} failed ({why}); nothing was deleted: stack "
                f"{target.stack_name} is as it was"
            )
        if enabled:  # as it was: continuous backups of a retained table are billed by the GB-month
            self._aws(
                f"turning point-in-time recovery of {table_name} off again after the export",
                dynamodb.update_continuous_backups,
                TableName=table_name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
            )
        files, size = self._exported_files(target, bucket, prefix)
        if files == 0:
            raise OffboardError(
                f"the export of table {table_name} says COMPLETED but {where} holds no file; nothing was deleted"
            )
        return TableExport(
            table=table_name,
            export_arn=arn,
            bucket=bucket,
            prefix=prefix,
            item_count=int(described.get("ItemCount", 0)),
            files=files,
            bytes=size,
            enabled_point_in_time_recovery=enabled,
        )

    def _ensure_point_in_time_recovery(self, dynamodb: Any, table_name: str) -> bool:
        """Turns on point-in-time recovery (what an export reads from) if it is off; True if it was turned on."""

        def status() -> str:
            answer = self._aws(
                "reading the table's backups", dynamodb.describe_continuous_backups, TableName=table_name
            )
            description = answer["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
            return str(description.get("PointInTimeRecoveryStatus", "DISABLED"))

        if status() == "ENABLED":
            return False
        self._aws(
            f"turning on point-in-time recovery of {table_name} (an export needs it)",
            dynamodb.update_continuous_backups,
            TableName=table_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        deadline = time.monotonic() + self.export_timeout_seconds
        while status() != "ENABLED":
            if time.monotonic() > deadline:
                raise OffboardError(f"point-in-time recovery of {table_name} did not turn on; nothing was deleted")
            self.sleep(self.poll_seconds)
        return True

    def _exported_files(self, target: OffboardTarget, bucket: str, prefix: str) -> tuple[int, int]:
        s3 = self.clients("s3", target.region)
        paginator = s3.get_paginator("list_objects_v2")
        pages = self._aws(
            f"listing s3://{bucket}/{prefix}/", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix))
        )
        objects = [o for page in pages for o in page.get("Contents", [])]
        return len(objects), sum(int(o.get("Size", 0)) for o in objects)

    def delete_stack(self, cloudformation: Any, target: OffboardTarget, export: TableExport) -> None:
        started = time.time()
        self._aws(f"deleting stack {target.stack_name}", cloudformation.delete_stack, StackName=target.stack_name)
        deadline = time.monotonic() + self.delete_timeout_seconds
        while True:
            status = self._aws("reading the stack", read_stack_status, cloudformation, target.stack_name)
            if status in (None, "DELETE_COMPLETE"):
                return
            if not in_progress(status):  # DELETE_FAILED, or anything but a delete in progress
                failure = first_failure_since(cloudformation, target.stack_name, started)
                why = f"{failure.logical_id} ({failure.resource_type}): {failure.reason}" if failure else status
                raise OffboardError(
                    f"deleting stack {target.stack_name} failed ({why}); its data was exported to {export.location}. "
                    "Fix the cause and run the same command again (it exports again, then deletes)"
                )
            if time.monotonic() > deadline:
                raise OffboardError(
                    f"stack {target.stack_name} was still {status} after {self.delete_timeout_seconds:.0f}s; its data "
                    f"was exported to {export.location}; watch it in the CloudFormation console"
                )
            self.sleep(self.poll_seconds)

    def schedule_key_deletion(self, region: str, key: StackResource) -> KeyDeletion | None:
        """A retained instance key is scheduled for deletion after its pending window (a deleted stack that
        destroyed it itself needs nothing more)."""
        if not key.retained:
            return None
        window = int(key.properties.get("PendingWindowInDays", DEFAULT_KEY_PENDING_DAYS))
        kms = self.clients("kms", region)
        answer = self._aws(
            f"scheduling the deletion of key {key.physical_id}",
            kms.schedule_key_deletion,
            KeyId=key.physical_id,
            PendingWindowInDays=window,
        )
        when = answer.get("DeletionDate")
        text = when.isoformat() if isinstance(when, datetime.datetime) else str(when)
        return KeyDeletion(key_id=key.physical_id, deletion_date=text, pending_window_days=window)

    def _aws(self, doing: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise OffboardError(f"{doing}: {exc}") from exc
