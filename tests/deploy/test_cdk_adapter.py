"""The one CDK CLI adapter (`foundry.cdk`) and the one CloudFormation reader (`foundry.aws.cloudformation`): every
argv exactly as its caller has always run it, the synchronous runner, and CloudFormation's answers read one way."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from foundry.aws.cloudformation import first_failure_since, is_missing_stack, read_stack_status
from foundry.cdk.cli import CdkCli, context_args
from foundry.cdk.process import ProcessRunner, run_blocking, tool_environment
from foundry.deploy.request import DeployRequest
from foundry.fleet.load import load_fleet
from tests.deploy.git_repos import REPO_ROOT

CDK = CdkCli("/repo/node_modules/.bin/cdk")
OUT = Path("/work/cdk.out")


def test_context_is_passed_as_context_flags_in_the_order_given():
    assert context_args({"agentsDir": "/a", "environment": "dev"}) == [
        "--context",
        "agentsDir=/a",
        "--context",
        "environment=dev",
    ]


def test_the_deployers_synth_names_the_instance_stack_and_selects_it_through_context():
    instance = load_fleet(REPO_ROOT / "agents", environment="dev", instance="acme/retail/dev").instances[0]
    request = DeployRequest(instance=instance, agents_dir=Path("/agents"), runtime_image="img:1")
    assert CDK.synth_stacks([request.stack], context=request.context(), output=OUT) == [
        "/repo/node_modules/.bin/cdk",
        "synth",
        "af-dev-acme-retail-dev",
        "--context",
        "agentsDir=/agents",
        "--context",
        "environment=dev",
        "--context",
        "instance=acme/retail/dev",
        "--context",
        "runtimeImage=img:1",
        "--output",
        "/work/cdk.out",
        "--quiet",
        "--no-color",
    ]


def test_diff_and_deploy_use_the_synthesized_assembly_and_only_the_named_stack():
    assert CDK.diff_assembly(["af-dev-x"], assembly=OUT) == [
        "/repo/node_modules/.bin/cdk",
        "diff",
        "af-dev-x",
        "--exclusively",
        "--app",
        "/work/cdk.out",
        "--method=template",
        "--no-color",
    ]
    assert CDK.deploy_assembly(["af-dev-x"], assembly=OUT, outputs_file=Path("/work/o.json"), method="direct") == [
        "/repo/node_modules/.bin/cdk",
        "deploy",
        "af-dev-x",
        "--exclusively",
        "--app",
        "/work/cdk.out",
        "--require-approval",
        "never",
        "--outputs-file",
        "/work/o.json",
        "--method=direct",
        "--progress",
        "events",
        "--no-color",
    ]


def test_the_plan_synthesizes_the_whole_app_with_its_context_last():
    assert CDK.synth_app(context={"agentsDir": "/a", "environment": "dev"}, output=OUT) == [
        "/repo/node_modules/.bin/cdk",
        "synth",
        "--quiet",
        "--output",
        "/work/cdk.out",
        "--context",
        "agentsDir=/a",
        "--context",
        "environment=dev",
    ]


def test_the_local_aws_bootstraps_its_account_and_deploys_named_stacks_directly():
    assert CDK.bootstrap(account="111111111111", region="us-east-1") == [
        "/repo/node_modules/.bin/cdk",
        "bootstrap",
        "aws://111111111111/us-east-1",
        "--no-color",
    ]
    context = {"agentsDir": "/a", "environment": "dev", "runtimeImage": "img:1"}
    argv = CDK.deploy_app(
        ["af-dev-platform", "af-dev-x"],
        context=context,
        output=Path("/s/cdk.out"),
        outputs_file=Path("/s/outputs.json"),
        method="direct",
        concurrency=4,
    )
    assert argv == [
        "/repo/node_modules/.bin/cdk",
        "deploy",
        "af-dev-platform",
        "af-dev-x",
        "--method=direct",
        "--require-approval",
        "never",
        "--concurrency",
        "4",
        "--output",
        "/s/cdk.out",
        "--outputs-file",
        "/s/outputs.json",
        "--context",
        "agentsDir=/a",
        "--context",
        "environment=dev",
        "--context",
        "runtimeImage=img:1",
        "--no-color",
    ]


def test_a_synchronous_caller_gets_every_line_and_the_exit_code(tmp_path: Path):
    seen: list[str] = []
    script = "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"
    result = run_blocking(
        ProcessRunner(cwd=tmp_path, env=tool_environment(tmp_path)),
        [sys.executable, "-c", script],
        timeout_seconds=60,
        on_line=seen.append,
    )
    assert (result.exit_code, result.ok, seen, list(result.lines)) == (3, False, ["one", "two"], ["one", "two"])


def test_a_synchronous_caller_past_its_time_limit_gets_a_timed_out_result(tmp_path: Path):
    runner = ProcessRunner(cwd=tmp_path, env=tool_environment(tmp_path))
    result = run_blocking(runner, [sys.executable, "-c", "import time; time.sleep(60)"], timeout_seconds=0.5)
    assert result.timed_out and result.exit_code is None


DENIED = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeStacks")


def validation_error(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationError", "Message": message}}, "DescribeStacks")


class StackReads:
    """describe_stacks / describe_stack_events as CloudFormation answers them."""

    def __init__(self, stacks: dict[str, str], events: list[dict[str, Any]] | None = None) -> None:
        self.stacks, self.events = stacks, events or []

    def describe_stacks(self, **request: str) -> dict[str, Any]:
        name = request["StackName"]
        if name not in self.stacks:
            raise validation_error(f"Stack with id {name} does not exist")
        return {"Stacks": [{"StackName": name, "StackStatus": self.stacks[name]}]}

    def describe_stack_events(self, **request: str) -> dict[str, Any]:
        return {"StackEvents": self.events}


def test_a_stack_cloudformation_does_not_know_has_no_status():
    reads = StackReads({"af-dev-x": "UPDATE_IN_PROGRESS"})
    assert read_stack_status(reads, "af-dev-x") == "UPDATE_IN_PROGRESS"
    assert read_stack_status(reads, "af-dev-gone") is None


def test_only_cloudformations_does_not_exist_answer_means_a_missing_stack():
    assert is_missing_stack(validation_error("Stack with id af-dev-x does not exist"))
    assert not is_missing_stack(validation_error("Template format error"))
    assert not is_missing_stack(DENIED)


class Denied:
    def describe_stacks(self, **request: str) -> dict[str, Any]:
        raise DENIED


def test_a_stack_that_cannot_be_read_is_an_error_not_a_missing_stack():
    with pytest.raises(ClientError, match="AccessDenied"):
        read_stack_status(Denied(), "af-dev-x")


def event(logical_id: str, status: str, reason: str, minute: int) -> dict[str, Any]:
    at = datetime.datetime(2026, 11, 25, 10, minute, tzinfo=datetime.UTC)
    return {
        "LogicalResourceId": logical_id,
        "ResourceType": "AWS::ECS::Service",
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": at,
    }


def test_the_first_failure_since_the_deploy_is_the_oldest_failed_event_not_a_cancelled_one():
    started = datetime.datetime(2026, 11, 25, 10, 1, tzinfo=datetime.UTC).timestamp()
    events = [  # newest first, as the API lists them
        event("Service", "CREATE_FAILED", "Resource handler returned message: bad image", 4),
        event("Queue", "CREATE_FAILED", "Resource creation cancelled", 3),
        event("Old", "UPDATE_FAILED", "an earlier deploy", 0),
    ]
    failure = first_failure_since(StackReads({}, events), "af-dev-x", started)
    assert failure is not None
    assert (failure.logical_id, failure.reason) == ("Service", "Resource handler returned message: bad image")
    assert first_failure_since(StackReads({}, events[2:]), "af-dev-x", started) is None


async def test_a_synchronous_caller_inside_async_code_is_run_too(tmp_path: Path):
    runner = ProcessRunner(cwd=tmp_path, env=tool_environment(tmp_path))
    result = run_blocking(runner, [sys.executable, "-c", "print('inside')"], timeout_seconds=60)
    assert result.ok and list(result.lines) == ["inside"]
