"""The gate's reading of `foundry.aws.instance_status`, a rollout's deploys (through the deployer, `--exclusively`),
the live view."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from foundry.aws.instance_status import (
    AlarmState,
    DeploymentState,
    InstanceStatus,
    ServiceState,
    StackState,
    assess,
    idle_reason,
)
from foundry.cdk.process import LineSink, ProcessResult, ProcessRunner
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import InstanceLocks
from foundry.fleet.load import load_fleet
from foundry.manifests.platform_settings import RolloutPolicy
from foundry.rollout.aws_fleet import AwsFleet, HealthScope, classify
from foundry.rollout.report import LiveView
from foundry.rollout.scheduler import Scheduler, new_rollout
from foundry.rollout.simulator import SimulatedFleet
from instance_contract.schema import DeploySettings
from tests.deploy.git_repos import REPO_ROOT

PLATFORM = "af-dev-platform"
EMPTY_TEMPLATE: dict[str, Any] = {"Resources": {}}
TASK = "arn:aws:ecs:us-east-1:111111111111:task-definition/af-dev-x:2"


def status(stack_status: str, rollout_state: str, running: int, service_task: str = TASK) -> InstanceStatus:
    stack = StackState("af-dev-x", stack_status, None, {}, TASK)
    deployment = DeploymentState("ecs-svc/1", "PRIMARY", rollout_state, None, running, 1, 0, 0, service_task)
    service = ServiceState("af-dev", "x", "ACTIVE", service_task, running, 1, [deployment], [])
    verdict, reasons = assess(stack, service, [])
    return InstanceStatus("dev", "a/b/c", "h", "af-dev-x", verdict, reasons, stack=stack, service=service)


def alarmed(alarms: list[AlarmState]) -> InstanceStatus:
    healthy = status("UPDATE_COMPLETE", "COMPLETED", 1)
    verdict, reasons = assess(healthy.stack, healthy.service, [], alarms)
    return InstanceStatus(
        "dev", "a/b/c", "h", "af-dev-x", verdict, reasons, healthy.stack, healthy.service, alarms=alarms
    )


ERROR_RATE = "af-dev-x-runtime-error-rate"


def test_an_alarm_in_alarm_fails_the_gate_naming_the_alarm_in_either_health_scope():
    firing = AlarmState(ERROR_RATE, "ALARM", "Threshold Crossed: 3 datapoints were greater than 10.0", None)
    quiet = AlarmState("af-dev-x-unhealthy-hosts", "OK", None, None)
    scopes: tuple[HealthScope, ...] = ("full", "records")
    for scope in scopes:
        reading = classify(alarmed([quiet, firing]), probe_skipped="no container", scope=scope)
        assert reading.kind == "unhealthy"
        assert reading.reason == f"alarm {ERROR_RATE} is ALARM: {firing.reason}"


def test_alarms_in_ok_or_without_data_leave_the_reading_to_the_other_checks():
    states = [AlarmState(ERROR_RATE, "INSUFFICIENT_DATA", None, None), AlarmState("b", "OK", None, None)]
    reading = classify(alarmed(states), probe_skipped="no container", scope="records")
    assert reading.kind == "healthy"
    assert not any("alarm" in reason for reason in alarmed(states).reasons)


def test_alarms_that_cannot_be_read_never_read_healthy():
    unread = dataclasses.replace(alarmed([]), alarms_error="cloudwatch.describe_alarms: AccessDenied")
    reading = classify(unread, probe_skipped="no container", scope="records")
    assert reading.kind == "settling"
    assert reading.reason == "the instance's alarms could not be read: cloudwatch.describe_alarms: AccessDenied"


def test_an_alarm_in_alarm_makes_the_status_verdict_degraded_with_its_reason():
    firing = alarmed([AlarmState(ERROR_RATE, "ALARM", None, None)])
    assert firing.verdict == "degraded" and f"alarm {ERROR_RATE} is ALARM" in firing.reasons


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


class RecordingRunner(ProcessRunner):
    """Records each argv instead of running cdk; a synth leaves a cloud assembly of the two stacks behind."""

    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd=cwd, env={})
        self.argvs: list[list[str]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_seconds: float,
        on_line: LineSink,
        extra_env: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> ProcessResult:
        self.argvs.append(list(argv))
        if argv[1] == "synth":
            write_assembly(Path(argv[argv.index("--output") + 1]), [PLATFORM, argv[2]])
        return ProcessResult(argv=tuple(argv), exit_code=0, timed_out=False, lines=())


def write_assembly(assembly: Path, stacks: list[str]) -> None:
    assembly.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for stack in stacks:
        (assembly / f"{stack}.template.json").write_text(json.dumps(EMPTY_TEMPLATE))
        properties = {"templateFile": f"{stack}.template.json"}
        artifacts[stack] = {"type": "aws:cloudformation:stack", "properties": properties}
    (assembly / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))


class SettledCloudFormation:
    """Every stack settled, the platform's deployed template what was just synthesized."""

    def describe_stacks(self, **request: str) -> dict[str, Any]:
        return {"Stacks": [{"StackName": request["StackName"], "StackStatus": "UPDATE_COMPLETE"}]}

    def get_template(self, **request: str) -> dict[str, Any]:
        return {"TemplateBody": EMPTY_TEMPLATE}


async def test_a_rollout_deploys_through_the_deployer_with_exclusively_exactly_once(tmp_path: Path):
    instance = load_fleet(REPO_ROOT / "agents", environment="dev", instance="acme/retail/dev").instances[0]
    runner = RecordingRunner(tmp_path)
    clients = lambda service, region: SettledCloudFormation()  # noqa: E731
    deployer = Deployer(repo_root=tmp_path, runner=runner, locks=InstanceLocks(), clients=clients)
    fleet = AwsFleet(
        instances={"acme/retail/dev": instance},
        deployer=deployer,
        agents_dir=REPO_ROOT / "agents",
        region="us-east-1",
        clients=clients,
        probe=None,
    )
    outcome = await fleet.deploy("acme/retail/dev")
    assert outcome.ok
    (deploy,) = [argv for argv in runner.argvs if argv[1] == "deploy"]
    assert deploy[1:4] == ["deploy", instance.manifest.spec.stack_name, "--exclusively"]
    assert deploy.count("--exclusively") == 1
    assert PLATFORM not in deploy


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


STOP = "0 19 * * MON-FRI"


def _idle_service() -> ServiceState:
    return ServiceState("af-dev", "x", "ACTIVE", TASK, 0, 0, [], [])


def test_a_service_that_wants_no_task_says_why_paused_or_asleep_and_a_running_one_says_nothing():
    sizing: dict[str, Any] = {"cpu": 256, "memory": 512, "min_tasks": 1, "max_tasks": 2}
    paused = DeploySettings.model_validate({**sizing, "state": "paused"})
    asleep = DeploySettings.model_validate(
        {
            **sizing,
            "schedule": {"stop": STOP, "start": "0 7 * * MON-FRI", "time_zone": "Europe/Paris"},
        }
    )
    active = DeploySettings.model_validate(sizing)

    said = idle_reason(paused, _idle_service())
    assert said is not None and said.startswith("paused") and "503" in said
    said = idle_reason(asleep, _idle_service())
    assert said is not None and STOP in said and "Europe/Paris" in said
    assert idle_reason(active, _idle_service()) is None  # 0 wanted, and nothing in the settings says why
    running = status("UPDATE_COMPLETE", "COMPLETED", 1).service
    assert idle_reason(paused, running) is None  # still running a task: not reported as paused
    assert idle_reason(paused, None) is None
