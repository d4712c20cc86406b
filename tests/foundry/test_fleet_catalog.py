"""The fleet catalog as pure functions over the example fleet: what `foundry.list_agents`, `foundry.get_agent_config`
and `foundry.list_instances` answer, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from foundry.bundles.archive import build_bundle, read_bundle
from foundry.fleet import catalog
from foundry.fleet.catalog import UnknownAgentError
from foundry.fleet.load import load_fleet
from foundry.fleet.model import Fleet
from tests.conftest import AGENTS_DIR, REPO_ROOT
from tests.foundry.manifest_edits import edit


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(AGENTS_DIR)


def test_without_filters_every_agent_of_every_instance_is_listed_system_agents_first(fleet: Fleet) -> None:
    listing = catalog.list_agents(fleet)
    assert listing.count == len(listing.agents) == sum(len(i.manifest.spec.agents) for i in fleet.instances)
    first = fleet.instances[0]
    rows = [a for a in listing.agents if a.instance == first.key.selector and a.environment == first.environment]
    assert [a.system_agent for a in rows] == sorted((a.system_agent for a in rows), reverse=True)
    assert [a.agent_id for a in rows] == [a.agent_id for a in first.manifest.spec.agents]


def test_agents_are_filtered_by_organization_and_environment_together(fleet: Fleet) -> None:
    listing = catalog.list_agents(fleet, organization="globex", environment="prod")
    assert listing.agents
    assert {(a.organization_id, a.environment) for a in listing.agents} == {("globex", "prod")}


@pytest.mark.parametrize("instance", ["acme/retail/dev", "dev"])
def test_the_instance_filter_matches_a_selector_or_an_instance_id(fleet: Fleet, instance: str) -> None:
    listing = catalog.list_agents(fleet, domain="retail", instance=instance)
    assert {a.instance for a in listing.agents} == {"acme/retail/dev"}


def test_an_agent_config_lists_each_instance_binding_it_in_the_environment_asked(fleet: Fleet) -> None:
    config = catalog.agent_config(
        fleet, "supervisor-agent", agents_dir=AGENTS_DIR, repo_root=REPO_ROOT, environment="dev"
    )
    (spec,) = config.specs
    assert spec.file == f"agents/{spec.spec_path}"
    assert spec.spec.spec.role == "supervisor"
    assert [(b.environment, b.instance) for b in spec.bound_to] == [
        (i.environment, i.key.selector) for i in fleet.instances if i.environment == "dev"
    ]


def test_a_spec_file_outside_the_repository_is_named_by_its_absolute_path(fleet: Fleet, tmp_path: Path) -> None:
    config = catalog.agent_config(fleet, "io-agent", agents_dir=AGENTS_DIR, repo_root=tmp_path)
    assert config.specs[0].file == str(AGENTS_DIR / config.specs[0].spec_path)


def test_an_agent_bound_nowhere_is_refused_naming_the_environment_and_the_known_agents(fleet: Fleet) -> None:
    with pytest.raises(UnknownAgentError) as refused:
        catalog.agent_config(fleet, "nope-agent", agents_dir=AGENTS_DIR, repo_root=REPO_ROOT, environment="dev")
    message = str(refused.value)
    assert message.startswith("agent_id: no agent 'nope-agent' is bound to any instance in environment 'dev'; known: ")
    assert "supervisor-agent" in message


def test_external_tools_are_mapped_to_the_server_each_instance_reaches_them_on(agents_copy: Path) -> None:
    shared = {"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}
    own = {**shared, "url": "https://tickets.globex.example/mcp"}

    def declare(data: dict[str, Any]) -> None:
        data["spec"]["mcp"].update(servers=[shared], server_overrides=[{"organization_id": "globex", "servers": [own]}])

    edit(agents_copy / "manifests" / "manifest.instance-template.yaml", declare)
    edit(
        agents_copy / "specs" / "workers" / "ticket-agent.yaml",
        lambda d: d["spec"]["tools"].extend(["memory_read", "ticketing.create_ticket"]),
    )
    config = catalog.agent_config(
        load_fleet(agents_copy, cache_dir=None), "ticket-agent", agents_dir=agents_copy, repo_root=agents_copy.parent
    )
    urls = {b.instance: [t.url for t in b.external_tools] for spec in config.specs for b in spec.bound_to}
    assert urls
    assert all(u == [own["url"] if i.startswith("globex/") else shared["url"]] for i, u in urls.items())
    tool = config.specs[0].bound_to[0].external_tools[0]
    assert (tool.tool, tool.server, tool.bearer_secret) == ("ticketing.create_ticket", "ticketing", "ticket-api-token")


def test_instance_rows_follow_the_environment_filter(fleet: Fleet) -> None:
    listing = catalog.list_instances(fleet, environment="dev")
    assert listing.count == len(listing.instances) == 2
    assert [r.instance for r in listing.instances] == ["acme/retail/dev", "default-org/default-domain/dev"]


def test_the_listed_bundle_hash_is_the_hash_of_the_archive_build_bundle_writes(fleet: Fleet) -> None:
    listing = catalog.list_instances(fleet)
    assert [r.instance for r in listing.instances] == [i.key.selector for i in fleet.instances]
    for row, instance in zip(listing.instances, fleet.instances, strict=True):
        index, _ = read_bundle(build_bundle(instance).archive, f"{row.instance}.tar.gz")
        assert row.bundle_hash == index["content_hash"]
