"""The gate's reading of `foundry.aws.instance_status`, the `--exclusively` guard on rollout deploys, the live view."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from foundry.aws.instance_status import DeploymentState, InstanceStatus, ServiceState, StackState, assess
from foundry.cdk.process import tool_environment
from foundry.manifests.platform_settings import RolloutPolicy
from foundry.rollout.aws_fleet import ExclusiveDeployRunner, classify
from foundry.rollout.report import LiveView
from foundry.rollout.scheduler import Scheduler, new_rollout
from foundry.rollout.simulator import SimulatedFleet

TASK = "arn:aws:ecs:us-east-1:111111111111:task-definition/af-dev-x:2"


def status(stack_status: str, rollout_state: str, running: int, service_task: str = TASK) -> InstanceStatus:
    stack = StackState("af-dev-x", stack_status, None, {}, TASK)
    deployment = DeploymentState("ecs-svc/1", "PRIMARY", rollout_state, None, running, 1, 0, 0, service_task)
    service = ServiceState("af-dev", "x", "ACTIVE", service_task, running, 1, [deployment], [])
    verdict, reasons = assess(stack, service, [])
    return InstanceStatus("dev", "a/b/c", "h", "af-dev-x", verdict, reasons, stack=stack, service=service)


def test_a_running_service_without_a_probe_answer_is_not_yet_healthy():
    moto_like = status("CREATE_COMPLETE", "IN_PROGRESS", 0)
    assert classify(moto_like, probe_skipped=None).kind == "settling"


def test_a_circuit_breaker_rollback_reads_as_rolled_back():
    rolled = status("UPDATE_COMPLETE", "COMPLETED", 1, service_task=TASK.replace(":2", ":1"))
    reading = classify(rolled, probe_skipped=None)
    assert reading.kind == "rolled_back" and "circuit breaker" in reading.reason


def test_records_health_passes_what_moto_can_answer_and_says_what_it_skipped():
    moto_like = status("CREATE_COMPLETE", "IN_PROGRESS", 0)
    reading = classify(moto_like, probe_skipped=None, scope="records")
    assert reading.kind == "healthy"
    assert "skipped task counts, ECS rollout state, target health and the instance probe" in reading.reason
    assert classify(status("ROLLBACK_COMPLETE", "IN_PROGRESS", 0), probe_skipped=None, scope="records").kind != (
        "healthy"
    )


async def test_every_cdk_deploy_of_a_rollout_names_its_stack_exclusively(tmp_path: Path):
    runner = ExclusiveDeployRunner(cwd=tmp_path, env=tool_environment(tmp_path))
    lines: list[str] = []

    async def keep(line: str) -> None:
        lines.append(line)

    await runner.run(["/bin/echo", "deploy", "af-dev-x"], timeout_seconds=30, on_line=keep)
    await runner.run(["/bin/echo", "synth", "af-dev-x"], timeout_seconds=30, on_line=keep)
    assert lines == ["deploy af-dev-x --exclusively", "synth af-dev-x"]


def test_the_live_view_shows_each_wave_with_its_phase_and_counts():
    policy = RolloutPolicy()
    rollout = new_rollout(
        environment="dev",
        change_id="c",
        change="every instance",
        policy=policy,
        waves=[["a/b/c"], ["a/b/d", "a/b/e"]],
        stacks={"a/b/c": "s1", "a/b/d": "s2", "a/b/e": "s3"},
    )
    rollout.instances["a/b/c"].state = "baking"
    scheduler = Scheduler(policy=policy, ops=SimulatedFleet(), checkpoint=lambda r, b: None)
    scheduler.current_wave, scheduler.phase, scheduler.bake_ends_at = 1, "baking", 600.0
    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    console.print(LiveView(scheduler, rollout, console)._render())
    text = console.export_text()
    assert "1 canary" in text and "baking (10m 00s left)" in text and "waiting" in text
