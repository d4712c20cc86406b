"""One instance's deploy among others, and what happens when cdk is stopped while CloudFormation keeps working.

moto's server runs in this process (`in_process_moto_server`), bootstrapped with the real `cdk bootstrap`, with the
dev platform stack deployed on purpose first, as a platform engineer would. The real CDK CLI deploys. Where a test
needs CloudFormation to still be working after cdk was stopped, `CloudFormationAtWork` keeps the instance's stack in
CREATE_IN_PROGRESS (what CloudFormation does while an ECS service fails to stabilize) until the test settles it.

`cdk` here is the real CLI behind a small wrapper that answers `synth` by copying an assembly the real CLI
synthesized once for the module (so that a time limit falls inside `cdk deploy`, not inside a synth whose duration
depends on the machine's load); every `deploy` is the real CLI. (test_foundry_mcp_cdk.py runs the real synth per
deploy.)
"""

from __future__ import annotations

import asyncio
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from foundry.cdk.process import ProcessRunner
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import DeployInProgressError
from foundry.deploy.request import DeployRequest
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from stacks.instance_stack import deployed_secret_logical_id
from tests.mcp.foundry_mcp_local_aws import (
    CDK,
    REGION,
    CloudFormationAtWork,
    LocalAws,
    bootstrap,
    deploy_platform,
    in_process_moto_server,
    local_deployer,
    local_foundry_server,
    local_runner,
    run_cdk,
)

pytestmark = pytest.mark.slow

IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0"
ACME, ACME_STACK = "acme/retail/dev", "af-dev-acme-retail-dev"
DEFAULT, DEFAULT_STACK = "default-org/default-domain/dev", "af-dev-default-org-default-domain-dev"
PLATFORM = "af-dev-platform"
LISTENER_PARAMETER = "/agentfoundry/dev/platform/shards/0/listener-arn"
WATCH_POLL_SECONDS = 0.2
BOUND_SECONDS = 300


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with in_process_moto_server() as aws:
        yield aws


@pytest.fixture(scope="module")
def runner(local_aws: LocalAws) -> ProcessRunner:
    return local_runner(local_aws)


@pytest.fixture(scope="module")
def platform(runner: ProcessRunner, tmp_path_factory: pytest.TempPathFactory) -> None:
    bootstrap(runner)
    deploy_platform(runner, tmp_path_factory.mktemp("platform") / "cdk.out")


@pytest.fixture(scope="module")
def wrapped_cdk(runner: ProcessRunner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CLI, except that `synth` copies the dev environment's assembly, synthesized once by the real CLI."""
    folder = tmp_path_factory.mktemp("cdk")
    assembly = folder / "dev.cdk.out"
    run_cdk(
        runner,
        ["synth", "--context", f"agentsDir={DEFAULT_AGENTS_DIR}", "--context", "environment=dev",
         "--context", f"runtimeImage={IMAGE}", "--output", str(assembly), "--quiet"],
    )  # fmt: skip
    wrapper = folder / "cdk"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, shutil, sys\n"
        "if sys.argv[1] == 'synth':\n"
        f"    shutil.copytree({str(assembly)!r}, sys.argv[sys.argv.index('--output') + 1], dirs_exist_ok=True)\n"
        "    sys.exit(0)\n"
        f"os.execv({CDK!r}, [{CDK!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


@pytest.fixture
def at_work(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudFormationAtWork]:
    """CloudFormation's timing for this test; the instance stacks are deleted afterwards (each test starts clean)."""
    yield CloudFormationAtWork(monkeypatch)
    cloudformation, elbv2 = local_aws.client("cloudformation"), local_aws.client("elbv2")
    for stack in (ACME_STACK, DEFAULT_STACK):
        cloudformation.delete_stack(StackName=stack)
    # moto's stack deletion leaves the instances' listener rules behind (AWS deletes them): remove them here.
    listener = local_aws.client("ssm").get_parameter(Name=LISTENER_PARAMETER)["Parameter"]["Value"]
    for rule in elbv2.describe_rules(ListenerArn=listener)["Rules"]:
        if not rule["IsDefault"]:
            elbv2.delete_rule(RuleArn=rule["RuleArn"])


@pytest.fixture
def deployer(local_aws: LocalAws, runner: ProcessRunner, platform: None, wrapped_cdk: Path, tmp_path: Path) -> Deployer:
    """A deployer of its own for each test, on the deployed platform, running the wrapped CLI."""
    return local_deployer(local_aws, runner, tmp_path, cdk_cli=wrapped_cdk, watch_poll_seconds=WATCH_POLL_SECONDS)


def deploy_arguments(selector: str) -> dict[str, Any]:
    return {"environment": "dev", "instance": selector, "runtime_image": IMAGE}


def text_of(result: Any) -> str:
    return " ".join(str(getattr(c, "text", "")) for c in result.content)


def platform_fingerprint(local_aws: LocalAws) -> tuple[str, int]:
    cloudformation = local_aws.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=PLATFORM)["Stacks"][0]
    events = cloudformation.describe_stack_events(StackName=PLATFORM)["StackEvents"]
    return str(stack.get("LastUpdatedTime", stack["CreationTime"])), len(events)


async def test_two_instances_of_one_environment_deploy_at_the_same_time_and_leave_the_platform_alone(
    local_aws: LocalAws, deployer: Deployer, at_work: CloudFormationAtWork
) -> None:
    server = local_foundry_server(local_aws, deployer)
    before = platform_fingerprint(local_aws)

    async def deploy(selector: str) -> Any:
        async with Client(server) as client:
            return await client.call_tool("foundry.deploy_instance", deploy_arguments(selector))

    acme, default = await asyncio.gather(deploy(ACME), deploy(DEFAULT))
    for result, stack in ((acme, ACME_STACK), (default, DEFAULT_STACK)):
        out = result.structured_content
        assert out["outcome"] == "deployed", out
        assert out["platform"]["ready"] is True, out["platform"]
        assert out["commands"][1][1:4] == ["deploy", stack, "--exclusively"]
        assert set(out["outputs"]) == {stack}, "only the instance's own stack was deployed"
    statuses = {
        s["StackName"]: s["StackStatus"] for s in local_aws.client("cloudformation").describe_stacks()["Stacks"]
    }
    assert statuses[ACME_STACK] == statuses[DEFAULT_STACK] == "CREATE_COMPLETE"
    assert platform_fingerprint(local_aws) == before, "the platform stack was neither updated nor touched"


async def test_a_missing_platform_parameter_refuses_the_deploy_naming_it_and_the_platform_stack(
    local_aws: LocalAws, deployer: Deployer, at_work: CloudFormationAtWork
) -> None:
    server = local_foundry_server(local_aws, deployer)
    ssm = local_aws.client("ssm")
    name = LISTENER_PARAMETER
    value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    ssm.delete_parameter(Name=name)
    try:
        async with Client(server) as client:
            out = (await client.call_tool("foundry.deploy_instance", deploy_arguments(ACME))).structured_content
    finally:
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    assert out["outcome"] == "platform_not_ready", out
    assert out["platform"]["status"] == "CREATE_COMPLETE"
    assert out["platform"]["problems"] == [f"the platform's SSM parameters this instance reads are missing: {name}"]
    assert "`cdk deploy -c environment=dev af-dev-platform`" in out["failure"]["reason"]
    names = [s["StackName"] for s in local_aws.client("cloudformation").describe_stacks()["Stacks"]]
    assert ACME_STACK not in names


async def test_a_secret_name_still_taken_by_another_secret_refuses_the_deploy_naming_it_and_the_way_out(
    local_aws: LocalAws, deployer: Deployer, at_work: CloudFormationAtWork
) -> None:
    """Offboarded and onboarded again within the recovery window: the secret of the same name is scheduled for
    deletion, and CloudFormation could not create it. Then the same with a secret made by hand."""
    server = local_foundry_server(local_aws, deployer)
    secretsmanager, cloudformation = local_aws.client("secretsmanager"), local_aws.client("cloudformation")
    name = "agentfoundry/dev/acme/retail/dev/ticket-api-token"
    secretsmanager.create_secret(Name=name, SecretString="the old tenant's value")
    deleted = secretsmanager.delete_secret(SecretId=name, RecoveryWindowInDays=7)

    async def deploy() -> dict[str, Any]:
        async with Client(server) as client:
            return dict((await client.call_tool("foundry.deploy_instance", deploy_arguments(ACME))).structured_content)

    out = await deploy()
    assert out["outcome"] == "failed", out
    assert [argv[1] for argv in out["commands"]] == ["synth"], "nothing was deployed"
    failure = out["failure"]
    assert (failure["stack"], failure["resource_type"]) == (ACME_STACK, "AWS::SecretsManager::Secret")
    assert failure["logical_id"] == deployed_secret_logical_id("ticket-api-token")
    assert failure["reason"].startswith("the deploy of acme/retail/dev in dev was refused (nothing was deployed): ")
    assert f"the secret {name} ({failure['logical_id']}) cannot be created" in failure["reason"]
    assert f"scheduled for deletion on {deleted['DeletionDate'].date().isoformat()}" in failure["reason"]
    assert f"--secret-id {name} --force-delete-without-recovery" in failure["reason"]
    assert ACME_STACK not in {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}

    # Deleted for good as the message says, then made again outside any stack.
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    outside = secretsmanager.create_secret(Name=name, SecretString="made by hand")
    out = await deploy()
    assert out["outcome"] == "failed", out
    assert f"exists outside the stack {ACME_STACK} ({outside['ARN']})" in out["failure"]["reason"]

    # Once the name is free the deploy goes through, and the stack's own secret never blocks the next one.
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    for _ in range(2):
        out = await deploy()
        assert out["outcome"] == "deployed", out


async def test_a_timed_out_deploy_reports_the_stack_cloudformation_still_works_on_and_keeps_the_lock_until_it_ends(
    local_aws: LocalAws, deployer: Deployer, at_work: CloudFormationAtWork
) -> None:
    instance = load_fleet(DEFAULT_AGENTS_DIR, environment="dev", instance=ACME).instances[0]
    request = DeployRequest(
        instance=instance, agents_dir=DEFAULT_AGENTS_DIR, runtime_image=IMAGE, timeout_seconds=40, region="us-east-1"
    )
    at_work.hold(ACME_STACK)
    seen: list[str] = []

    async def progress(line: str, event: object) -> None:
        seen.append(line)

    result = await deployer.run(request, progress)
    assert result.outcome == "timed_out", result
    assert result.stack_status == "CREATE_IN_PROGRESS", f"cdk never got to CreateStack: {seen[-20:]}"
    assert result.locked_until_settled
    assert result.failure is not None
    assert "stopping cdk does not stop CloudFormation: stack af-dev-acme-retail-dev is CREATE_IN_PROGRESS" in (
        result.failure.reason
    )

    with pytest.raises(DeployInProgressError) as refused:
        await deployer.run(request, progress)
    message = str(refused.value)
    assert "its deploy timed out" in message
    assert "CloudFormation is still working on stack af-dev-acme-retail-dev (CREATE_IN_PROGRESS" in message
    assert "refused, not queued" in message
    target = deployer.lock_target(instance, REGION)
    shared = deployer.locks.stores.open("dev", REGION).holder(target.key)
    assert shared is not None and "CREATE_IN_PROGRESS" in shared.description, "other deployers are told the same"

    at_work.settle(ACME_STACK, "ROLLBACK_COMPLETE")
    with anyio.fail_after(BOUND_SECONDS):
        settled = await deployer.watches[target.key]
    assert (settled.how, settled.status_when_stopped, settled.settled_status) == (
        "timed_out",
        "CREATE_IN_PROGRESS",
        "ROLLBACK_COMPLETE",
    )
    assert deployer.last_interruption(instance) == settled
    deployer.locks.acquire(target, "the next deploy").release()  # the lock is free again


async def test_a_cancelled_deploy_keeps_the_instance_locked_while_cloudformation_works_and_status_tells_the_end(
    local_aws: LocalAws, deployer: Deployer, at_work: CloudFormationAtWork
) -> None:
    server = local_foundry_server(local_aws, deployer)
    at_work.hold(DEFAULT_STACK)
    creating = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message.startswith(DEFAULT_STACK) and "CREATE_IN_PROGRESS" in message:
            creating.set()

    instance = load_fleet(DEFAULT_AGENTS_DIR, environment="dev", instance=DEFAULT).instances[0]
    target = deployer.lock_target(instance, REGION)
    lock_key = target.key
    status_arguments = {"environment": "dev", "instance": DEFAULT, "probe_instance": False}
    async with Client(server) as client:
        with anyio.fail_after(BOUND_SECONDS):
            async with anyio.create_task_group() as group:

                async def deploy() -> None:
                    await client.call_tool(
                        "foundry.deploy_instance", deploy_arguments(DEFAULT), progress_callback=on_progress
                    )

                group.start_soon(deploy)
                await creating.wait()
                group.cancel_scope.cancel()  # the client gives up: the SDK sends notifications/cancelled
            while lock_key not in deployer.watches:  # the server handles the cancellation
                await anyio.sleep(0.05)

        refused = await client.call_tool("foundry.deploy_instance", deploy_arguments(DEFAULT))
        during = (await client.call_tool("foundry.get_instance_status", status_arguments)).structured_content

        at_work.settle(DEFAULT_STACK, "ROLLBACK_COMPLETE")
        with anyio.fail_after(BOUND_SECONDS):
            settled = await deployer.watches[lock_key]
        after = (await client.call_tool("foundry.get_instance_status", status_arguments)).structured_content

    assert refused.is_error
    text = text_of(refused)
    assert "its deploy was cancelled" in text
    assert f"CloudFormation is still working on stack {DEFAULT_STACK} (CREATE_IN_PROGRESS" in text
    assert during["verdict"] == "in_progress"
    assert during["stack"]["status"] == "CREATE_IN_PROGRESS"
    assert "CloudFormation is still working on stack" in during["deploy_lock"]
    assert (settled.how, settled.settled_status) == ("cancelled", "ROLLBACK_COMPLETE")
    assert after["verdict"] == "failed"
    assert after["reasons"][0].startswith(f"stack {DEFAULT_STACK} is ROLLBACK_COMPLETE")
    assert after["deploy_lock"] is None
    interrupted = after["last_interrupted_deploy"]
    assert (interrupted["how"], interrupted["status_when_stopped"], interrupted["settled_status"]) == (
        "cancelled",
        "CREATE_IN_PROGRESS",
        "ROLLBACK_COMPLETE",
    )
    deployer.locks.acquire(target, "the next deploy").release()
