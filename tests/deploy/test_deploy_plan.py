"""`python -m foundry plan`: the fast path against real git repositories."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import tarfile
from typing import Any

import pytest

from foundry.cli import main
from tests.deploy.git_repos import REPO_ROOT, GitRepo, git


def run_plan(repo: GitRepo, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["plan", "--agents-dir", str(repo.agents), "--json", *args])
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, result


def kinds(plan: dict[str, Any], env: str) -> dict[str, str]:
    [found] = [e for e in plan["environments"] if e["environment"] == env]
    return {i["instance"]: i["kind"] for i in found["instances"]} | {"(platform)": found["platform"]["kind"]}


def env_plan(plan: dict[str, Any], env: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [e for e in plan["environments"] if e["environment"] == env]
    assert len(found) == 1
    return found[0]


def reasons_of(plan: dict[str, Any], env: str, instance: str) -> list[str]:
    [found] = [i for i in env_plan(plan, env)["instances"] if i["instance"] == instance]
    return list(found["reasons"])


def test_unchanged_working_tree_plans_nothing_and_exits_zero(git_repo, capsys):
    code, plan = run_plan(git_repo, capsys)
    assert code == 0
    assert plan["has_changes"] is False
    assert all(e["deploy_stacks"] == [] for e in plan["environments"])
    assert {e["environment"] for e in plan["environments"]} == {"dev", "staging", "prod"}


def test_changed_spec_changes_only_the_instances_that_use_it_and_names_the_file(git_repo, capsys):
    spec = git_repo.root / "agents/specs/workers/qa-agent.yaml"
    spec.write_text(spec.read_text().replace("temperature: 0.", "temperature: 0.0"), encoding="utf-8")
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    users = {
        (e["environment"], e["instance"])
        for e in ({"environment": env["environment"], **i} for env in plan["environments"] for i in env["instances"])
        if e["kind"] == "changed"
    }
    manifests = {
        env: (git_repo.agents / f"manifests/manifest.{env}.yaml").read_text() for env in ("dev", "staging", "prod")
    }
    assert users, "qa-agent is used by at least one instance"
    for env, instance in users:
        assert "qa-agent" in manifests[env]
        assert "spec agents/specs/workers/qa-agent.yaml changed" in reasons_of(plan, env, instance)
    dev = kinds(plan, "dev")
    assert dev["acme/retail/dev"] == "unchanged"  # acme's dev instance has no qa-agent
    assert dev["(platform)"] == "unchanged"


def test_deploy_override_changes_one_environment_and_reports_the_field(git_repo, capsys):
    def bump(doc: Any) -> None:
        doc["spec"]["deploy"]["overrides"][0]["max_tasks"] = 4  # the staging override

    git_repo.edit_yaml("agents/manifests/manifest.instance-template.yaml", bump)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    assert set(kinds(plan, "staging").values()) == {"changed", "unchanged"}
    assert kinds(plan, "staging")["(platform)"] == "unchanged"
    assert set(kinds(plan, "dev").values()) == {"unchanged"}
    assert set(kinds(plan, "prod").values()) == {"unchanged"}
    reason = reasons_of(plan, "staging", "acme/retail/us-east-1")[0]
    assert "agents/manifests/manifest.staging.yaml" in reason
    assert "spec.deploy.max_tasks 3 -> 4" in reason
    assert env_plan(plan, "staging")["deploy_stacks"] == [
        "af-staging-acme-retail-us-east-1",
        "af-staging-globex-support-us-east-1",
    ]


def test_new_and_removed_instances_are_added_and_removed_with_their_stacks(git_repo, capsys):
    def move(doc: Any) -> None:
        for entry in doc["spec"]["entries"]:
            if entry["organization_id"] == "acme":
                entry["instance_id"] = "dev2"

    git_repo.edit_yaml("agents/manifests/manifest.dev.yaml", move)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    dev = kinds(plan, "dev")
    assert dev["acme/retail/dev2"] == "added"
    assert dev["acme/retail/dev"] == "removed"
    assert dev["default-org/default-domain/dev"] == "unchanged"
    assert reasons_of(plan, "dev", "acme/retail/dev2") == ["new in agents/manifests/manifest.dev.yaml"]
    assert env_plan(plan, "dev")["deploy_stacks"] == ["af-dev-acme-retail-dev2"]
    assert env_plan(plan, "dev")["removed_stacks"] == ["af-dev-acme-retail-dev"]


def add_initech(doc: Any) -> None:
    """A new organization: a copy of acme's entries."""
    acme = [e for e in doc["spec"]["entries"] if e["organization_id"] == "acme"]
    doc["spec"]["entries"].extend(
        {**copy.deepcopy(e), "organization_id": "initech", "organization_name": "Initech"} for e in acme
    )


def test_a_new_organization_changes_the_platform_stack_whose_pool_gives_it_a_client(git_repo, capsys):
    """Its instances read their audience from the parameter the platform's new app client writes: platform first."""
    git_repo.edit_yaml("agents/manifests/manifest.staging.yaml", add_initech)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    staging = env_plan(plan, "staging")
    assert staging["platform"]["kind"] == "changed"
    assert staging["platform"]["reasons"] == [
        "agents/manifests/manifest.staging.yaml: Cognito app clients for organizations ['acme', 'globex'] -> "
        "['acme', 'globex', 'initech']"
    ]
    assert staging["deploy_stacks"][0] == "af-staging-platform"
    assert kinds(plan, "staging")["initech/retail/us-east-1"] == "added"


def test_a_new_organization_where_no_platform_pool_exists_changes_no_platform_stack(git_repo, capsys):
    git_repo.edit_yaml("agents/manifests/manifest.dev.yaml", add_initech)  # dev: auth mode none, no pool
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    assert env_plan(plan, "dev")["platform"]["kind"] == "unchanged"


def test_platform_settings_change_the_platform_stack_and_every_instance_of_that_environment(git_repo, capsys):
    def retention(doc: Any) -> None:
        doc["spec"]["environments"]["dev"]["log_retention_days"] = 14

    git_repo.edit_yaml("agents/platform.yaml", retention)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    assert set(kinds(plan, "dev").values()) == {"changed"}
    assert env_plan(plan, "dev")["platform"]["reasons"] == [
        "agents/platform.yaml: spec.environments.dev.log_retention_days 7 -> 14"
    ]
    assert env_plan(plan, "dev")["deploy_stacks"][0] == "af-dev-platform"
    assert set(kinds(plan, "prod").values()) == {"unchanged"}


def test_moved_placement_slot_changes_the_instance_and_names_the_placement_file(git_repo, capsys):
    def swap(doc: Any) -> None:
        slots = doc["spec"]["slots"]
        slots[0]["priority"], slots[1]["priority"] = slots[1]["priority"], slots[0]["priority"]

    git_repo.edit_yaml("agents/placement/dev.yaml", swap)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    reasons = reasons_of(plan, "dev", "acme/retail/dev")
    assert any(
        r.startswith("agents/placement/dev.yaml: slot shard 0 priority 1 -> shard 0 priority 2") for r in reasons
    )


def test_cdk_code_change_says_every_template_may_change_and_recommends_templates(git_repo, capsys):
    git_repo.write("stacks/af_new_construct.py", "VALUE = 1\n")
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    assert plan["cdk_code_changed"] == ["stacks/af_new_construct.py"]
    assert plan["recommend_templates"] is True
    for env in ("dev", "staging", "prod"):
        assert set(kinds(plan, env).values()) == {"changed"}
    assert reasons_of(plan, "prod", "globex/support/tenant-123")[0].startswith(
        "template may change: CDK code changed (stacks/af_new_construct.py)"
    )


def test_changes_outside_agents_and_cdk_code_plan_nothing(git_repo, capsys):
    git_repo.write("docs/notes.md", "# notes\n")
    code, plan = run_plan(git_repo, capsys)
    assert (code, plan["has_changes"], plan["cdk_code_changed"]) == (0, False, [])


def test_committed_changes_are_planned_against_an_older_base_revision(git_repo, capsys):
    first = git(git_repo.root, "rev-parse", "HEAD")

    def bump(doc: Any) -> None:
        doc["spec"]["deploy"]["overrides"][1]["memory"] = 4096  # prod

    git_repo.edit_yaml("agents/manifests/manifest.instance-template.yaml", bump)
    git_repo.commit("bigger prod")
    assert run_plan(git_repo, capsys)[0] == 0  # HEAD is the working tree
    code, plan = run_plan(git_repo, capsys, "--base", first)
    assert code == 1
    assert set(kinds(plan, "prod").values()) == {"changed", "unchanged"}
    assert kinds(plan, "prod")["(platform)"] == "unchanged"


def test_base_without_agents_directory_adds_every_instance(git_repo, capsys):
    git(git_repo.root, "checkout", "-q", "--orphan", "empty")
    git(git_repo.root, "rm", "-rq", "--cached", ".")
    git(git_repo.root, "commit", "-q", "--allow-empty", "-m", "empty")
    empty = git(git_repo.root, "rev-parse", "HEAD")
    code, plan = run_plan(git_repo, capsys, "--base", empty)
    assert code == 1
    for env in ("dev", "staging", "prod"):
        assert set(kinds(plan, env).values()) == {"added"}


def test_base_revision_is_read_by_its_own_code(git_repo, capsys):
    """A bundle at the base revision is what that revision's bundle builder made, not today's."""
    for package in ("foundry", "instance_contract"):  # foundry imports the shared models from instance_contract
        shutil.copytree(REPO_ROOT / package, git_repo.root / package, ignore=shutil.ignore_patterns("__pycache__"))
    render = git_repo.root / "foundry/bundles/render.py"
    original = render.read_text()
    render.write_text(original.replace('HEADER = "# Generated', 'HEADER = "# Old header. Generated'))
    git_repo.commit("vendored foundry with an older header")
    render.write_text(original)
    code, plan = run_plan(git_repo, capsys)
    assert code == 1
    assert "bundle file instance.yaml changed" in reasons_of(plan, "dev", "acme/retail/dev")
    assert plan["cdk_code_changed"] == ["foundry/bundles/render.py"]


FLAT_LAYOUT_REVISION = "637f4ab1860211e7c10489ba060bde25a9e7f924"
"""The last commit of this repository whose `foundry/` was one flat folder (before its subpackages)."""


def test_a_base_revision_from_before_the_subpackages_is_read_by_its_own_flat_code(git_repo, capsys):
    """`plan --base origin/main` keeps working across the change that moved foundry/ into subpackages: the base's
    own code (foundry/bundle.py, foundry/fleet.py, ...) builds the base's bundles."""
    try:
        git(REPO_ROOT, "cat-file", "-e", f"{FLAT_LAYOUT_REVISION}^{{commit}}")
    except subprocess.CalledProcessError:
        pytest.skip(f"this clone lacks {FLAT_LAYOUT_REVISION} (a shallow clone); a full clone runs this test")
    shutil.rmtree(git_repo.agents)
    archive = subprocess.run(
        ["git", "archive", FLAT_LAYOUT_REVISION, "foundry", "instance_contract", "agents"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(git_repo.root, filter="data")
    assert (git_repo.root / "foundry/bundle.py").is_file(), "the base revision has the flat layout"
    base = git_repo.commit("the fleet and its flat foundry/")
    shutil.rmtree(git_repo.agents)
    shutil.copytree(REPO_ROOT / "agents", git_repo.agents, ignore=shutil.ignore_patterns("schemas"))
    code, plan = run_plan(git_repo, capsys, "--base", base)
    assert code in (0, 1), plan
    assert plan["ok"] is True
    assert "acme/retail/dev" in kinds(plan, "dev")


def test_unknown_base_revision_is_an_error_with_exit_code_two(git_repo, capsys):
    code, result = run_plan(git_repo, capsys, "--base", "no-such-branch")
    assert code == 2
    assert result["ok"] is False
    assert "unknown git revision 'no-such-branch'" in result["error"]


def test_invalid_manifests_at_the_base_revision_are_an_error_naming_the_revision(git_repo, capsys):
    (git_repo.agents / "platform.yaml").write_text("apiVersion: agent-foundry/v1\nkind: PlatformSettings\n")
    git_repo.commit("broken")
    git(git_repo.root, "revert", "--no-edit", "HEAD")
    code, result = run_plan(git_repo, capsys, "--base", "HEAD~1")
    assert code == 2
    assert "revision HEAD~1" in result["error"]
    assert "platform.yaml" in result["error"]


def test_table_for_people_lists_changes_and_the_stacks_to_deploy(git_repo, capsys):
    def retention(doc: Any) -> None:
        doc["spec"]["environments"]["staging"]["log_retention_days"] = 60

    git_repo.edit_yaml("agents/platform.yaml", retention)
    code = main(["plan", "--agents-dir", str(git_repo.agents)])
    out = capsys.readouterr().out
    assert code == 1
    assert "staging: 0 added, 2 changed, 0 removed, 0 unchanged" in out
    assert "deploy: af-staging-platform af-staging-acme-retail-us-east-1 af-staging-globex-support-us-east-1" in out
    assert "dev: 0 added, 0 changed, 0 removed, 2 unchanged" in out
    assert out.rstrip().endswith("changes: yes")


def test_markdown_table_is_ready_for_a_job_summary(git_repo, capsys):
    git_repo.write("app.py", "print('app')\n")
    code = main(["plan", "--agents-dir", str(git_repo.agents), "--markdown"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("## Change plan: HEAD")
    assert "| change | instance | stack | why |" in out
    assert "Deploy: `af-dev-platform af-dev-acme-retail-dev af-dev-default-org-default-domain-dev`" in out


TINY_APP = '''
"""A tiny CDK app with the fleet's dev stack names; its templates change only where a test says."""
import aws_cdk as cdk

app = cdk.App()
for name in ["af-dev-platform", "af-dev-acme-retail-dev", "af-dev-default-org-default-domain-dev"]:
    stack = cdk.Stack(app, name, synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False))
    cdk.CfnOutput(stack, "Marker", value=MARKERS.get(name, "v1"))
app.synth()
'''


@pytest.mark.slow
def test_templates_mode_synthesizes_both_revisions_and_keeps_only_real_template_changes(git_repo, capsys):
    git_repo.write("cdk.json", '{"app": "python app.py"}\n')
    git_repo.write("app.py", "MARKERS = {}\n" + TINY_APP)
    git_repo.commit("tiny app")
    git_repo.write("app.py", "# a comment changes no template\nMARKERS = {'af-dev-acme-retail-dev': 'v2'}\n" + TINY_APP)
    code, fast = run_plan(git_repo, capsys, "--environment", "dev")
    assert (code, fast["recommend_templates"]) == (1, True)
    assert set(kinds(fast, "dev").values()) == {"changed"}
    code, plan = run_plan(git_repo, capsys, "--environment", "dev", "--templates")
    assert code == 1
    assert plan["mode"] == "templates"
    assert kinds(plan, "dev") == {
        "(platform)": "unchanged",
        "acme/retail/dev": "changed",
        "default-org/default-domain/dev": "unchanged",
    }
    assert reasons_of(plan, "dev", "acme/retail/dev") == ["template: Outputs.Marker.Value changed"]
    assert env_plan(plan, "dev")["deploy_stacks"] == ["af-dev-acme-retail-dev"]


def test_a_rollout_policy_change_changes_no_stack(git_repo, capsys):
    """The rollout block steers how a change is deployed; no template reads it."""

    def slower(data: Any) -> None:
        data["spec"]["environments"]["prod"]["rollout"]["bake_seconds"] = 3600

    git_repo.edit_yaml("agents/platform.yaml", slower)
    code, plan = run_plan(git_repo, capsys)
    assert code == 0
    assert kinds(plan, "prod")["(platform)"] == "unchanged"
