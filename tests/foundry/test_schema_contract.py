"""The manifest schema: the design's own documents load, JSON Schemas are current, the runtime can import it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from foundry.files.safe_yaml import parse_yaml
from foundry.fleet.load import load_fleet
from foundry.manifests.json_schemas import schemas
from foundry.manifests.loader import validate_document
from foundry.manifests.problems import ManifestError, Problem
from foundry.manifests.schema import DEFAULT_DEPLOY, AgentInstanceTemplate, AgentManifest, RequestLimits
from tests.conftest import AGENTS_DIR, REPO_ROOT

DESIGN_DOCUMENT = b"""\
apiVersion: agent-foundry/v1
kind: AgentManifest
metadata:
  description: Dev environment manifest for all system agents
  generated_at: '2025-11-16T00:00:00Z'
  version: '0.1.0'
spec:
  entries:
    - agent_id: io-agent
      yaml_path: dev_io_agent.yaml
      organization_id: default-org
      organization_name: Default Organization
      domain_id: default-domain
      domain_name: Default Domain
      environment: dev
      instance_id: dev
      is_system_agent: true
      system_tier: 0
      version: '0.8.0'
      author: system
      last_editor: system
      tags: [platform, io, adapter]
"""

DESIGN_TEMPLATE = b"""\
apiVersion: agent-foundry/v1
kind: AgentInstanceTemplate
metadata:
  description: Every instance runs the seven system agents
  version: '0.1.0'
spec:
  system_agents:
    - agent_id: io-agent
    - agent_id: supervisor-agent
    - agent_id: context-agent
    - agent_id: coherence-agent
    - agent_id: exception-agent
    - agent_id: observability-agent
    - agent_id: governance-agent
"""
"""The design document's instance template: system agents by agent_id only, no deploy section."""


def test_the_design_documents_manifest_loads_as_is() -> None:
    model = validate_document("design.yaml", parse_yaml(DESIGN_DOCUMENT), AgentManifest)
    assert isinstance(model, AgentManifest)
    assert model.spec.entries[0].tags == ["platform", "io", "adapter"]


def test_committed_json_schemas_are_current() -> None:
    committed = {p.name: p.read_bytes() for p in (AGENTS_DIR / "schemas").glob("*.schema.json")}
    assert committed == schemas(), "run `python -m foundry schema` and commit agents/schemas/"


@pytest.mark.parametrize(
    ("file", "schema"),
    [
        ("manifests/manifest.dev.yaml", "agent-manifest.schema.json"),
        ("manifests/manifest.instance-template.yaml", "agent-instance-template.schema.json"),
        ("specs/workers/pm-agent.yaml", "agent-spec.schema.json"),
        ("platform.yaml", "platform-settings.schema.json"),
    ],
)
def test_example_files_pass_their_json_schema(file: str, schema: str) -> None:
    document = parse_yaml((AGENTS_DIR / file).read_bytes()).data
    jsonschema.validate(document, json.loads(schemas()[schema]))


def test_json_schema_rejects_what_the_model_rejects() -> None:
    document = parse_yaml(DESIGN_DOCUMENT).data
    document["spec"]["entries"][0]["colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(schemas()["agent-manifest.schema.json"]))


def test_the_schema_module_imports_without_aws_cdk() -> None:
    code = (
        "import sys, foundry.manifests.schema, foundry.bundles.archive; "
        "print(any(m.startswith('aws_cdk') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_design_documents_instance_template_loads_as_is_with_roles_from_the_well_known_ids() -> None:
    model = validate_document("template.yaml", parse_yaml(DESIGN_TEMPLATE), AgentInstanceTemplate)
    assert isinstance(model, AgentInstanceTemplate), model
    roles = {a.agent_id: a.system_role for a in model.spec.system_agents}
    assert roles == {
        "io-agent": "io",
        "supervisor-agent": "supervisor",
        "context-agent": "context",
        "coherence-agent": "coherence",
        "exception-agent": "exception",
        "observability-agent": "observability",
        "governance-agent": "governance",
    }
    assert model.spec.deploy.defaults == DEFAULT_DEPLOY and model.spec.deploy.overrides == []
    assert model.spec.limits == RequestLimits()
    jsonschema.validate(parse_yaml(DESIGN_TEMPLATE).data, json.loads(schemas()["agent-instance-template.schema.json"]))


def _template_problems(replace: bytes, by: bytes) -> list[Problem]:
    document = DESIGN_TEMPLATE.replace(replace, by)
    assert document != DESIGN_TEMPLATE
    result = validate_document("template.yaml", parse_yaml(document), AgentInstanceTemplate)
    assert isinstance(result, list), "the template should have been refused"
    return result


def test_a_system_agent_with_an_unknown_id_and_no_role_is_an_error_naming_it() -> None:
    problems = _template_problems(b"agent_id: io-agent", b"agent_id: front-door")
    named = [p for p in problems if "'front-door'" in p.message]
    assert len(named) == 1, problems
    assert named[0].field == "spec.system_agents[0]" and named[0].line == 8
    assert "not a well-known system agent id" in named[0].message and "give its role" in named[0].message


def test_an_unknown_id_with_its_role_is_accepted_and_a_role_contradicting_a_well_known_id_is_not() -> None:
    renamed = DESIGN_TEMPLATE.replace(b"agent_id: io-agent", b"agent_id: front-door\n      role: io")
    model = validate_document("template.yaml", parse_yaml(renamed), AgentInstanceTemplate)
    assert isinstance(model, AgentInstanceTemplate), model
    (problem,) = _template_problems(b"agent_id: io-agent", b"agent_id: io-agent\n      role: supervisor")
    assert "'io-agent' is the well-known id of the io agent; role 'supervisor' contradicts it" in problem.message


def _design_tree(agents_copy: Path, *, generated_at: str | None = None) -> Path:
    """The design document's two examples dropped into agents/manifests/ as the only manifests."""
    manifests = agents_copy / "manifests"
    for old in manifests.glob("manifest.*.yaml"):
        old.unlink()
    (manifests / "manifest.instance-template.yaml").write_bytes(DESIGN_TEMPLATE)
    document = DESIGN_DOCUMENT
    if generated_at is not None:
        document = document.replace(b"'2025-11-16T00:00:00Z'", generated_at.encode())
    (manifests / "manifest.dev.yaml").write_bytes(document)
    return agents_copy


def _problems(agents: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_fleet(agents, cache_dir=None)
    return list(caught.value.problems)


def test_the_design_documents_examples_in_agents_report_only_what_they_truly_lack(agents_copy: Path) -> None:
    problems = _problems(_design_tree(agents_copy))
    manifest = str(agents_copy / "manifests" / "manifest.dev.yaml")
    assert [(p.file, p.entry, p.field) for p in problems] == [
        (manifest, "entry 0 (io-agent)", "spec.entries[0]"),
        (manifest, "entry 0 (io-agent)", "spec.entries[0].yaml_path"),
    ], problems
    lacking, no_spec = problems
    assert lacking.message == (
        "instance default-org/default-domain/dev lacks system agents the template requires: supervisor-agent, "
        "context-agent, coherence-agent, exception-agent, observability-agent, governance-agent"
    )
    assert "'dev_io_agent.yaml' does not exist" in no_spec.message


def test_generated_at_yesterday_is_an_error_naming_the_file_and_the_field(agents_copy: Path) -> None:
    (problem,) = _problems(_design_tree(agents_copy, generated_at="yesterday"))
    assert problem.file == str(agents_copy / "manifests" / "manifest.dev.yaml")
    assert problem.field == "metadata.generated_at" and problem.line == 5
    assert problem.message.startswith("found 'yesterday'; expected an RFC 3339 timestamp with a time zone")


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("'2025-11-16T00:00:00Z'", True),
        ("'2025-11-16T09:30:00.125+05:30'", True),
        ("2025-11-16T00:00:00Z", True),  # unquoted: YAML makes it a timestamp with a time zone
        ("'2025-11-16T00:00:00'", False),  # no time zone
        ("2025-11-16 00:00:00", False),  # unquoted, no time zone
        ("'2025-11-16'", False),
        ("2025-11-16", False),
        ("'2025-02-30T00:00:00Z'", False),  # not a calendar date
        ("'20251116T000000Z'", False),  # ISO 8601 basic format is not RFC 3339
    ],
)
def test_generated_at_must_be_an_rfc_3339_timestamp_with_a_time_zone(value: str, accepted: bool) -> None:
    document = DESIGN_DOCUMENT.replace(b"'2025-11-16T00:00:00Z'", value.encode())
    result = validate_document("design.yaml", parse_yaml(document), AgentManifest)
    if accepted:
        assert isinstance(result, AgentManifest), result
    else:
        assert isinstance(result, list) and [p.field for p in result] == ["metadata.generated_at"], result
