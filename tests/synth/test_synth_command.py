"""`python -m foundry synth` with the real CDK CLI: a sharded set holds exactly the unsharded synth's stacks,
template for template, the platform stacks once; adding an instance changes exactly one shard's assembly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from foundry.cdk.cloud_assembly import read_templates
from foundry.cdk.process import tool_environment
from foundry.fleet.shards import shard_of
from foundry.synth.assembly_set import open_assembly_set
from tests.deploy.git_repos import REPO_ROOT, new_git_repo
from tests.foundry.manifest_edits import add_instance

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"
TIMEOUT_S = 900


def foundry(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "foundry", *args]
    env = tool_environment(REPO_ROOT)
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def synth(agents: Path, out: Path, *extra: str) -> dict[str, Any]:
    done = foundry("synth", "--agents-dir", str(agents), "--out", str(out), "--runtime-image", IMAGE, "--json", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def set_templates(root: Path) -> dict[str, dict[str, Any]]:
    templates: dict[str, dict[str, Any]] = {}
    for name in open_assembly_set(root).assemblies:
        found = read_templates(root / name)
        assert not set(found) & set(templates), f"{name} repeats a stack"
        templates |= found
    return templates


@pytest.mark.slow
def test_shards_hold_the_unsharded_stacks_and_an_added_instance_changes_one_shard(tmp_path):
    repo = new_git_repo(tmp_path / "repo")
    whole = synth(repo.agents, tmp_path / "whole")
    assert whole["processes"] == 1 and list(whole["assemblies"]) == ["app"]
    sharded = synth(repo.agents, tmp_path / "sharded", "--shards", "3", "--jobs", "2")

    unsharded_templates = read_templates(tmp_path / "whole" / "app")
    assert set_templates(tmp_path / "sharded") == unsharded_templates
    index = open_assembly_set(tmp_path / "sharded")
    platforms = sorted(s for s in unsharded_templates if s.endswith("-platform"))
    assert list(index.assemblies["platform"].stacks) == platforms
    for name, entry in index.assemblies.items():
        if name != "platform":
            assert all(f"shard-{shard_of(s, 3)}" == name for s in entry.stacks)
    assert json.loads((tmp_path / "sharded" / "index.json").read_text())["stacks"] == index.stacks

    add_instance(repo.agents, "dev", "acme", "retail", "dev2", like=("acme", "retail", "dev"))
    placed = foundry("place", "--agents-dir", str(repo.agents), "--environment", "dev")
    assert placed.returncode == 0, placed.stderr
    grown = synth(repo.agents, tmp_path / "sharded", "--shards", "3", "--jobs", "2")  # replaces the earlier set
    new_stack = "af-dev-acme-retail-dev2"
    changed = {name for name in grown["assemblies"] if grown["assemblies"][name] != sharded["assemblies"].get(name)}
    shard = f"shard-{shard_of(new_stack, 3)}"
    assert changed == {shard}
    assert new_stack in open_assembly_set(tmp_path / "sharded").assemblies[shard].stacks
    assert grown["assemblies"][shard]["stacks"] == sharded["assemblies"].get(shard, {"stacks": 0})["stacks"] + 1


@pytest.mark.slow
def test_synth_refuses_to_replace_a_folder_it_did_not_write_and_names_a_bad_selector(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    done = foundry("synth", "--out", str(tmp_path / "mine"), "--environment", "dev", "--instances", "acme/retail/dev")
    assert done.returncode == 1 and "is not a cloud assembly (no index.json, no manifest.json)" in done.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    done = foundry("synth", "--out", str(tmp_path / "x"), "--instances", "acme/retail/dev")
    assert done.returncode == 2 and "give --environment ENV" in done.stderr
    done = foundry("synth", "--out", str(tmp_path / "y"), "--environment", "dev", "--instances", "no/such/one")
    assert done.returncode == 1 and "unknown instance(s) 'no/such/one'" in done.stderr
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.synth-*"))


def descendants(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(children)
            stack.extend(children)
    return found


@pytest.mark.slow
def test_a_stopped_synth_stops_its_cdk_processes_and_writes_nothing(tmp_path):
    argv = [sys.executable, "-m", "foundry", "synth", "--out", str(tmp_path / "out"), "--environment", "dev"]
    argv += ["--shards", "2", "--jobs", "2", "--runtime-image", IMAGE]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=tool_environment(REPO_ROOT), stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    deadline = time.monotonic() + 120
    while not any("app.py" in _cmdline(p) for p in started) and time.monotonic() < deadline:
        started |= descendants(process.pid)
        time.sleep(0.1)
    assert started, "no cdk process started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "stopped: no assembly was written" in stderr
    time.sleep(1)
    assert [p for p in started if _cmdline(p)] == []  # cdk, node, the app and jsii all stopped
    assert list(tmp_path.iterdir()) == []


def _cmdline(pid: int) -> str:
    """The process's command line; empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
