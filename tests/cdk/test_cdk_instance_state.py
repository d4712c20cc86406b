"""The instance's thread-state table (constructs/af_instance_state.py) in the smallest stacks that show it: two
instances' tables and task roles side by side, so a grant that reached the other table (or `*`) would show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Validations, aws_iam
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from constructs.af_instance_state import STATE_TABLE_ID, AfInstanceState

TAGS = {"agentfoundry:organization": "acme", "agentfoundry:instance": "dev"}


def _stack(*, point_in_time_recovery: bool = True) -> tuple[Template, dict[str, AfInstanceState]]:
    app = cdk.App()
    stack = cdk.Stack(app, "StateTest", env=cdk.Environment(account="111111111111", region="us-east-1"))
    states = {}
    for name in ("Alpha", "Beta"):
        role = aws_iam.Role(stack, f"{name}TaskRole", assumed_by=aws_iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        state = AfInstanceState(
            stack, f"{name}State", point_in_time_recovery=point_in_time_recovery, tags={**TAGS, "name": name}
        )
        state.grant_task(role)
        states[name] = state
    return Template.from_stack(stack), states


def _logical_id(template: Template, construct: str) -> str:
    (found,) = [lid for lid in template.find_resources("AWS::DynamoDB::Table") if lid.startswith(construct)]
    return found


def test_each_instance_gets_one_on_demand_encrypted_table_with_ttl_and_its_tags() -> None:
    template, _ = _stack()
    template.resource_count_is("AWS::DynamoDB::Table", 2)
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
                "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "Tags": Match.array_with(
                    [
                        {"Key": "agentfoundry:instance", "Value": "dev"},
                        {"Key": "agentfoundry:organization", "Value": "acme"},
                        {"Key": "name", "Value": "Alpha"},
                    ]
                ),
            },
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_point_in_time_recovery_follows_the_environment_setting() -> None:
    template, _ = _stack(point_in_time_recovery=False)
    template.all_resources_properties(
        "AWS::DynamoDB::Table", {"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": False}}
    )


@pytest.mark.parametrize(("mine", "other"), [("Alpha", "Beta"), ("Beta", "Alpha")])
def test_a_task_role_may_read_and_write_its_own_table_and_nothing_else(mine: str, other: str) -> None:
    template, _ = _stack()
    own, foreign = _logical_id(template, f"{mine}State"), _logical_id(template, f"{other}State")
    (role,) = [lid for lid in template.find_resources("AWS::IAM::Role") if lid.startswith(f"{mine}TaskRole")]
    policies = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    resources = [r for s in statements for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert resources and all(r == {"Fn::GetAtt": [own, "Arn"]} for r in resources), resources
    assert foreign not in str(policies)
    actions = {a for s in statements for a in s["Action"]}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= actions
    assert {"dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"} <= actions
    assert not {"dynamodb:*", "dynamodb:DeleteTable", "dynamodb:UpdateTable"} & actions


def test_the_task_environment_names_the_table_by_reference() -> None:
    template, states = _stack()
    env = cdk.Stack.of(states["Alpha"]).resolve(states["Alpha"].task_environment)
    assert env == {"STATE_URL": {"Fn::Join": ["", ["dynamodb://", {"Ref": _logical_id(template, "AlphaState")}]]}}


def test_the_table_keeps_its_construct_id() -> None:
    template, states = _stack()
    assert states["Alpha"].table.node.id == STATE_TABLE_ID
    assert _logical_id(template, "AlphaState").startswith(f"AlphaState{STATE_TABLE_ID}")


@pytest.mark.parametrize("point_in_time_recovery", [True, False])
def test_cdk_nag_finds_nothing_unacknowledged_in_the_table_and_its_grant(
    point_in_time_recovery: bool, tmp_path: Path
) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "StateNag", env=cdk.Environment(account="111111111111", region="us-east-1"))
    role = aws_iam.Role(stack, "TaskRole", assumed_by=aws_iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    AfInstanceState(stack, "State", point_in_time_recovery=point_in_time_recovery, tags=TAGS).grant_task(role)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    written = tmp_path / "validation-report.json"  # cdk writes it only when a plugin reported something
    reports = json.loads(written.read_text())["pluginReports"] if written.exists() else []
    nag = [r for r in reports if r["pluginName"] == "AwsSolutions"]
    assert [v for r in nag for v in r["violations"]] == []
    suppressed = {v["ruleName"] for r in nag for v in r.get("suppressedViolations", [])}
    assert suppressed == (set() if point_in_time_recovery else {"AwsSolutions-DDB3"})
