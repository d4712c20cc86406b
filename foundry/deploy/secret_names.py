"""Can CloudFormation create the instance's secrets? Checked before a deploy, which is refused otherwise.

An instance's secrets have names fixed by its manifests (`agentfoundry/<env>/<org>/<domain>/<instance>/<name>`).
CloudFormation cannot create a secret whose name is taken, and a failed create rolls the whole stack back. A name
is taken when its secret is not the stack's own:

* **scheduled for deletion**: Secrets Manager keeps a deleted secret for its recovery window (7 to 30 days), and
  its name with it. Offboarding an instance and onboarding it again within that window hits this, when the stack's
  deletion scheduled its secrets' deletion;
* **made outside the stack**: by hand, or by another tool.

So such a deploy is refused before `cdk deploy` runs, naming each secret and the way out, and nothing is half-done.
The verdict is a pure function over what was read; the reads are synchronous boto3 calls, run in a worker thread
with a time limit. Secrets that cannot be read are left to CloudFormation (the platform check has read AWS already).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import READ_TIMEOUT_SECONDS, ClientFactory
from foundry.aws.cloudformation import describe_stack, physical_ids
from foundry.cdk.cloud_assembly import stack_templates

SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 (a resource type, not a password)


@dataclass(frozen=True)
class FoundSecret:
    """A secret of one of the names, as Secrets Manager describes it."""

    arn: str
    deletion_date: datetime.datetime | None
    """When it is deleted for good; None: it is not scheduled for deletion."""


@dataclass(frozen=True)
class SecretConflict:
    logical_id: str
    name: str
    problem: str


# --- pure --------------------------------------------------------------------------------------------------


def template_secret_names(template: Mapping[str, Any]) -> dict[str, str]:
    """The secrets a template creates with a literal `Name`, by logical id."""
    found: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, Mapping) and resource.get("Type") == SECRET_TYPE:
            name = (resource.get("Properties") or {}).get("Name")
            if isinstance(name, str):
                found[str(logical_id)] = name
    return found


def secret_conflicts(
    secrets: Mapping[str, str],
    found: Mapping[str, FoundSecret],
    owned_arns: set[str],
    *,
    stack: str,
    region: str,
) -> list[SecretConflict]:
    """Each of the template's secrets (logical id -> name) whose name is taken by a secret the stack does not own."""
    conflicts: list[SecretConflict] = []
    for logical_id, name in sorted(secrets.items(), key=lambda item: item[1]):
        secret = found.get(name)
        if secret is None or secret.arn in owned_arns:
            continue
        if secret.deletion_date is not None:
            problem = (
                f"the secret {name} ({logical_id}) cannot be created: a secret of that name is scheduled for "
                f"deletion on {secret.deletion_date.date().isoformat()} (Secrets Manager keeps a deleted secret's "
                "name for its recovery window, as after an offboarding of this instance). Delete it for good first: "
                f"`aws secretsmanager delete-secret --region {region} --secret-id {name} "
                "--force-delete-without-recovery` (to keep its value, `aws secretsmanager restore-secret` and read "
                "it before)"
            )
        else:
            problem = (
                f"the secret {name} ({logical_id}) cannot be created: a secret of that name exists outside the "
                f"stack {stack} ({secret.arn}). Delete it (`aws secretsmanager delete-secret --region {region} "
                f"--secret-id {name} --force-delete-without-recovery`) or rename it, and set its value on the "
                "stack's secret once deployed"
            )
        conflicts.append(SecretConflict(logical_id=logical_id, name=name, problem=problem))
    return conflicts


# --- AWS (edges) -------------------------------------------------------------------------------------------


def read_secret(secretsmanager: Any, name: str) -> FoundSecret | None:
    try:
        described = secretsmanager.describe_secret(SecretId=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    deleted = described.get("DeletedDate")  # the end of its recovery window; absent unless it is scheduled
    return FoundSecret(
        arn=str(described["ARN"]), deletion_date=deleted if isinstance(deleted, datetime.datetime) else None
    )


def stack_secret_arns(cloudformation: Any, stack: str) -> set[str]:
    """The secrets the stack owns (their ARNs), none when it does not exist."""
    if describe_stack(cloudformation, stack) is None:
        return set()
    return set(physical_ids(cloudformation, stack, SECRET_TYPE))


def check_secrets(clients: ClientFactory, *, region: str, stack: str, template: Path) -> list[SecretConflict]:
    secrets = template_secret_names(json.loads(template.read_text(encoding="utf-8")))
    if not secrets:
        return []
    secretsmanager = clients("secretsmanager", region)
    found = {name: secret for name in secrets.values() if (secret := read_secret(secretsmanager, name)) is not None}
    if not found:
        return []
    owned = stack_secret_arns(clients("cloudformation", region), stack)
    return secret_conflicts(secrets, found, owned, stack=stack, region=region)


async def check_assembly_secrets(
    clients: ClientFactory, *, region: str, stack: str, assembly: Path
) -> list[SecretConflict]:
    """`check_secrets` of the stack's template in a synthesized assembly, in a worker thread with a time limit; what
    cannot be read is left to CloudFormation."""

    def check() -> list[SecretConflict]:
        return check_secrets(clients, region=region, stack=stack, template=stack_templates(assembly)[stack])

    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            return await asyncio.to_thread(check)
    except (ClientError, BotoCoreError, TimeoutError, OSError, ValueError, KeyError):
        return []
