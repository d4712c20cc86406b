"""`./dev local-aws status` reads each instance's thread-state table back with boto3: the construct's real template,
created by moto's CloudFormation on its server, then the same read-back `status` runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from mcp import Client

from constructs.af_instance_state import AfInstanceState
from foundry.local.readback import state_table_checks
from instance_contract.thread_state import DYNAMODB_PARTITION_KEY
from runtime.store.usage_ledger import USAGE_PARTITION
from tests.mcp.foundry_mcp_local_aws import moto_server
from tests.runtime.runtime_harness import AGENTS_DIR, serve, write_bundles

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    with moto_server() as local:
        yield local


def _template(*, point_in_time_recovery: bool) -> dict[str, Any]:
    app = cdk.App()
    stack = cdk.Stack(app, "af-dev-acme-retail-dev", synthesizer=cdk.BootstraplessSynthesizer())
    AfInstanceState(
        stack, "State", point_in_time_recovery=point_in_time_recovery, tags={"agentfoundry:instance": "dev"}
    )
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def _deploy(moto: Any, name: str, template: dict[str, Any]) -> list[dict[str, Any]]:
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    resources: list[dict[str, Any]] = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return resources


def test_status_reads_back_the_instance_table_with_ttl_and_on_demand_billing(moto: Any) -> None:
    template = _template(point_in_time_recovery=True)
    created = _deploy(moto, "af-dev-acme-retail-dev", template)
    (check,) = state_table_checks(moto.client("dynamodb"), template, created)
    assert check.ok, check.detail
    assert check.name == "state_table"
    assert check.detail.startswith(f"{check.data['table']}: ACTIVE, PAY_PER_REQUEST, 0 item(s)")
    # moto's CloudFormation creates the table but ignores these two properties: named, not pretended
    assert check.data["not_applied_by_moto"] == ["TTL on ttl", "point-in-time recovery"]
    assert check.data["state_url"] == f"dynamodb://{check.data['table']}"
    assert check.data["tags"]["agentfoundry:instance"] == "dev"


def test_a_table_whose_keys_differ_from_the_template_fails_the_check(moto: Any) -> None:
    template = _template(point_in_time_recovery=False)
    created = _deploy(moto, "af-dev-acme-retail-other", template)
    (logical_id,) = template["Resources"]
    template["Resources"][logical_id]["Properties"]["KeySchema"] = [{"AttributeName": "id", "KeyType": "HASH"}]
    (check,) = state_table_checks(moto.client("dynamodb"), template, created)
    assert not check.ok
    assert "problems: keys" in check.detail


def test_a_table_in_the_template_that_was_not_created_fails_the_check(moto: Any) -> None:
    template = _template(point_in_time_recovery=False)
    (check,) = state_table_checks(moto.client("dynamodb"), template, created=[])
    assert not check.ok
    assert "in the template, but no table was created" in check.detail


def test_a_stack_without_a_table_gets_no_state_check(moto: Any) -> None:
    assert state_table_checks(moto.client("dynamodb"), {"Resources": {"X": {"Type": "AWS::SNS::Topic"}}}, []) == []


async def test_a_runtime_keeps_its_threads_in_the_table_the_construct_created(moto: Any, tmp_path: Path) -> None:
    """The construct's table (created by CloudFormation from its real template) is the runtime's store as is."""
    template = _template(point_in_time_recovery=True)
    created = _deploy(moto, "af-dev-default-org-default-domain-dev", template)
    (table,) = [r["PhysicalResourceId"] for r in created if r["ResourceType"] == "AWS::DynamoDB::Table"]
    (built,) = write_bundles(AGENTS_DIR, tmp_path, instance="default-org/default-domain/dev")
    runtime = serve({**built.identity_env(), **moto.env, "STATE_URL": f"dynamodb://{table}"})
    try:
        async with Client(runtime.url) as client:
            await client.call_tool("invoke", {"message": "plan the launch of ACME-9", "thread_id": "t1"})
            second = await client.call_tool("invoke", {"message": "and the milestones?", "thread_id": "t1"})
        assert second.structured_content is not None and "ACME-9" in second.structured_content["answer"]
        assert runtime.terminate() == 0
    finally:
        if runtime.process.poll() is None:
            runtime.process.kill()
    dynamodb = moto.client("dynamodb")
    (check,) = state_table_checks(dynamodb, template, created)
    items = dynamodb.scan(TableName=table)["Items"]
    usage = [item for item in items if item[DYNAMODB_PARTITION_KEY]["S"] == USAGE_PARTITION]
    # the thread's record, its one checkpoint (the superseded one was pruned) and that checkpoint's payload, beside
    # the usage ledger's hour(s) (one, unless the two turns fell either side of an hour), which counted both turns
    assert len(items) - len(usage) == 3 and usage, items
    assert sum(int(item["requests"]["N"]) for item in usage) == 2
    assert check.ok and f", {len(items)} item(s)," in check.detail, check.detail
