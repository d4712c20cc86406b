"""The cdk runner's machinery: real processes, the time limit, the per-instance lock, reading cdk's output."""

from __future__ import annotations

import os
import select
import sys
from pathlib import Path

import pytest

from foundry.cdk.output import failure_from_lines, parse_event_line
from foundry.cdk.process import ProcessRunner
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import DeployInProgressError, InstanceLocks
from foundry.deploy.request import DeployRequest
from foundry.fleet.load import load_fleet
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT

CDK = str(REPO_ROOT / "node_modules" / ".bin" / "cdk")


async def collect(lines: list[str], line: str) -> None:
    lines.append(line)


async def test_real_cdk_cli_runs_from_an_argv_list_in_the_repository(runner: ProcessRunner) -> None:
    seen: list[str] = []
    result = await runner.run([CDK, "--version"], timeout_seconds=120, on_line=lambda line: collect(seen, line))
    assert result.ok
    assert seen[0].startswith("2.1148.1")
    assert runner.started == 1


async def test_time_limit_stops_the_command_and_everything_it_started(runner: ProcessRunner) -> None:
    child = "import subprocess; p = subprocess.Popen(['sleep', '600']); print(p.pid, flush=True); p.wait()"
    seen: list[str] = []
    result = await runner.run(
        [sys.executable, "-c", child], timeout_seconds=3, on_line=lambda line: collect(seen, line)
    )
    assert result.timed_out
    assert result.exit_code is None
    try:
        pidfd = os.pidfd_open(int(seen[0]))
    except ProcessLookupError:
        return  # already gone and reaped
    try:
        # A pidfd turns readable when its process has terminated: an event, not a sleep.
        readable, _, _ = select.select([pidfd], [], [], 30)
    finally:
        os.close(pidfd)
    assert readable, "the command's child survived the time limit"


async def test_deploy_is_refused_while_another_process_holds_the_instance_lock(
    deployer: Deployer, deploys_dir: Path
) -> None:
    instance = load_fleet(REPO_ROOT / "agents", environment="dev", instance="acme/retail/dev").instances[0]
    other = InstanceLocks(holder="the Foundry MCP server on build-7 (pid 4242)")  # another process, same store
    held = other.acquire(deployer.lock_target(instance, None), "acme/retail/dev in dev")

    async def ignore(line: str, event: object) -> None:
        return None

    try:
        with pytest.raises(DeployInProgressError, match=r"already running \(held by the Foundry MCP server on build-7"):
            await deployer.run(DeployRequest(instance=instance, agents_dir=REPO_ROOT / "agents"), ignore)
    finally:
        held.release()
    assert deployer.runner.started == 0


# Lines as cdk 2.1148 prints them for a change-set deploy against AWS.
CHANGE_SET_FAILURE = [
    "af-dev-acme-retail-dev | 0/13 | 10:04:01 AM | UPDATE_IN_PROGRESS   | AWS::CloudFormation::Stack | "
    "af-dev-acme-retail-dev User Initiated",
    "af-dev-acme-retail-dev | 3/13 | 10:09:12 AM | UPDATE_FAILED        | AWS::ECS::Service | "
    'Runtime/Service/Service (RuntimeService408BD8AA) Resource handler returned message: "Error occurred during '
    "operation 'ECS Deployment Circuit Breaker was triggered'.\" "
    "(RequestToken: 1, HandlerErrorCode: GeneralServiceException)",
    "af-dev-acme-retail-dev | 3/13 | 10:09:13 AM | UPDATE_FAILED        | AWS::Logs::LogGroup | "
    "Runtime/Logs (RuntimeLogs040130CF) Resource update cancelled",
    "af-dev-acme-retail-dev | 4/13 | 10:09:20 AM | UPDATE_ROLLBACK_IN_P | AWS::CloudFormation::Stack | "
    "af-dev-acme-retail-dev The following resource(s) failed to update: [RuntimeService408BD8AA].",
    "❌  af-dev-acme-retail-dev failed to deploy",
]


def test_failing_resource_and_cloudformations_reason_are_read_from_cdk_events() -> None:
    failure = failure_from_lines(CHANGE_SET_FAILURE)
    assert failure is not None
    assert failure.stack == "af-dev-acme-retail-dev"
    assert failure.logical_id == "RuntimeService408BD8AA"
    assert failure.resource_type == "AWS::ECS::Service"
    assert failure.status == "UPDATE_FAILED"
    assert "ECS Deployment Circuit Breaker was triggered" in failure.reason


def test_cdk_error_summary_is_the_reason_when_no_resource_event_failed() -> None:
    lines = [
        "af-dev-x: creating stack...",
        "❌  af-dev-x failed to deploy",
        "‣ PriorityInUse: The specified priority is in use.",
    ]
    failure = failure_from_lines(lines)
    assert failure is not None
    assert failure.stack == "af-dev-x"
    assert failure.reason == "PriorityInUse: The specified priority is in use."


def test_direct_method_event_line_without_a_total_is_parsed() -> None:
    event = parse_event_line(
        "af-dev-platform |   1 | 9:22:50 PM | CREATE_COMPLETE         | AWS::CloudFormation::Stack | af-dev-platform "
    )
    assert event is not None
    assert (event.done, event.total, event.status) == (1, None, "CREATE_COMPLETE")
