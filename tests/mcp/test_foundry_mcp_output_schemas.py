"""Every Foundry MCP tool publishes an output schema (its result's pydantic model) and answers structured content
that validates against it; the deploy and status results carry exactly their dataclasses' fields."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.config import Config
from mcp import Client
from mcp.server.mcpserver import MCPServer

from foundry.aws.cloudformation import Failure
from foundry.aws.instance_status import InstanceStatus
from foundry.cli import main
from foundry.deploy.interruption import Interruption
from foundry.deploy.platform_gate import PlatformCheck
from foundry.deploy.request import DeployResult
from foundry.deploy.status import DeployedStatus
from foundry.mcp.results import DeployInstanceResult, InstanceStatusResult
from foundry.mcp.server import FoundryConfig, build_server
from foundry.rollout.report import report
from foundry.rollout.state import RolloutStore
from tests.mcp.foundry_mcp_process_helpers import free_port

READ_CALLS = [
    pytest.param("foundry.list_agents", {"organization": "acme"}, id="list_agents"),
    pytest.param("foundry.get_agent_config", {"agent_id": "ticket-agent"}, id="get_agent_config"),
    pytest.param("foundry.list_instances", {}, id="list_instances"),
    pytest.param("foundry.get_rollout_status", {}, id="rollout-listing"),
    pytest.param("foundry.get_rollout_status", {"environment": "dev"}, id="rollout-none-recorded"),
]


async def output_schemas(server: MCPServer) -> dict[str, dict[str, Any] | None]:
    async with Client(server) as client:
        return {t.name: t.output_schema for t in (await client.list_tools()).tools}


def schema_of(schemas: dict[str, dict[str, Any] | None], tool: str) -> dict[str, Any]:
    schema = schemas[tool]
    assert schema is not None, f"{tool} publishes no output schema"
    return schema


async def test_every_tool_publishes_an_object_output_schema_named_after_its_result(server: MCPServer) -> None:
    found = await output_schemas(server)
    schemas = {tool: schema_of(found, tool) for tool in found}
    assert len(schemas) == 9
    assert {s["type"] for s in schemas.values()} == {"object"}
    assert schemas["foundry.deploy_instance"]["title"] == "DeployInstanceResult"
    assert schemas["foundry.list_agents"]["title"] == "AgentList"
    assert schemas["foundry.erase_subject_data"]["title"] == "SubjectDataReport"
    assert schemas["foundry.get_instance_usage"]["title"] == "InstanceUsage"


@pytest.mark.parametrize(("tool", "arguments"), READ_CALLS)
async def test_a_read_tools_structured_content_validates_against_its_output_schema(
    server: MCPServer, tool: str, arguments: dict[str, Any]
) -> None:
    schema = schema_of(await output_schemas(server), tool)
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    jsonschema.validate(result.structured_content, schema)


async def test_a_recorded_rollout_validates_and_its_report_is_the_rollout_report_key_for_key(
    foundry_config: FoundryConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["rollout", "--environment", "dev", "--simulate", "--simulate-keep-state", "--json"])
    capsys.readouterr()
    recorded = RolloutStore(foundry_config.deployer.locks.stores.open("dev", None), simulated=True).load("dev")
    assert recorded is not None
    server = build_server(dataclasses.replace(foundry_config, repo_root=tmp_path))
    schema = schema_of(await output_schemas(server), "foundry.get_rollout_status")
    async with Client(server) as client:
        result = await client.call_tool("foundry.get_rollout_status", {"environment": "dev", "simulated": True})
        listing = await client.call_tool("foundry.get_rollout_status", {"simulated": True})
    jsonschema.validate(result.structured_content, schema)
    jsonschema.validate(listing.structured_content, schema)
    assert listing.structured_content["count"] == 1
    assert json.dumps(result.structured_content) == json.dumps(report(recorded))


async def test_the_status_of_an_unreachable_aws_validates_against_the_status_schema(
    server: MCPServer, foundry_config: FoundryConfig
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"

    def clients(service: str, region: str) -> Any:
        retries = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5)
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=nobody_listens,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=retries,
        )

    foundry_config.clients = clients
    schema = schema_of(await output_schemas(server), "foundry.get_instance_status")
    async with Client(server) as client:
        result = await client.call_tool(
            "foundry.get_instance_status", {"environment": "dev", "instance": "acme/retail/dev"}
        )
    assert result.structured_content["verdict"] == "unknown"
    assert result.structured_content["deploy_lock"] is None
    jsonschema.validate(result.structured_content, schema)


def test_the_deploy_result_has_the_deployers_fields_in_order_and_dumps_as_they_did() -> None:
    result = DeployResult(
        outcome="failed",
        environment="dev",
        instance="acme/retail/dev",
        hostname="acme-retail-dev.dev.agentfoundry.internal",
        stacks=["af-dev-acme-retail-dev"],
        outputs={"af-dev-acme-retail-dev": {"InstanceEndpoint": "http://x/mcp"}},
        diff_exit_code=1,
        failure=Failure(
            stack="s", logical_id="L", resource_type="AWS::ECS::Service", status="CREATE_FAILED", reason="r"
        ),
        platform=PlatformCheck(stack="af-dev-platform", status=None, ready=False, problems=["missing"]),
        commands=[["cdk", "deploy"]],
    )
    assert list(DeployInstanceResult.model_fields) == [f.name for f in dataclasses.fields(DeployResult)]
    typed = DeployInstanceResult.of(result)
    assert json.dumps(typed.model_dump(mode="json")) == json.dumps(dataclasses.asdict(result))
    jsonschema.validate(typed.model_dump(mode="json"), DeployInstanceResult.model_json_schema())


def test_the_status_result_is_the_status_fields_then_the_deploy_lock_and_the_last_interruption() -> None:
    status = InstanceStatus(
        environment="dev",
        instance="acme/retail/dev",
        hostname="h",
        stack_name="af-dev-acme-retail-dev",
        verdict="not_deployed",
        reasons=["the instance stack does not exist"],
    )
    interrupted = Interruption(
        stack="af-dev-acme-retail-dev", how="timed_out", at="2026-12-01T00:00:00Z", status_when_stopped=None
    )
    typed = InstanceStatusResult.of(
        DeployedStatus(status, deploy_lock="deploying", last_interrupted_deploy=interrupted)
    )
    expected = {
        **dataclasses.asdict(status),
        "deploy_lock": "deploying",
        "last_interrupted_deploy": dataclasses.asdict(interrupted),
    }
    assert json.dumps(typed.model_dump(mode="json")) == json.dumps(expected)
