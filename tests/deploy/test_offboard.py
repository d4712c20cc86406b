"""`python -m foundry offboard` against moto's server (a real AWS emulator on 127.0.0.1) with small hand-made stacks
standing in for an instance stack (a retained table, a retained key, a log group, a deletable parameter) and the
platform stack's exports-bucket output: what is refused before anything is touched, that a failed export deletes
nothing, and what a completed offboarding deletes, keeps and schedules. The real stacks deployed by the real CDK CLI
are test_offboard_local_aws.py's."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundry.cli import build_parser
from foundry.deploy.locks import InstanceLocks, LockTarget
from foundry.deploy.offboard import PLATFORM_BUCKET_OUTPUT
from foundry.deploy.offboard_command import run_offboard
from foundry.state.locations import parse_state_url
from foundry.state.stores import StateStores
from tests.conftest import AGENTS_DIR
from tests.mcp.foundry_mcp_local_aws import REGION, LocalAws, moto_server

GONE = "acme/retail/gone"
"""An instance the dev manifest does not define (it left the manifests)."""
GONE_STACK = "af-dev-acme-retail-gone"
LISTED = "acme/retail/dev"
BUCKET = "af-dev-offboarded-data"


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


@pytest.fixture
def aws(moto: LocalAws) -> LocalAws:
    moto.reset()
    return moto


def clients(aws: LocalAws) -> Any:
    return lambda service, region: aws.client(service, region)


def platform_stack(aws: LocalAws, *, bucket: str = BUCKET, create_bucket: bool = True) -> None:
    """The platform stack's output names the bucket (created, or not, to make the export fail)."""
    if create_bucket:
        aws.client("s3").create_bucket(Bucket=bucket)
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/test/platform-marker", "Type": "String", "Value": "x"},
            }
        },
        "Outputs": {PLATFORM_BUCKET_OUTPUT: {"Value": bucket}},
    }
    aws.client("cloudformation").create_stack(StackName="af-dev-platform", TemplateBody=json.dumps(template))


def instance_stack(aws: LocalAws, *, key: bool = False) -> str:
    """A stand-in instance stack; returns its table's name after writing a thread and a usage item into it."""
    resources: dict[str, Any] = {
        "StateTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            },
        },
        "Logs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain", "Properties": {"RetentionInDays": 7}},
        "Setting": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "/test/instance-setting", "Type": "String", "Value": "deleted with it"},
        },
    }
    if key:
        resources["Key"] = {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain",
            "Properties": {
                "EnableKeyRotation": True,
                "PendingWindowInDays": 7,
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}],
                },
            },
        }
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=GONE_STACK, TemplateBody=json.dumps({"Resources": resources}))
    table = cloudformation.describe_stack_resource(StackName=GONE_STACK, LogicalResourceId="StateTable")
    name = table["StackResourceDetail"]["PhysicalResourceId"]
    dynamodb = aws.client("dynamodb")
    dynamodb.put_item(TableName=name, Item={"pk": {"S": "thread#t1"}, "sk": {"S": "checkpoint#1"}, "v": {"S": "hi"}})
    dynamodb.put_item(
        TableName=name, Item={"pk": {"S": "usage#2026-12-03T05"}, "sk": {"S": "model#m"}, "requests": {"N": "3"}}
    )
    return str(name)


def offboard(aws: LocalAws, tmp_path: Path, *argv: str) -> int:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    common = ["--environment", "dev", "--agents-dir", str(AGENTS_DIR), "--state-url", state]
    return run_offboard(build_parser().parse_args(["offboard", *argv, *common]), clients=clients(aws))


def run(aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = offboard(aws, tmp_path, *argv, "--json")
    return code, json.loads(capsys.readouterr().out)


def stack_names(aws: LocalAws) -> set[str]:
    return {s["StackName"] for s in aws.client("cloudformation").describe_stacks()["Stacks"]}


def test_an_instance_with_no_stack_and_no_manifest_entry_is_unknown(aws, tmp_path, capsys) -> None:
    platform_stack(aws)
    code, answer = run(aws, tmp_path, capsys, GONE)
    assert code == 1 and not answer["ok"]
    assert f"has no stack {GONE_STACK}" in answer["error"] and "nothing to offboard" in answer["error"]


def test_an_instance_still_in_the_manifests_is_refused_without_force_and_nothing_is_touched(
    aws, tmp_path, capsys
) -> None:
    platform_stack(aws)
    code, answer = run(aws, tmp_path, capsys, LISTED)
    assert code == 1
    assert "still in the manifest of dev" in answer["error"] and "--force" in answer["error"]
    assert "Nothing was exported or deleted" in answer["error"]
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_bad_selector_is_a_usage_error(aws, tmp_path, capsys) -> None:
    code, answer = run(aws, tmp_path, capsys, "acme/retail")
    assert code == 2 and "ORG/DOMAIN/INSTANCE" in answer["error"]


def test_a_failed_export_deletes_nothing_and_says_why(aws, tmp_path, capsys) -> None:
    platform_stack(aws, create_bucket=False)  # the output names a bucket that does not exist
    table = instance_stack(aws)
    code, answer = run(aws, tmp_path, capsys, GONE)
    assert code == 1, answer
    assert f"the export of table {table} to s3://{BUCKET}/dev/{GONE}/" in answer["error"]
    assert (
        "S3NoSuchBucket" in answer["error"]
        and f"nothing was deleted: stack {GONE_STACK} is as it was" in (answer["error"])
    )
    assert GONE_STACK in stack_names(aws)
    status = aws.client("cloudformation").describe_stacks(StackName=GONE_STACK)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"


def test_a_platform_without_the_exports_bucket_output_is_refused_before_anything_happens(aws, tmp_path, capsys) -> None:
    instance_stack(aws)
    code, answer = run(aws, tmp_path, capsys, GONE)
    assert code == 1 and "has no output OffboardingBucketName" in answer["error"]
    assert GONE_STACK in stack_names(aws)


def test_offboarding_is_refused_while_a_rollout_holds_the_instance_s_lock(aws, tmp_path, capsys) -> None:
    platform_stack(aws)
    instance_stack(aws)
    stores = StateStores(parse_state_url(f"sqlite:///{tmp_path / 'state.db'}", tmp_path), clients(aws))
    held = InstanceLocks(stores, holder="rollout 1a2b3c of dev on ci (pid 7)").acquire(
        LockTarget("dev", GONE, REGION), f"dev/{GONE}"
    )
    try:
        code, answer = run(aws, tmp_path, capsys, GONE)
    finally:
        held.release()
    assert code == 1 and "held by rollout 1a2b3c of dev on ci (pid 7)" in answer["error"]
    assert GONE_STACK in stack_names(aws)
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def exported_items(aws: LocalAws, bucket: str, prefix: str) -> list[dict[str, Any]]:
    s3 = aws.client("s3")
    items = []
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        items += [json.loads(line)["Item"] for line in gzip.decompress(body).decode().splitlines() if line]
    return items


def test_offboarding_exports_the_table_deletes_the_stack_keeps_the_retained_and_schedules_the_key(
    aws, tmp_path, capsys
) -> None:
    platform_stack(aws)
    table = instance_stack(aws, key=True)
    code, answer = run(aws, tmp_path, capsys, GONE)
    assert code == 0, answer
    export = answer["export"]
    assert export["bucket"] == BUCKET and export["prefix"].startswith(f"dev/{GONE}/")
    assert export["table"] == table and export["enabled_point_in_time_recovery"] is True
    items = exported_items(aws, BUCKET, export["prefix"])
    assert sorted(i["pk"]["S"] for i in items) == ["thread#t1", "usage#2026-12-03T05"]
    assert GONE_STACK not in stack_names(aws) and "af-dev-platform" in stack_names(aws)
    assert table in aws.client("dynamodb").list_tables()["TableNames"]  # retained
    backups = aws.client("dynamodb").describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"  # as it was
    kept = {r["type"] for r in answer["kept"]}
    assert kept == {"AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::KMS::Key"}
    assert [r["type"] for r in answer["deleted"]] == ["AWS::SSM::Parameter"]
    [deletion] = answer["key_deletions"]
    assert deletion["pending_window_days"] == 7
    key = aws.client("kms").describe_key(KeyId=deletion["key_id"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"


def test_the_human_report_says_what_was_deleted_and_kept(aws, tmp_path, capsys) -> None:
    platform_stack(aws)
    instance_stack(aws)
    assert offboard(aws, tmp_path, GONE) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"Offboarded dev/{GONE}: stack {GONE_STACK} deleted" in text
    assert f"s3://{BUCKET}/dev/{GONE}/" in text and "AWS::SSM::Parameter" in text
    assert "AWS::DynamoDB::Table" in text and "retained" in text and "AWS-managed encryption" in text


def test_the_instance_stacks_of_an_environment_are_found_by_their_tags(aws) -> None:
    """What a rollout reads to find instances that left the manifests: other environments' stacks, the platform
    stack and untagged stacks are not instance stacks of dev."""
    from foundry.aws.cloudformation import instance_stacks

    def tagged(environment: str, org: str, domain: str, instance: str) -> list[dict[str, str]]:
        values = {"environment": environment, "organization": org, "domain": domain, "instance": instance}
        return [{"Key": f"agentfoundry:{k}", "Value": v} for k, v in values.items()]

    cloudformation = aws.client("cloudformation")
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    cloudformation.create_stack(StackName=GONE_STACK, TemplateBody=body, Tags=tagged("dev", "acme", "retail", "gone"))
    cloudformation.create_stack(
        StackName="af-prod-acme-retail-x", TemplateBody=body, Tags=tagged("prod", "acme", "retail", "x")
    )
    cloudformation.create_stack(
        StackName="af-dev-platform", TemplateBody=body, Tags=[{"Key": "agentfoundry:environment", "Value": "dev"}]
    )
    cloudformation.create_stack(StackName="unrelated", TemplateBody=body)
    assert instance_stacks(cloudformation, "dev") == {GONE: GONE_STACK}


def test_a_simulated_rollout_refuses_to_offboard(tmp_path, capsys) -> None:
    from foundry.rollout.command import run_rollout

    args = build_parser().parse_args(
        [
            "rollout",
            "--environment",
            "dev",
            "--agents-dir",
            str(AGENTS_DIR),
            "--simulate",
            "--offboard-removed",
            "--json",
        ]
    )
    assert run_rollout(args) == 2
    assert (
        "--offboard-removed deletes stacks; --simulate changes nothing" in json.loads(capsys.readouterr().out)["error"]
    )
