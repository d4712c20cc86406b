"""Offboarding for real: moto's server as the AWS, the dev environment deployed by the real CDK CLI with a KMS key per
instance (`encryption: per_instance_key`), then instances removed from the manifests: a rollout reports them and
leaves them, `python -m foundry offboard` (the CLI in a subprocess) exports one instance's table and deletes its
stack, and `rollout --offboard-removed` offboards the other removed one; the instance still in the manifests stays.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from foundry.cdk.process import tool_environment
from foundry.local.aws import LocalAws
from foundry.local.server import ServerState, aws_environment, using_aws_environment
from instance_contract.thread_state import DYNAMODB_PARTITION_KEY as PK
from instance_contract.thread_state import DYNAMODB_SORT_KEY as SK
from tests.deploy.git_repos import REPO_ROOT
from tests.foundry.manifest_edits import add_instance, edit, entries, env_manifest

TIMEOUT_S = 900
LEAVING = "acme/retail/dev"
ALSO_LEAVING = "acme/retail/qa"
STAYING = "default-org/default-domain/dev"
STACKS = {
    LEAVING: "af-dev-acme-retail-dev",
    ALSO_LEAVING: "af-dev-acme-retail-qa",
    STAYING: "af-dev-default-org-default-domain-dev",
}


def foundry(state: ServerState, agents: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The Foundry CLI as an operator runs it, against the local AWS, deploy locks in a SQLite file."""
    env = tool_environment(REPO_ROOT, aws_environment(state))
    env["FOUNDRY_STATE_URL"] = f"sqlite:///{tmp_path / 'deploy-state.db'}"
    return subprocess.run(
        [sys.executable, "-m", "foundry", *argv, "--agents-dir", str(agents)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def rollout(state: ServerState, agents: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """A rollout of a change that deploys nothing in dev (only removals): it reads no assembly and synthesizes
    nothing, and then deals with the removed instances."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"base": "a", "head": "b", "environments": [{"environment": "dev", "instances": []}]}))
    done = foundry(
        state, agents, tmp_path, "rollout", "--environment", "dev", "--plan", str(plan), "--health", "records",
        "--json", *extra,
    )  # fmt: skip
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def physical_id(cloudformation: Any, stack: str, resource_type: str) -> str:
    """The one resource of `resource_type` in the deployed stack (its type read from the template)."""
    body = cloudformation.get_template(StackName=stack)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    [logical_id] = [k for k, v in template["Resources"].items() if v["Type"] == resource_type]
    detail = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    return str(detail["StackResourceDetail"]["PhysicalResourceId"])


def live_stacks(cloudformation: Any) -> set[str]:
    return {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"}


def exported_items(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    items = []
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        items += [json.loads(line)["Item"] for line in gzip.decompress(body).decode().splitlines() if line]
    return items


@pytest.fixture
def deployed(agents_copy: Path, tmp_path: Path) -> Any:
    """dev with per-instance keys and a third instance, placed and deployed (platform and three instance stacks)."""
    edit(agents_copy / "platform.yaml", lambda doc: doc["spec"]["environments"]["dev"].update(
        {"encryption": "per_instance_key", "key_pending_window_days": 7}
    ))  # fmt: skip
    add_instance(agents_copy, "dev", "acme", "retail", "qa", like=("acme", "retail", "dev"))
    placed = subprocess.run(
        [sys.executable, "-m", "foundry", "place", "--agents-dir", str(agents_copy), "--environment", "dev"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert placed.returncode == 0, placed.stderr
    local = LocalAws(state_dir=tmp_path / "local-aws", agents_dir=agents_copy, cdk_timeout_s=TIMEOUT_S)
    try:
        state = local.up()
        assert sorted(local.deploy()) == sorted(["af-dev-platform", *STACKS.values()])
        yield state
    finally:
        local.down()


def leave_the_manifests(agents: Path, *selectors: str) -> None:
    def change(data: Any) -> None:
        kept = [
            e for e in entries(data) if f"{e['organization_id']}/{e['domain_id']}/{e['instance_id']}" not in selectors
        ]
        data["spec"]["entries"] = kept

    edit(env_manifest(agents, "dev"), change)


@pytest.mark.slow
def test_offboarding_exports_an_instance_s_data_deletes_its_stack_and_leaves_the_others(
    deployed: ServerState, agents_copy: Path, tmp_path: Path
) -> None:
    state = deployed
    with using_aws_environment(aws_environment(state)):
        cloudformation = boto3.client("cloudformation", region_name=state.region)
        dynamodb = boto3.client("dynamodb", region_name=state.region)
        table = physical_id(cloudformation, STACKS[LEAVING], "AWS::DynamoDB::Table")
        key = physical_id(cloudformation, STACKS[LEAVING], "AWS::KMS::Key")
        # A thread's own item as the runtime writes it, and an hourly usage row beside it (the same table).
        thread = {PK: {"S": "AF_THREAD_t-1"}, SK: {"S": "AF_THREAD"}, "messages": {"S": "hello"}}
        usage = {PK: {"S": "AF_USAGE_2026-12-03T05"}, SK: {"S": "model#offline"}, "requests": {"N": "20"}}
        for item in (thread, usage):
            dynamodb.put_item(TableName=table, Item=item)

    # Still in the manifests: refused, nothing touched.
    refused = foundry(state, agents_copy, tmp_path, "offboard", LEAVING, "--environment", "dev")
    assert refused.returncode == 1 and "still in the manifest of dev" in refused.stderr

    leave_the_manifests(agents_copy, LEAVING, ALSO_LEAVING)
    # A rollout without the flag reports the removed instances and leaves their stacks.
    code, report = rollout(state, agents_copy, tmp_path)
    assert code == 0, report
    [left] = [n for n in report["notes"] if "no longer in the manifests" in n]
    assert f"{LEAVING} ({STACKS[LEAVING]})" in left and f"{ALSO_LEAVING} ({STACKS[ALSO_LEAVING]})" in left
    with using_aws_environment(aws_environment(state)):
        assert set(STACKS.values()) <= live_stacks(cloudformation)

    done = foundry(state, agents_copy, tmp_path, "offboard", LEAVING, "--environment", "dev", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    export = answer["export"]
    assert export["table"] == table and export["prefix"].startswith(f"dev/{LEAVING}/")
    with using_aws_environment(aws_environment(state)):
        platform = cloudformation.describe_stacks(StackName="af-dev-platform")["Stacks"][0]
        [bucket] = [o["OutputValue"] for o in platform["Outputs"] if o["OutputKey"] == "OffboardingBucketName"]
        assert export["bucket"] == bucket
        items = exported_items(boto3.client("s3", region_name=state.region), bucket, export["prefix"])
        assert sorted(i[PK]["S"] for i in items) == ["AF_THREAD_t-1", "AF_USAGE_2026-12-03T05"]
        assert next(i for i in items if i[PK]["S"] == "AF_THREAD_t-1")["messages"] == {"S": "hello"}
        stacks = live_stacks(cloudformation)
        assert STACKS[LEAVING] not in stacks
        assert {STACKS[ALSO_LEAVING], STACKS[STAYING], "af-dev-platform"} <= stacks
        assert table in dynamodb.list_tables()["TableNames"]  # retained
        assert dynamodb.scan(TableName=table)["Count"] == 2
        kms = boto3.client("kms", region_name=state.region)
        assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert [k["key_id"] for k in answer["key_deletions"]] == [key]
    assert answer["key_deletions"][0]["pending_window_days"] == 7
    kept = {r["type"] for r in answer["kept"]}
    assert {"AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::Logs::LogGroup"} <= kept
    deleted = {r["type"] for r in answer["deleted"]}
    assert {"AWS::ECS::Service", "AWS::SecretsManager::Secret", "AWS::ElasticLoadBalancingV2::ListenerRule"} <= deleted

    # The pipeline's path: the other removed instance, offboarded by the rollout behind its flag.
    code, report = rollout(state, agents_copy, tmp_path, "--offboard-removed")
    assert code == 0, report
    [note] = [n for n in report["notes"] if n.startswith(f"offboarded {ALSO_LEAVING}:")]
    assert f"s3://{bucket}/dev/{ALSO_LEAVING}/" in note and f"stack {STACKS[ALSO_LEAVING]} deleted" in note
    with using_aws_environment(aws_environment(state)):
        stacks = live_stacks(cloudformation)
    assert STACKS[ALSO_LEAVING] not in stacks and STACKS[STAYING] in stacks
