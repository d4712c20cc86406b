"""Resolution golden files: the example fleet's instance manifests and bundle documents, pinned byte for byte."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from foundry.bundles.archive import GRAPH_FILE, INSTANCE_FILE, MCP_FILE, build_bundle
from foundry.fleet.load import load_fleet
from foundry.manifests.resolve import ResolvedInstance
from tests.conftest import AGENTS_DIR
from tests.foundry.manifest_edits import edit, entries, env_manifest


class YamlGolden(SingleFileSnapshotExtension):
    _write_mode = WriteMode.BINARY
    file_extension = "yaml"


class JsonGolden(SingleFileSnapshotExtension):
    _write_mode = WriteMode.BINARY
    file_extension = "json"


EXAMPLE = load_fleet(AGENTS_DIR)
IDS = [f"{i.environment}-{i.key.selector.replace('/', '-')}" for i in EXAMPLE.instances]


@pytest.fixture(params=EXAMPLE.instances, ids=IDS)
def instance(request: pytest.FixtureRequest) -> ResolvedInstance:
    found: ResolvedInstance = request.param
    return found


def test_instance_manifest_matches_its_golden_file(instance: ResolvedInstance, snapshot: SnapshotAssertion) -> None:
    assert build_bundle(instance).files[INSTANCE_FILE] == snapshot(extension_class=YamlGolden)


def test_graph_definition_matches_its_golden_file(instance: ResolvedInstance, snapshot: SnapshotAssertion) -> None:
    assert build_bundle(instance).files[GRAPH_FILE] == snapshot(extension_class=JsonGolden)


def test_mcp_tool_config_matches_its_golden_file(instance: ResolvedInstance, snapshot: SnapshotAssertion) -> None:
    assert build_bundle(instance).files[MCP_FILE] == snapshot(extension_class=JsonGolden)


def test_example_fleet_content_hashes_are_pinned(snapshot: SnapshotAssertion) -> None:
    hashes = {f"{i.environment}/{i.key.selector}": build_bundle(i).content_hash for i in EXAMPLE.instances}
    assert hashes == snapshot


def test_example_fleet_spans_the_required_shape() -> None:
    environments = {i.environment for i in EXAMPLE.instances}
    organizations = {i.key.organization_id for i in EXAMPLE.instances}
    domains = {i.key.domain_id for i in EXAMPLE.instances}
    instance_ids = {i.key.instance_id for i in EXAMPLE.instances}
    workers = {a.agent_id for i in EXAMPLE.instances for a in i.manifest.spec.custom_agents}
    assert environments == {"dev", "staging", "prod"}
    assert len(organizations) >= 2 and len(domains) >= 3 and len(EXAMPLE.instances) >= 6
    assert {"dev", "us-east-1", "tenant-123"} <= instance_ids
    assert workers == {"pm-agent", "ticket-agent", "qa-agent"}


def test_two_runs_give_byte_identical_bundles_and_equal_hashes() -> None:
    first = [build_bundle(i) for i in load_fleet(AGENTS_DIR).instances]
    second = [build_bundle(i) for i in load_fleet(AGENTS_DIR).instances]
    assert [b.archive for b in first] == [b.archive for b in second]
    assert [b.content_hash for b in first] == [b.content_hash for b in second]
    assert len({b.content_hash for b in first}) == len(first), "every instance has its own bundle"


def test_entry_order_does_not_change_any_output(agents_copy: Path) -> None:
    edit(env_manifest(agents_copy, "prod"), lambda d: random.Random(7).shuffle(entries(d)))
    shuffled = {i.key: build_bundle(i).files[INSTANCE_FILE] for i in load_fleet(agents_copy).instances}
    original = {i.key: build_bundle(i).files[INSTANCE_FILE] for i in EXAMPLE.instances}
    assert shuffled == original


def test_a_spec_edit_changes_only_the_bundles_that_use_it(agents_copy: Path) -> None:
    edit(agents_copy / "specs/workers/qa-agent.yaml", lambda d: d["spec"].update(prompt="You test things."))
    before = {(i.environment, i.key): build_bundle(i).content_hash for i in EXAMPLE.instances}
    after = {(i.environment, i.key): build_bundle(i).content_hash for i in load_fleet(agents_copy).instances}
    uses_qa = {
        (i.environment, i.key)
        for i in EXAMPLE.instances
        if any(a.agent_id == "qa-agent" for a in i.manifest.spec.agents)
    }
    changed = {k for k in before if before[k] != after[k]}
    assert changed == uses_qa and changed


def test_deploy_overrides_apply_in_file_order() -> None:
    sizes = {(i.environment, i.key.selector): i.manifest.spec.deploy for i in EXAMPLE.instances}
    assert sizes[("dev", "acme/retail/dev")].cpu == 256
    assert sizes[("staging", "acme/retail/us-east-1")].max_tasks == 3
    prod_tenant = sizes[("prod", "globex/support/tenant-123")]
    assert (prod_tenant.cpu, prod_tenant.min_tasks, prod_tenant.max_tasks) == (1024, 2, 10)


def test_secret_names_come_from_the_specs_and_never_values() -> None:
    by_key = {(i.environment, i.key.selector): i for i in EXAMPLE.instances}
    with_ticket = by_key[("prod", "acme/retail/us-east-1")]
    without_ticket = by_key[("prod", "globex/billing/eu-west-1")]
    assert with_ticket.manifest.spec.secrets == ["ticket-api-token"]
    assert without_ticket.manifest.spec.secrets == []
