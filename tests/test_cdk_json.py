"""cdk.json runs the app optimised (`python -O`), for a reason: jsii's Python-side argument checks (typeguard before
every aws-cdk-lib call) cost ~8 ms per instance stack of a fleet synth (benchmarks/RESULTS.md), and the jsii kernel
checks the same values again. `-O` also strips `assert`, so no guard of the app may be one: a bad manifest must still
fail the optimised app with an error that names what is wrong."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT


def app_argv() -> list[str]:
    argv = shlex.split(json.loads((REPO_ROOT / "cdk.json").read_text())["app"])
    assert argv[-1] == "app.py"
    return argv


def venv_env(**extra: str) -> dict[str, str]:
    path = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1", **extra}


def test_the_cdk_app_command_runs_python_optimised() -> None:
    """The same interpreter and flags cdk runs app.py with, asked how it was started."""
    probe = "import sys; print(sys.flags.optimize)"
    argv = app_argv()
    out = subprocess.run(
        [*argv[:-1], "-c", probe], cwd=REPO_ROOT, env=venv_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1", f"cdk.json runs {argv!r}: without -O every synth pays jsii's Python checks"


def test_the_optimised_app_still_refuses_a_bad_manifest_naming_it(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    shutil.copytree(REPO_ROOT / "agents", agents)
    manifest = agents / "manifests" / "manifest.dev.yaml"
    manifest.write_text(manifest.read_text().replace("apiVersion: agent-foundry/v1", "apiVersion: agent-foundry/v9"))
    context = json.dumps({"agentsDir": str(agents), "environment": "dev"})
    done = subprocess.run(
        app_argv(),
        cwd=REPO_ROOT,
        env=venv_env(CDK_OUTDIR=str(tmp_path / "out"), CDK_CONTEXT_JSON=context),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "manifest.dev.yaml" in done.stderr and "apiVersion" in done.stderr, done.stderr
    assert not any((tmp_path / "out").glob("*.template.json")), "nothing is synthesized from a bad manifest"
