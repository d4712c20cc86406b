"""`python -m foundry rollout` for real: the CLI in a subprocess, the real CDK CLI, moto's server as the AWS.

moto keeps ECS services, target groups and DNS as records and runs no container, so the rollout runs with
`--health records`: the gate reads the stack (complete, no rollback) and the ECS service (ACTIVE) through
`foundry.aws.instance_status`, and says in the report what it could not read there (tasks, targets, the probe).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from foundry.cdk.process import tool_environment
from foundry.local.aws import LocalAws, default_runtime_image
from foundry.local.server import ServerState, aws_environment, using_aws_environment
from tests.deploy.git_repos import REPO_ROOT

TIMEOUT_S = 900
BLOCKED = "default-org/default-domain/dev"


@pytest.fixture
def local_aws(tmp_path: Path) -> Iterator[LocalAws]:
    local = LocalAws(state_dir=tmp_path / "local-aws", agents_dir=REPO_ROOT / "agents", cdk_timeout_s=TIMEOUT_S)
    try:
        yield local
    finally:
        local.down()


def rollout(state: ServerState, state_dir: Path) -> tuple[int, dict[str, Any]]:
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    image = default_runtime_image(state.account, state.region)  # the environment's own ECR: the allowed default
    argv += ["--cdk-method", "direct", "--runtime-image", image, "--bake-seconds", "15"]
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

    code, resumed = rollout(state, tmp_path / "rollouts")
    assert code == 0, resumed["instances"]
    assert resumed["runs"] == 2 and resumed["change_id"] == report["change_id"]
    assert {r["instance"]: (r["state"], r["deploys"]) for r in resumed["instances"]} == {
        "acme/retail/dev": ("deployed", 1),
        BLOCKED: ("deployed", 2),
    }
    final = local_aws.status()
    assert final["ok"], final


CANARY = "acme/retail/dev"
CANARY_ALARM = "af-dev-acme-retail-dev-runtime-error-rate"


def wait_until_baking(state_file: Path, rollout: subprocess.Popen[str], selector: str) -> None:
    """Until the rollout's state says `selector`'s wave bakes (it read healthy once; the bake has begun). Polls the
    state file the rollout writes at every step (a subprocess: there is nothing else to wait on)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert rollout.poll() is None, "the rollout ended before the canary baked"
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(state_file.read_text())
            if saved["instances"][selector]["state"] == "baking" and saved.get("bake_ends_at_seconds") is not None:
                return
        time.sleep(0.2)
    raise AssertionError(f"{selector} never baked")


@pytest.mark.slow
def test_a_canary_whose_alarm_fires_during_the_bake_halts_the_rollout_naming_the_alarm(local_aws, tmp_path):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    state_dir = tmp_path / "rollouts"
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    argv += ["--cdk-method", "direct", "--runtime-image", default_runtime_image(state.account, state.region)]
    argv += ["--bake-seconds", "120", "--state-dir", str(state_dir), "--json"]
    env = tool_environment(REPO_ROOT, aws_environment(state))
    with subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            wait_until_baking(state_dir / "dev.json", run, CANARY)
            with using_aws_environment(aws_environment(state)):
                cloudwatch = boto3.client("cloudwatch", region_name=state.region)
                cloudwatch.set_alarm_state(
                    AlarmName=CANARY_ALARM, StateValue="ALARM", StateReason="Threshold Crossed: errors at 40%"
                )
            stdout, stderr = run.communicate(timeout=TIMEOUT_S)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 1, stderr
    report = json.loads(stdout)
    assert report["status"] == "halted" and report["halted_wave"] == 1
    rows = {r["instance"]: r for r in report["instances"]}
    assert rows[CANARY]["state"] == "failed", rows[CANARY]
    assert rows[CANARY]["reason"] == (
        f"unhealthy during the bake: alarm {CANARY_ALARM} is ALARM: Threshold Crossed: errors at 40%"
    )
    assert CANARY_ALARM in report["halt_reason"]
    assert rows["default-org/default-domain/dev"]["state"] == "not_started", "the next wave never starts"
