"""Deeply nested YAML is a clear error naming the file and line on every path that reads manifests (the CLI and the
CDK app in real subprocesses, the loader, the Foundry MCP server), never a crash: libyaml's composer recurses in C, and
80 KB of `[[[...]]]` used to kill the process with a segmentation fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from foundry.aws.clients import boto3_clients
from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import InstanceLocks
from foundry.files.safe_yaml import YamlError, parse_yaml
from foundry.fleet.load import load_fleet
from foundry.manifests.problems import ManifestError
from foundry.mcp.server import FoundryConfig, build_server
from instance_contract.yaml_nesting import MAX_DEPTH
from tests.conftest import REPO_ROOT

SPEC = "specs/workers/pm-agent.yaml"
DEEP = 40_000
SAYS = f"nested more than {MAX_DEPTH} levels deep"


def _plant(agents: Path) -> Path:
    """The issue's file: `[[[...]]]` 40,000 deep (80 KB) in place of an agent spec."""
    path = agents / SPEC
    path.write_text("[" * DEEP + "]" * DEEP + "\n")
    return path


def test_validate_in_a_subprocess_reports_file_and_line_instead_of_crashing(agents_copy: Path) -> None:
    _plant(agents_copy)
    result = subprocess.run(
        [sys.executable, "-m", "foundry", "validate", "--agents-dir", str(agents_copy)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # -11 was the segfault
    assert "Traceback" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if SAYS in line)
    assert f"{SPEC}:1:" in line


def test_the_cdk_app_exits_1_naming_file_and_line(agents_copy: Path, tmp_path: Path) -> None:
    """app.py as the CDK CLI runs it (the context comes in CDK_CONTEXT_JSON), before any stack is built."""
    _plant(agents_copy)
    context = json.dumps({"agentsDir": str(agents_copy)})
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": context, "CDK_OUTDIR": str(tmp_path / "cdk.out")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f"{SPEC}:1:" in result.stderr and SAYS in result.stderr and "Traceback" not in result.stderr


def test_the_loader_synth_uses_reports_the_file_and_line(agents_copy: Path) -> None:
    _plant(agents_copy)
    with pytest.raises(ManifestError) as caught:
        load_fleet(agents_copy, cache_dir=None)
    (problem,) = [p for p in caught.value.problems if SAYS in p.message]
    assert problem.file.endswith(SPEC) and problem.line == 1


async def test_the_foundry_mcp_server_answers_with_the_problem_and_keeps_serving(
    agents_copy: Path, tmp_path: Path
) -> None:
    _plant(agents_copy)
    runner = ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))
    deployer = Deployer(
        repo_root=REPO_ROOT, runner=runner, locks=InstanceLocks(), work_root=tmp_path / "deploys", clients=boto3_clients
    )
    server = build_server(
        FoundryConfig(repo_root=REPO_ROOT, agents_dir=agents_copy, deployer=deployer, clients=boto3_clients, probe=None)
    )
    async with Client(server) as client:
        refused = await client.call_tool("foundry.list_agents", {})
        listed = await client.call_tool("foundry.list_agents", {"agents_dir": "agents"})
    assert refused.is_error
    text = " ".join(getattr(c, "text", "") for c in refused.content)
    assert SAYS in text and "pm-agent.yaml" in text
    assert not listed.is_error


def test_the_line_is_that_of_the_first_collection_past_the_bound() -> None:
    flow = "[" * 200 + "]" * 200
    text = f"apiVersion: agent-foundry/v1\nspec:\n  a:\n    b:\n      ok: [[1]]\n      c: {flow}\n"
    with pytest.raises(YamlError) as caught:
        parse_yaml(text.encode())
    assert SAYS in caught.value.message and caught.value.line == 6


def test_nesting_up_to_the_bound_is_accepted() -> None:
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse_yaml(f"a: {inner}\n".encode()).data["a"] is not None
