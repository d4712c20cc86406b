"""The Foundry MCP tools through the SDK's in-memory client (the transport is not the point here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from foundry.aws.clients import boto3_clients
from foundry.bundles.archive import build_bundle
from foundry.deploy.deployer import Deployer
from foundry.fleet.load import load_fleet
from foundry.mcp.server import FoundryConfig, build_server
from tests.foundry.manifest_edits import edit
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT

TOOLS = {
    "foundry.list_agents",
    "foundry.get_agent_config",
    "foundry.list_instances",
    "foundry.deploy_instance",
    "foundry.get_instance_status",
    "foundry.get_rollout_status",
    "foundry.export_subject_data",
    "foundry.erase_subject_data",
    "foundry.get_instance_usage",
}


async def call(server: MCPServer, tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(server) as client:
        return await client.call_tool(tool, arguments)


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(c.text for c in result.content)


async def test_server_lists_the_foundry_tools_with_dotted_names(server: MCPServer) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    deploy = next(t for t in tools if t.name == "foundry.deploy_instance")
    assert set(deploy.input_schema["required"]) == {"environment", "instance"}
    assert {"dry_run", "runtime_image", "timeout_seconds"} <= set(deploy.input_schema["properties"])


async def test_list_instances_reports_hostname_stack_and_bundle_hash(server: MCPServer) -> None:
    result = await call(server, "foundry.list_instances", {"environment": "dev"})
    rows = result.structured_content["instances"]
    assert [r["instance"] for r in rows] == ["acme/retail/dev", "default-org/default-domain/dev"]
    acme = load_fleet(REPO_ROOT / "agents", environment="dev", instance="acme/retail/dev").instances[0]
    assert rows[0]["hostname"] == "acme-retail-dev.dev.agentfoundry.internal"
    assert rows[0]["stack_name"] == "af-dev-acme-retail-dev"
    assert rows[0]["bundle_hash"] == build_bundle(acme).content_hash


async def test_list_instances_without_filter_covers_every_environment(server: MCPServer) -> None:
    result = await call(server, "foundry.list_instances", {})
    assert result.structured_content["count"] == 7
    assert {r["environment"] for r in result.structured_content["instances"]} == {"dev", "staging", "prod"}


async def test_list_agents_filters_by_organization_and_environment(server: MCPServer) -> None:
    result = await call(server, "foundry.list_agents", {"organization": "globex", "environment": "prod"})
    agents = result.structured_content["agents"]
    assert agents
    assert {a["organization_id"] for a in agents} == {"globex"}
    assert {a["environment"] for a in agents} == {"prod"}
    assert {a["instance"] for a in agents} == {"globex/billing/eu-west-1", "globex/support/tenant-123"}


async def test_list_agents_filters_by_instance_selector(server: MCPServer) -> None:
    result = await call(server, "foundry.list_agents", {"instance": "acme/retail/dev"})
    agents = result.structured_content["agents"]
    assert {a["instance"] for a in agents} == {"acme/retail/dev"}
    roles = {a["role"] for a in agents if a["system_agent"]}
    assert roles == {"io", "governance", "context", "supervisor", "coherence", "exception", "observability"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("acme/retail/dev;id", "shell metacharacters ;"),
        ("acme/retail", "must be ORG/DOMAIN/INSTANCE"),
        ("acme/Retail/dev", "must be ORG/DOMAIN/INSTANCE"),
        ("--all", "looks like a command-line flag"),
        ("Dev", "not a valid instance filter"),
    ],
)
async def test_list_agents_refuses_a_malformed_instance_filter_naming_the_allowed_form(
    server: MCPServer, selector: str, expected: str
) -> None:
    text = error_text(await call(server, "foundry.list_agents", {"instance": selector}))
    assert "foundry.list_agents: instance: " in text
    assert expected in text
    assert "ORG/DOMAIN/INSTANCE" in text


async def test_get_agent_config_returns_the_spec_and_where_it_is_bound(server: MCPServer) -> None:
    result = await call(server, "foundry.get_agent_config", {"agent_id": "supervisor-agent", "environment": "dev"})
    specs = result.structured_content["specs"]
    assert len(specs) == 1
    assert specs[0]["spec"]["kind"] == "AgentSpec"
    assert specs[0]["spec"]["spec"]["role"] == "supervisor"
    assert specs[0]["file"].startswith("agents/specs/")
    assert {b["instance"] for b in specs[0]["bound_to"]} == {"acme/retail/dev", "default-org/default-domain/dev"}


async def test_unknown_agent_is_a_tool_error_listing_the_known_ones(server: MCPServer) -> None:
    text = error_text(await call(server, "foundry.get_agent_config", {"agent_id": "nope-agent"}))
    assert "no agent 'nope-agent'" in text
    assert "supervisor-agent" in text


async def test_broken_manifests_are_reported_as_a_tool_error_naming_the_file(
    server: MCPServer, agents_copy: Path, foundry_config: Any
) -> None:
    manifest = agents_copy / "manifests" / "manifest.dev.yaml"
    manifest.write_text(manifest.read_text().replace("instance_id: dev", "instance_id: Dev!", 1))
    foundry_config.agents_dir = agents_copy
    text = error_text(await call(server, "foundry.list_instances", {}))
    assert "manifest.dev.yaml" in text
    assert "instance_id" in text


BAD_DEPLOY_ARGUMENTS = [
    pytest.param({"environment": "dev", "instance": "acme/retail/nope"}, "unknown instance", id="unknown-instance"),
    pytest.param({"environment": "qa", "instance": "acme/retail/dev"}, "unknown environment", id="unknown-env"),
    pytest.param({"environment": "dev", "instance": "acme/retail/dev;id"}, "shell metacharacters", id="semicolon"),
    pytest.param({"environment": "dev", "instance": "$(reboot)"}, "shell metacharacters", id="subshell"),
    pytest.param({"environment": "dev", "instance": "--app=node x.js"}, "command-line flag", id="flag-instance"),
    pytest.param({"environment": "--all", "instance": "acme/retail/dev"}, "command-line flag", id="flag-env"),
    pytest.param(
        {"environment": "dev", "instance": "acme/retail/dev", "runtime_image": "--app=x"},
        "command-line flag",
        id="flag-image",
    ),
    pytest.param(
        {"environment": "dev", "instance": "acme/retail/dev", "runtime_image": "repo"},
        "no tag or digest",
        id="untagged-image",
    ),
    pytest.param(
        {"environment": "dev", "instance": "acme/retail/dev", "agents_dir": "/etc"},
        "outside the repository",
        id="path-outside-repo",
    ),
    pytest.param(
        {"environment": "dev", "instance": "acme/retail/dev", "agents_dir": "../../"},
        "outside the repository",
        id="path-traversal",
    ),
    pytest.param(
        {"environment": "dev", "instance": "acme/retail/dev", "timeout_seconds": 1},
        "timeout_seconds",
        id="timeout",
    ),
]


@pytest.mark.parametrize(("arguments", "expected"), BAD_DEPLOY_ARGUMENTS)
async def test_bad_deploy_arguments_are_refused_and_nothing_runs(
    server: MCPServer, deployer: Deployer, deploys_dir: Path, arguments: dict[str, Any], expected: str
) -> None:
    text = error_text(await call(server, "foundry.deploy_instance", {**arguments, "dry_run": True}))
    assert expected in text
    assert deployer.runner.started == 0
    assert not deploys_dir.exists()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"environment": "dev", "instance": "acme/retail/dev`id`"}, "shell metacharacters"),
        ({"environment": "prod", "instance": "acme/retail/dev"}, "unknown instance"),
    ],
)
async def test_bad_status_arguments_are_refused_before_any_aws_call(
    server: MCPServer, foundry_config: Any, arguments: dict[str, Any], expected: str
) -> None:
    calls: list[str] = []

    def clients(service: str, region: str) -> Any:
        calls.append(service)
        raise AssertionError("no AWS client may be created for a refused request")

    foundry_config.clients = clients
    text = error_text(await call(server, "foundry.get_instance_status", arguments))
    assert expected in text
    assert calls == []


async def test_get_agent_config_shows_the_external_tools_and_the_server_each_comes_from_per_instance(
    agents_copy: Path, deployer: Deployer
) -> None:
    shared = {"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}
    own = {**shared, "url": "https://tickets.globex.example/mcp"}

    def declare(data: dict[str, Any]) -> None:
        data["spec"]["mcp"].update(servers=[shared], server_overrides=[{"organization_id": "globex", "servers": [own]}])

    edit(agents_copy / "manifests" / "manifest.instance-template.yaml", declare)
    edit(
        agents_copy / "specs" / "workers" / "ticket-agent.yaml",
        lambda d: d["spec"]["tools"].append("ticketing.create_ticket"),
    )
    config = FoundryConfig(
        repo_root=agents_copy.parent, agents_dir=agents_copy, deployer=deployer, clients=boto3_clients, probe=None
    )
    result = await call(build_server(config), "foundry.get_agent_config", {"agent_id": "ticket-agent"})
    bound = [b for spec in result.structured_content["specs"] for b in spec["bound_to"]]
    assert bound
    for binding in bound:
        (tool,) = binding["external_tools"]
        url = own["url"] if binding["instance"].startswith("globex/") else shared["url"]
        assert tool == {
            "tool": "ticketing.create_ticket",
            "server": "ticketing",
            "url": url,
            "bearer_secret": "ticket-api-token",
        }
    assert any(b["instance"].startswith("globex/") for b in bound)
