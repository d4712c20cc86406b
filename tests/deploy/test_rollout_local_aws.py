"""`python -m foundry rollout` for real: the CLI in a subprocess, the real CDK CLI, moto's server as the AWS.

moto keeps ECS services, target groups and DNS as records and runs no container, so the rollout runs with
`--health records`: the gate reads the stack (complete, no rollback) and the ECS service (ACTIVE) through
`foundry.aws.instance_status`, and says in the report what it could not read there (tasks, targets, the probe).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from foundry.cdk.cloud_assembly import read_templates
from foundry.cdk.process import tool_environment
from foundry.local.aws import LocalAws, default_runtime_image
from foundry.local.server import ServerState, aws_environment, using_aws_environment
from tests.deploy.git_repos import REPO_ROOT, new_git_repo

TIMEOUT_S = 900
BLOCKED = "default-org/default-domain/dev"


@pytest.fixture
def local_aws(tmp_path: Path) -> Iterator[LocalAws]:
    local = LocalAws(state_dir=tmp_path / "local-aws", agents_dir=REPO_ROOT / "agents", cdk_timeout_s=TIMEOUT_S)
    try:
        yield local
    finally:
        local.down()


def rollout(state: ServerState, state_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """`extra` with `--assembly DIR` deploys that assembly (whose runtime image was fixed when it was synthesized)."""
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    if "--assembly" not in extra:
        # The environment's own ECR: the allowed default.
        argv += ["--runtime-image", default_runtime_image(state.account, state.region)]
    argv += ["--cdk-method", "direct", "--bake-seconds", "15", *extra]
    argv += ["--state-dir", str(state_dir), "--json"]
    env = tool_environment(REPO_ROOT, aws_environment(state))
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def take_listener_priority(state: ServerState, selector: str) -> tuple[str, str]:
    """A hand-made listener rule on the instance's shard, at the instance's priority: its stack cannot create."""
    slots = yaml.safe_load((REPO_ROOT / "agents" / "placement" / "dev.yaml").read_text())["spec"]["slots"]
    [slot] = [s for s in slots if s["instance"] == selector]
    with using_aws_environment(aws_environment(state)):
        elbv2 = boto3.client("elbv2", region_name=state.region)
        balancers = elbv2.describe_load_balancers()["LoadBalancers"]
        assert slot["shard"] == 0 and len(balancers) == 1
        [listener] = elbv2.describe_listeners(LoadBalancerArn=balancers[0]["LoadBalancerArn"])["Listeners"]
        group = elbv2.create_target_group(
            Name="hand-made", Protocol="HTTP", Port=80, VpcId=balancers[0]["VpcId"], TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        rule = elbv2.create_rule(
            ListenerArn=listener["ListenerArn"],
            Priority=slot["priority"],
            Conditions=[{"Field": "host-header", "Values": ["hand-made.example"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": group}],
        )["Rules"][0]["RuleArn"]
    return rule, group


@pytest.mark.slow
def test_dev_fleet_rolls_out_in_two_waves_halts_at_a_stack_that_cannot_create_and_resumes_after_the_fix(
    local_aws, tmp_path
):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    rule, group = take_listener_priority(state, BLOCKED)

    code, report = rollout(state, tmp_path / "rollouts")
    assert code == 1, report
    assert [w["size"] for w in report["waves"]] == [1, 1]
    rows = {r["instance"]: r for r in report["instances"]}
    assert rows["acme/retail/dev"] | {"reason": None} == {
        "instance": "acme/retail/dev",
        "stack": "af-dev-acme-retail-dev",
        "wave": 1,
        "state": "deployed",
        "reason": None,
        "deploys": 1,
    }
    assert rows[BLOCKED]["wave"] == 2 and rows[BLOCKED]["state"] == "failed"
    assert "PriorityInUse" in rows[BLOCKED]["reason"]
    assert report["halted_wave"] == 2 and report["status"] == "halted"
    assert report["totals"] == {"instances": 2, "deployed": 1, "failed": 1, "rolled_back": 0, "not_started": 0}
    assert any("no container runs" in note for note in report["notes"])
    # The change was synthesized once, before the canary, into the rollout's state folder; no deploy synthesized.
    assert report["cdk_runs"] == {"deploy": 2, "synth": 1}
    assembly = Path(report["assembly"])
    assert assembly.parent == tmp_path / "rollouts" / "assemblies" and report["assembly_digest"].startswith("sha256:")
    assert report["git_revision"] and len(report["git_revision"].removesuffix("-dirty")) == 40

    with using_aws_environment(aws_environment(state)):
        # The fix: the hand-made rule goes, and so does the half-created stack (real CloudFormation leaves a failed
        # create in ROLLBACK_COMPLETE, which cdk replaces by itself; moto leaves it CREATE_IN_PROGRESS for good).
        elbv2 = boto3.client("elbv2", region_name=state.region)
        elbv2.delete_rule(RuleArn=rule)
        elbv2.delete_target_group(TargetGroupArn=group)
        cloudformation = boto3.client("cloudformation", region_name=state.region)
        cloudformation.delete_stack(StackName=rows[BLOCKED]["stack"])
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=rows[BLOCKED]["stack"], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    # A resume deploys only the assembly it recorded: altered or missing, it is refused and nothing is deployed.
    [template] = assembly.glob(f"*/{rows[BLOCKED]['stack']}.template.json")
    original = template.read_bytes()
    template.write_bytes(original.replace(b'"Resources"', b'"Resources" '))
    code, refused = rollout(state, tmp_path / "rollouts")
    assert code == 2 and "was altered" in refused["error"], refused
    assert "a resumed rollout deploys only the assembly it started with" in refused["error"]
    template.write_bytes(original)
    assembly.rename(tmp_path / "moved")
    code, refused = rollout(state, tmp_path / "rollouts")
    assert code == 2 and f"is missing: {assembly}" in refused["error"], refused
    (tmp_path / "moved").rename(assembly)

    code, resumed = rollout(state, tmp_path / "rollouts")
    assert code == 0, resumed["instances"]
    assert resumed["cdk_runs"] == {"deploy": 1}  # the recorded assembly: no second synth
    assert resumed["assembly"] == report["assembly"] and resumed["assembly_digest"] == report["assembly_digest"]
    assert resumed["runs"] == 2 and resumed["change_id"] == report["change_id"]
    assert {r["instance"]: (r["state"], r["deploys"]) for r in resumed["instances"]} == {
        "acme/retail/dev": ("deployed", 1),
        BLOCKED: ("deployed", 2),
    }
    final = local_aws.status()
    assert final["ok"], final


def deployed_templates(state: ServerState, stacks: list[str]) -> dict[str, dict[str, Any]]:
    with using_aws_environment(aws_environment(state)):
        cloudformation = boto3.client("cloudformation", region_name=state.region)
        bodies = {s: cloudformation.get_template(StackName=s)["TemplateBody"] for s in stacks}
    return {s: body if isinstance(body, dict) else json.loads(body) for s, body in bodies.items()}


def synth(agents: Path, out: Path, image: str, *extra: str) -> None:
    argv = [sys.executable, "-m", "foundry", "synth", "--agents-dir", str(agents), "--environment", "dev"]
    argv += ["--out", str(out), "--runtime-image", image, *extra]
    env = tool_environment(REPO_ROOT)
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def set_templates(root: Path) -> dict[str, dict[str, Any]]:
    index = json.loads((root / "index.json").read_text())
    return {stack: read_templates(root / name)[stack] for stack, name in index["stacks"].items()}


@pytest.mark.slow
def test_a_rollout_deploys_the_assembly_it_is_given_not_the_tree_and_synthesizes_nothing(local_aws, tmp_path):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    repo = new_git_repo(tmp_path / "repo")
    image = default_runtime_image(state.account, state.region)
    synth(repo.agents, tmp_path / "planned", image, "--shards", "2", "--jobs", "2")
    # The tree moves on after the synth: an agent spec changes (every instance's bundle with it).
    spec = repo.agents / "specs" / "system" / "coherence-agent.yaml"
    spec.write_text(spec.read_text().replace("Merge the workers' answers", "Reconcile the workers' answers"))
    synth(repo.agents, tmp_path / "moved-on", image, "--shards", "2", "--jobs", "2")
    planned, moved_on = set_templates(tmp_path / "planned"), set_templates(tmp_path / "moved-on")
    instance_stacks = sorted(s for s in planned if s != "af-dev-platform")
    assert len(instance_stacks) == 2 and all(planned[s] != moved_on[s] for s in instance_stacks)

    with_agents = ("--agents-dir", str(repo.agents))
    code, report = rollout(state, tmp_path / "rollouts", *with_agents, "--assembly", str(tmp_path / "planned"))
    assert code == 0, report
    assert report["totals"]["deployed"] == 2
    assert report["cdk_runs"] == {"deploy": 2}  # no `cdk synth`: every deploy used the assembly as it is
    assert report["assembly"] == str(tmp_path / "planned")
    assert report["git_revision"].endswith("-dirty")  # the spec edit is not committed
    assert deployed_templates(state, instance_stacks) == {s: planned[s] for s in instance_stacks}

    # A stack the assembly does not hold is refused before anything is deployed.
    (tmp_path / "plan.json").write_text(
        json.dumps(
            {
                "environments": [
                    {"environment": "dev", "instances": [{"instance": "acme/retail/dev", "kind": "changed"}]}
                ]
            }
        )
    )
    only_platform = tmp_path / "platform-only"
    synth(repo.agents, only_platform, image, "--instances", "")
    code, refused = rollout(
        state,
        tmp_path / "other-rollouts",
        *with_agents,
        "--plan",
        str(tmp_path / "plan.json"),
        "--assembly",
        str(only_platform),
    )
    assert code == 2 and "does not hold 1 stack(s) this rollout must deploy: af-dev-acme-retail-dev" in refused["error"]
