"""The platform stack's deploy-state table (constructs/af_deploy_state.py): the table the Foundry keeps rollout
records and deploy locks in, and the SSM parameter through which `FOUNDRY_STATE_URL=dynamodb://` finds it."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk.assertions import Capture, Template

from foundry.fleet.load import load_fleet
from foundry.state.dynamodb_store import PARTITION_KEY
from foundry.state.locations import platform_table_parameter
from stacks.platform_stack import PlatformStack

AGENTS = Path(__file__).resolve().parents[2] / "agents"


def platform_template(environment: str) -> Template:
    settings = load_fleet(AGENTS).tree.platform.model.spec.environments[environment]
    app = cdk.App()
    stack = PlatformStack(app, f"af-{environment}-platform", environment=environment, settings=settings, shards=[0])
    return Template.from_stack(stack)


def test_the_platform_has_one_deploy_state_table_keyed_as_the_foundry_writes_it_and_publishes_its_name() -> None:
    for environment in ("dev", "prod"):
        template = platform_template(environment)
        template.resource_count_is("AWS::DynamoDB::Table", 1)
        table = Capture()
        template.has_resource_properties(
            "AWS::DynamoDB::Table",
            {
                "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        )
        template.has_resource_properties(
            "AWS::SSM::Parameter",
            {"Name": platform_table_parameter(environment), "Type": "String", "Value": {"Ref": table}},
        )
        [logical_id] = template.find_resources("AWS::DynamoDB::Table")
        assert table.as_string() == logical_id
