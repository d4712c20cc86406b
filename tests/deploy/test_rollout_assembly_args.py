"""`rollout --assembly`: what is refused before anything is synthesized or deployed (no AWS needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from foundry.cli import main
from foundry.synth.assembly_set import AssemblySet, describe_assembly


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["rollout", "--environment", "dev", "--json", "--state-dir", str(tmp_path / "state"), *args])
    return code, json.loads(capsys.readouterr().out)


def test_an_assembly_goes_with_neither_a_runtime_image_nor_a_simulation(capsys, tmp_path):
    code, out = run(capsys, tmp_path, "--assembly", str(tmp_path), "--runtime-image", "x/y:1")
    assert code == 2 and "the assembly already fixes the runtime image" in out["error"]
    code, out = run(capsys, tmp_path, "--assembly", str(tmp_path), "--simulate")
    assert code == 2 and "--simulate deploys nothing" in out["error"]


def test_a_missing_or_foreign_assembly_is_named(capsys, tmp_path):
    code, out = run(capsys, tmp_path, "--assembly", str(tmp_path / "nowhere"))
    assert code == 2 and f"--assembly: the cloud assembly {tmp_path / 'nowhere'} does not exist" in out["error"]
    (tmp_path / "notes").mkdir()
    code, out = run(capsys, tmp_path, "--assembly", str(tmp_path / "notes"))
    assert code == 2 and "is not a cloud assembly: it has neither index.json" in out["error"]


def test_an_assembly_without_a_stack_the_plan_deploys_is_refused_naming_it(capsys, tmp_path):
    folder = tmp_path / "set" / "platform"
    folder.mkdir(parents=True)
    artifact = {"type": "aws:cloudformation:stack", "properties": {"templateFile": "p.template.json"}}
    (folder / "manifest.json").write_text(json.dumps({"artifacts": {"af-dev-platform": artifact}}))
    (folder / "p.template.json").write_text("{}")
    entry = describe_assembly(tmp_path / "set", "platform")
    AssemblySet(root=tmp_path / "set", assemblies={"platform": entry}, shards=None, indexed=True).write_index()
    plan = {"environments": [{"environment": "dev", "instances": [{"instance": "acme/retail/dev", "kind": "added"}]}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, out = run(capsys, tmp_path, "--assembly", str(tmp_path / "set"), "--plan", str(tmp_path / "plan.json"))
    assert code == 2
    assert "does not hold 1 stack(s) this rollout must deploy: af-dev-acme-retail-dev" in out["error"]
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").rglob("*.json"))
