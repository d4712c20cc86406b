"""`encryption: per_instance_key` (issue 24): a KMS key of the instance's own for its state table, secrets and log
groups; real templates from hand-made props, and the example app with one environment choosing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from constructs.af_agent_runtime import AfAgentRuntime
from constructs.af_agent_runtime_props import InstanceKey
from foundry.fleet.load import load_fleet
from stacks.instance_stack import instance_key
from tests.cdk.cdk_harness import synth
from tests.cdk.test_cdk_agent_runtime_construct import build, bundle_file, logical_id
from tests.cdk.test_cdk_deploy_state import AGENTS
from tests.foundry.manifest_edits import edit

__all__ = ["bundle_file"]  # the module-scoped fixture, shared

ALIAS = "alias/agentfoundry/test/acme/retail/dev"


@pytest.fixture(scope="module")
def keyed(bundle_file: str) -> tuple[cdk.Stack, AfAgentRuntime, Template]:
    stack, runtime = build(bundle_file, encryption_key=InstanceKey(pending_window_days=14))
    return stack, runtime, Template.from_stack(stack)


def key_ref(keyed: Any) -> dict[str, Any]:
    stack, runtime, _ = keyed
    assert runtime.key is not None
    return {"Fn::GetAtt": [logical_id(stack, runtime.key), "Arn"]}


def test_the_instance_key_rotates_is_retained_with_a_pending_window_and_is_named_after_the_instance(keyed: Any) -> None:
    template: Template = keyed[2]
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "PendingWindowInDays": 14},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": ALIAS})


def test_the_state_table_is_encrypted_with_the_instance_key(keyed: Any) -> None:
    keyed[2].has_resource_properties(
        "AWS::DynamoDB::Table",
        {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_ref(keyed)}},
    )


def test_every_secret_and_both_log_groups_are_encrypted_with_the_instance_key(keyed: Any) -> None:
    template: Template = keyed[2]
    secrets = template.find_resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    assert all(s["Properties"]["KmsKeyId"] == key_ref(keyed) for s in secrets.values())
    groups = template.find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 2  # the runtime's and the collector's metrics
    assert all(g["Properties"]["KmsKeyId"] == key_ref(keyed) for g in groups.values())


def test_cloudwatch_logs_may_use_the_key_only_for_this_account_s_log_groups_in_the_region(keyed: Any) -> None:
    keyed[2].has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchLogsOfThisAccount",
                                "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": {
                                            "Fn::Join": [
                                                "",
                                                [
                                                    "arn:",
                                                    {"Ref": "AWS::Partition"},
                                                    ":logs:us-east-1:",
                                                    {"Ref": "AWS::AccountId"},
                                                    ":log-group:*",
                                                ],
                                            ]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_task_role_may_decrypt_with_the_key_to_read_and_write_its_table(keyed: Any) -> None:
    stack, runtime, template = keyed
    attached = {"Properties": {"Roles": [{"Ref": logical_id(stack, runtime.task_role)}]}}
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy", attached).values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    on_key = [s for s in statements if s["Resource"] == key_ref(keyed)]
    assert on_key and any("kms:Decrypt" in s["Action"] for s in on_key)


def test_without_the_choice_there_is_no_key_and_the_table_uses_aws_managed_encryption(bundle_file: str) -> None:
    stack, runtime = build(bundle_file)
    template = Template.from_stack(stack)
    assert runtime.key is None
    template.resource_count_is("AWS::KMS::Key", 0)
    template.has_resource_properties("AWS::DynamoDB::Table", {"SSESpecification": {"SSEEnabled": True}})
    table = next(iter(template.find_resources("AWS::DynamoDB::Table").values()))
    assert "KMSMasterKeyId" not in table["Properties"]["SSESpecification"]
    secrets = template.find_resources("AWS::SecretsManager::Secret").values()
    assert all("KmsKeyId" not in s["Properties"] for s in secrets)


def test_the_environment_s_choice_becomes_the_construct_s_key_prop() -> None:
    environments = load_fleet(AGENTS).tree.platform.model.spec.environments
    assert instance_key(environments["prod"]) is None  # the default: AWS-managed
    chosen = environments["prod"].model_copy(update={"encryption": "per_instance_key", "key_pending_window_days": 7})
    assert instance_key(chosen) == InstanceKey(pending_window_days=7)


def test_an_instance_stack_with_its_own_key_passes_cdk_nag_and_cfn_lint_and_keeps_its_table(
    agents_copy: Path, tmp_path: Path
) -> None:
    """The real app (cdk-nag, CDK's CloudFormation validation) with prod choosing per_instance_key: the key is
    added, the table, secrets and logs change only in their encryption, and no stateful logical id moves."""
    stack = "af-prod-acme-retail-us-east-1"
    before = synth(tmp_path / "before" / "cdk.out", agents_dir=agents_copy, validation=True, environment="prod")
    edit(
        agents_copy / "platform.yaml",
        lambda doc: doc["spec"]["environments"]["prod"].update({"encryption": "per_instance_key"}),
    )
    after = synth(tmp_path / "after" / "cdk.out", agents_dir=agents_copy, validation=True, environment="prod")
    reports = json.loads((after.outdir / "validation-report.json").read_text())["pluginReports"]
    assert {r["pluginName"]: r["violations"] for r in reports if r["violations"]} == {}
    text = (after.outdir / f"{stack}.template.json").read_text()
    assert [str(m) for m in lint(text, config=ManualArgs(regions=["us-east-1"])) if m.rule.id.startswith("E")] == []
    old, new = before.templates[stack]["Resources"], after.templates[stack]["Resources"]
    assert set(old) <= set(new)
    added = {new[k]["Type"] for k in set(new) - set(old)}
    assert added == {"AWS::KMS::Key", "AWS::KMS::Alias"}
    [table_id] = [k for k, v in new.items() if v["Type"] == "AWS::DynamoDB::Table"]
    assert new[table_id]["Properties"]["SSESpecification"]["SSEType"] == "KMS"
    assert new[table_id]["DeletionPolicy"] == "Retain"
    [key] = [v for v in new.values() if v["Type"] == "AWS::KMS::Key"]
    assert key["Properties"]["PendingWindowInDays"] == 30
