"""`rollout --assembly`: what is refused before anything is synthesized or deployed (no AWS needed)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from foundry.cdk.process import ProcessRunner
from foundry.cli import main
from foundry.files.repo import REPO_ROOT
from foundry.manifests.platform_settings import RolloutPolicy
from foundry.rollout.assembly import RolloutAssemblyError, record
from foundry.rollout.command import Targets, _assembly
from foundry.rollout.scheduler import new_rollout
from foundry.rollout.state import RolloutStore
from foundry.state.sqlite_store import SqliteStateStore
from foundry.synth.assembly_set import AssemblySet, describe_assembly, open_assembly_set


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(
        ["rollout", "--environment", "dev", "--json", "--state-url", f"sqlite:///{tmp_path / 'state.db'}", *args]
    )
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


def _one_stack_set(root: Path) -> AssemblySet:
    folder = root / "app"
    folder.mkdir(parents=True)
    artifact = {"type": "aws:cloudformation:stack", "properties": {"templateFile": "t.template.json"}}
    (folder / "manifest.json").write_text(json.dumps({"artifacts": {"af-dev-acme-retail-dev": artifact}}))
    (folder / "t.template.json").write_text("{}")
    made = AssemblySet(root=root, assemblies={"app": describe_assembly(root, "app")}, shards=None, indexed=True)
    made.write_index()
    return made


def test_a_resume_takes_the_recorded_assembly_from_another_folder_only_with_the_same_digest(tmp_path):
    first = _one_stack_set(tmp_path / "runner-a")
    rollout = new_rollout(
        environment="dev",
        change_id="c1",
        change="test",
        policy=RolloutPolicy(),
        waves=[["acme/retail/dev"]],
        stacks={"acme/retail/dev": "af-dev-acme-retail-dev"},
    )
    record(rollout, first, REPO_ROOT / "agents", synthesized=True)  # as if runner-a's rollout synthesized it
    shutil.copytree(tmp_path / "runner-a", tmp_path / "runner-b")
    shutil.rmtree(tmp_path / "runner-a")
    store = RolloutStore(SqliteStateStore(tmp_path / "state.db"))
    args = argparse.Namespace(json=True, markdown=False, agents_dir=REPO_ROOT / "agents")
    runner = ProcessRunner(cwd=REPO_ROOT, env={})

    def targets(given: AssemblySet | None) -> Targets:
        return Targets([], {}, {}, "test", [], {}, assemblies=given)

    with store.hold("dev", "a test"):
        with pytest.raises(RolloutAssemblyError, match=r"started with is missing: .*runner-a"):
            _assembly(args, Console(), store, rollout, targets(None), runner)
        moved = open_assembly_set(tmp_path / "runner-b")
        assert _assembly(args, Console(), store, rollout, targets(moved), runner).root == tmp_path / "runner-b"
    saved = store.load("dev")
    assert saved is not None and saved.assembly == str(tmp_path / "runner-b")
    assert not saved.assembly_synthesized  # given now: the rollout never removes it
    assert runner.runs == {}  # nothing synthesized
