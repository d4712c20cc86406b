"""External MCP servers in the manifests: overridable per tenant, carried into the instance manifest and the
bundle's mcp.json by name and URL only (never a secret's value)."""

from __future__ import annotations

import json
from pathlib import Path

from foundry.bundles.archive import build_bundle
from foundry.fleet.load import load_fleet
from foundry.manifests.resolve import ResolvedInstance
from instance_contract.bundle_format import MCP_FILE
from tests.foundry.manifest_edits import Doc, edit

TEMPLATE = "manifests/manifest.instance-template.yaml"
TICKET_SPEC = "specs/workers/ticket-agent.yaml"


def _declare(root: Path, servers: list[Doc], overrides: list[Doc] | None = None) -> None:
    def change(data: Doc) -> None:
        data["spec"]["mcp"]["servers"] = servers
        if overrides:
            data["spec"]["mcp"]["server_overrides"] = overrides

    edit(root / TEMPLATE, change)
    edit(root / TICKET_SPEC, lambda d: d["spec"]["tools"].append("ticketing.create_ticket"))


def _by_selector(root: Path) -> dict[str, ResolvedInstance]:
    return {f"{i.environment}/{i.key.selector}": i for i in load_fleet(root, cache_dir=None).instances}


def _has_ticket_agent(instance: ResolvedInstance) -> bool:
    return any(a.agent_id == "ticket-agent" for a in instance.manifest.spec.custom_agents)


def test_an_organization_override_gives_its_instances_their_own_server(agents_copy: Path) -> None:
    shared = {"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}
    own = {**shared, "url": "https://tickets.globex.example/mcp"}
    _declare(agents_copy, [shared], [{"organization_id": "globex", "servers": [own]}])
    instances = _by_selector(agents_copy)
    with_tickets = {name: i for name, i in instances.items() if _has_ticket_agent(i)}
    assert any(i.key.organization_id == "globex" for i in with_tickets.values())
    for name, instance in with_tickets.items():
        (server,) = instance.manifest.spec.mcp.servers
        expected = own["url"] if instance.key.organization_id == "globex" else shared["url"]
        assert server.url == expected, name
        assert server.bearer_secret == "ticket-api-token"


def test_an_instance_without_an_agent_using_a_server_neither_carries_it_nor_needs_its_secret(agents_copy: Path) -> None:
    _declare(
        agents_copy, [{"name": "ticketing", "url": "https://t.example.com/mcp", "bearer_secret": "ticket-api-token"}]
    )
    without = [i for i in _by_selector(agents_copy).values() if not _has_ticket_agent(i)]
    assert without, "the example tree has instances without the ticket agent"
    assert all(i.manifest.spec.mcp.servers == [] for i in without)


def test_the_bundle_carries_the_server_and_the_agents_grant_but_no_secret_value(agents_copy: Path) -> None:
    _declare(
        agents_copy,
        [{"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}],
    )
    instance = next(i for i in _by_selector(agents_copy).values() if _has_ticket_agent(i))
    mcp = json.loads(build_bundle(instance).files[MCP_FILE])
    assert mcp["provider"]["servers"] == [
        {
            "name": "ticketing",
            "url": "https://tickets.example.com/mcp",
            "bearer_secret": "ticket-api-token",
            "timeout_seconds": 10.0,
            "max_response_bytes": 1_000_000,
            "max_listing_bytes": 1_000_000,
        }
    ]
    assert "ticketing.create_ticket" in mcp["agents"]["ticket-agent"]
    assert "ticketing.create_ticket" not in mcp["agents"]["pm-agent"]


def test_an_instance_without_servers_serialises_as_before(agents_copy: Path) -> None:
    instance = next(iter(_by_selector(agents_copy).values()))
    assert "servers" not in json.loads(build_bundle(instance).files[MCP_FILE])["provider"]


def test_the_fleet_cache_keeps_servers_and_overrides(agents_copy: Path, tmp_path: Path) -> None:
    shared = {"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}
    own = {**shared, "url": "https://tickets.globex.example/mcp"}
    _declare(agents_copy, [shared], [{"organization_id": "globex", "servers": [own]}])
    cache = tmp_path / "cache"
    first = load_fleet(agents_copy, cache_dir=cache)
    second = load_fleet(agents_copy, cache_dir=cache)  # read back from the cache
    assert [i.manifest for i in second.instances] == [i.manifest for i in first.instances]
    assert second.tree.template.model == first.tree.template.model
    assert any(i.manifest.spec.mcp.servers for i in second.instances)
