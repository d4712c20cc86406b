"""The manifest schema: the design's own document loads, JSON Schemas are current, the runtime can import it."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from foundry.json_schemas import schemas
from foundry.loader import validate_document
from foundry.safe_yaml import parse_yaml
from foundry.schema import AgentManifest
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
    code = "import sys, foundry.schema, foundry.bundle; print(any(m.startswith('aws_cdk') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
