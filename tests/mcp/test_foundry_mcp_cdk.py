"""`foundry.deploy_instance` and `foundry.get_instance_status` with the real CDK CLI against moto's server.

One moto server (bootstrapped once with the real `cdk bootstrap`) serves the module. What moto does not do, and
how these tests deal with it: it runs no containers (the service's running count is set through moto's
MOTO_ECS_SERVICE_RUNNING knob) and registers no task in the target group (a test registers an IP target itself,
as ECS would); its CloudFormation fails a resource synchronously, inside CreateStack, so a failed deploy shows
cdk's error, not a stack event.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from foundry.cdk.process import ProcessRunner
from foundry.deploy.deployer import Deployer
from foundry.manifests.naming import INSTANCE_STACK_OUTPUTS
from tests.mcp.foundry_mcp_local_aws import (
    LocalAws,
    bootstrap,
    deploy_platform,
    local_deployer,
    local_foundry_server,
    local_runner,
    moto_server,
)
from tests.mcp.foundry_mcp_notifications import Notifications
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT

IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0"  # the dev account's own ECR
ACME = {"environment": "dev", "instance": "acme/retail/dev", "runtime_image": IMAGE}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with moto_server(ecs_running_tasks=1) as aws:
        yield aws


@pytest.fixture(scope="module")
def module_runner(local_aws: LocalAws) -> ProcessRunner:
    return local_runner(local_aws)


@pytest.fixture(scope="module")
def bootstrapped(module_runner: ProcessRunner, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`cdk bootstrap`, then the dev platform stack: deployed on purpose, as the instance deploys need it."""
    bootstrap(module_runner)
    deploy_platform(module_runner, tmp_path_factory.mktemp("platform") / "cdk.out")


@pytest.fixture(scope="module")
def work_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foundry-deploys")


def make_server(local_aws: LocalAws, runner: ProcessRunner, work_root: Path) -> tuple[MCPServer, Deployer]:
    deployer = local_deployer(local_aws, runner, work_root)
    return local_foundry_server(local_aws, deployer), deployer


@pytest.fixture
def server(local_aws: LocalAws, module_runner: ProcessRunner, work_root: Path, bootstrapped: None) -> MCPServer:
    return make_server(local_aws, module_runner, work_root)[0]


@pytest.fixture(scope="module")
def deployed(local_aws: LocalAws, module_runner: ProcessRunner, work_root: Path, bootstrapped: None) -> dict[str, Any]:
    """acme/retail/dev deployed once through the MCP tool, with the progress and log notifications it sent."""
    server, _ = make_server(local_aws, module_runner, work_root)
    seen = Notifications()

    async def deploy() -> Any:
        async with Client(server, logging_callback=seen.on_log, log_level="info") as client:
            return await client.call_tool("foundry.deploy_instance", ACME, progress_callback=seen.on_progress)

    result = asyncio.run(deploy())
    assert not result.is_error, result.content
    return {"result": result.structured_content, "progress": seen.progress, "logs": seen.logs}


async def test_dry_run_synthesizes_only_the_selected_instance_and_its_platform_stack(
    server: MCPServer, work_root: Path, local_aws: LocalAws
) -> None:
    arguments = {"environment": "dev", "instance": "default-org/default-domain/dev", "runtime_image": IMAGE}
    async with Client(server) as client:
        result = await client.call_tool("foundry.deploy_instance", {**arguments, "dry_run": True})
    out = result.structured_content
    assert out["outcome"] == "synthesized", out
    assert out["synthesized_stacks"] == ["af-dev-default-org-default-domain-dev", "af-dev-platform"]
    instance_dir = work_root / "dev" / "default-org" / "default-domain" / "dev"
    manifest = json.loads((instance_dir / "cdk.out" / "manifest.json").read_text())
    stacks = sorted(a["displayName"] for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack")
    assert stacks == ["af-dev-default-org-default-domain-dev", "af-dev-platform"]
    assert [c[1] for c in out["commands"]] == ["synth", "diff"]
    assert "--method=template" in out["commands"][1]
    assert "instance=default-org/default-domain/dev" in out["commands"][0]
    assert out["diff_exit_code"] == 0
    assert out["platform"]["ready"] is True, out["platform"]
    assert out["commands"][1][1:4] == ["diff", "af-dev-default-org-default-domain-dev", "--exclusively"]
    assert "af-dev-default-org-default-domain-dev" in out["diff"]
    assert "AWS::ECS::Service" in out["diff"]
    assert not (instance_dir / "outputs.json").exists()
    names = [s["StackName"] for s in local_aws.client("cloudformation").describe_stacks()["Stacks"]]
    assert "af-dev-default-org-default-domain-dev" not in names


def test_deploy_to_local_aws_returns_the_outcome_hostname_and_stack_outputs(
    deployed: dict[str, Any], local_aws: LocalAws
) -> None:
    out = deployed["result"]
    assert out["outcome"] == "deployed", json.dumps(out)[-6000:]
    assert out["hostname"] == "acme-retail-dev.dev.agentfoundry.internal"
    outputs = out["outputs"]["af-dev-acme-retail-dev"]
    assert set(outputs) >= INSTANCE_STACK_OUTPUTS
    assert outputs["Hostname"] == out["hostname"]
    assert outputs["InstanceEndpoint"] == "http://acme-retail-dev.dev.agentfoundry.internal/mcp"
    assert [c[1] for c in out["commands"]] == ["synth", "deploy"]
    argv = out["commands"][1]
    assert argv[1:4] == ["deploy", "af-dev-acme-retail-dev", "--exclusively"]
    assert "--all" not in argv
    assert argv[argv.index("--require-approval") + 1] == "never"
    assert "--outputs-file" in argv
    stack = local_aws.client("cloudformation").describe_stacks(StackName="af-dev-acme-retail-dev")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    bucket, _, key = outputs["BundleUri"].removeprefix("s3://").partition("/")
    assert local_aws.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def test_deploy_streams_cdk_progress_and_log_notifications(deployed: dict[str, Any]) -> None:
    assert any("af-dev-acme-retail-dev" in line and "CREATE_COMPLETE" in line for line in deployed["progress"])
    assert any("starting deploy of acme/retail/dev in dev" in line for line in deployed["logs"])
    assert any("✅" in line and "af-dev-acme-retail-dev" in line for line in deployed["logs"])


async def test_status_of_the_deployed_instance_reads_stack_service_and_targets(
    deployed: dict[str, Any], server: MCPServer, local_aws: LocalAws
) -> None:
    outputs = deployed["result"]["outputs"]["af-dev-acme-retail-dev"]
    async with Client(server) as client:
        before = (await client.call_tool("foundry.get_instance_status", ACME_STATUS)).structured_content
    assert before["stack"]["status"] == "CREATE_COMPLETE"
    primary = before["service"]["deployments"][0]
    assert primary["status"] == "PRIMARY"
    assert primary["task_definition"] == before["stack"]["task_definition"]
    assert before["verdict"] == "degraded"
    assert "no healthy load-balancer target" in before["reasons"]

    # What ECS does once a task passes its health check: the task's IP joins the target group.
    elbv2 = local_aws.client("elbv2")
    elbv2.register_targets(TargetGroupArn=outputs["TargetGroupArn"], Targets=[{"Id": "10.10.1.23", "Port": 8080}])
    try:
        async with Client(server) as client:
            after = (await client.call_tool("foundry.get_instance_status", ACME_STATUS)).structured_content
    finally:
        elbv2.deregister_targets(TargetGroupArn=outputs["TargetGroupArn"], Targets=[{"Id": "10.10.1.23", "Port": 8080}])
    assert after["verdict"] == "healthy", after["reasons"]
    assert after["targets"] == [
        {"id": "10.10.1.23", "port": 8080, "state": "healthy", "reason": None, "description": None}
    ]


STACK = "af-dev-acme-retail-dev"
ACME_DIMENSIONS = [
    {"Name": "environment", "Value": "dev"},
    {"Name": "organization", "Value": "acme"},
    {"Name": "domain", "Value": "retail"},
    {"Name": "instance", "Value": "dev"},
]


async def test_status_shows_the_alarm_states_and_the_last_hours_requests_errors_latency_and_tokens(
    deployed: dict[str, Any], server: MCPServer, local_aws: LocalAws
) -> None:
    """The instance's alarms (created by its stack) and its metrics as the collector would have sent them, read back
    through the MCP tool: DescribeAlarms and one GetMetricData."""
    cloudwatch = local_aws.client("cloudwatch")
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)

    def point(name: str, value: float, minutes_ago: int = 0) -> dict[str, Any]:
        timestamp = recent - datetime.timedelta(minutes=minutes_ago)
        return {"MetricName": name, "Dimensions": ACME_DIMENSIONS, "Timestamp": timestamp, "Value": value}

    old = datetime.timedelta(hours=2)
    cloudwatch.put_metric_data(
        Namespace="AgentFoundry",
        MetricData=[
            point("agentfoundry.requests", 30),
            point("agentfoundry.requests", 10, minutes_ago=20),
            point("agentfoundry.errors", 2),
            point("gen_ai.client.token.usage", 700),
            point("gen_ai.client.token.usage", 500),
            *(point("agentfoundry.turn.duration", tenths / 10) for tenths in range(1, 21)),
            {**point("agentfoundry.requests", 1000), "Timestamp": recent - old},  # outside the last hour
        ],
    )
    reason = "Threshold Crossed: 3 datapoints [12.5, 11.0, 15.0] were greater than the threshold (10.0)"
    cloudwatch.set_alarm_state(AlarmName=f"{STACK}-runtime-error-rate", StateValue="ALARM", StateReason=reason)
    try:
        async with Client(server) as client:
            out = (await client.call_tool("foundry.get_instance_status", ACME_STATUS)).structured_content
    finally:
        cloudwatch.set_alarm_state(AlarmName=f"{STACK}-runtime-error-rate", StateValue="OK", StateReason="test over")
    states = {a["name"]: (a["state"], a["reason"]) for a in out["alarms"]}
    assert set(states) == {
        f"{STACK}-target-5xx-rate",
        f"{STACK}-target-p95-response-time",
        f"{STACK}-unhealthy-hosts",
        f"{STACK}-runtime-error-rate",
    }
    assert states[f"{STACK}-runtime-error-rate"] == ("ALARM", reason)
    assert states[f"{STACK}-target-5xx-rate"][0] == "OK"
    assert f"alarm {STACK}-runtime-error-rate is ALARM: {reason}" in out["reasons"]
    metrics = out["metrics"]
    assert (metrics["requests"], metrics["errors"], metrics["tokens"]) == (40, 2, 1200)
    assert metrics["error_rate_percent"] == 5.0
    assert metrics["p95_turn_seconds"] == 1.9


async def test_service_rolled_back_by_the_circuit_breaker_is_failed_although_the_stack_is_complete(
    deployed: dict[str, Any], server: MCPServer, local_aws: LocalAws
) -> None:
    outputs = deployed["result"]["outputs"]["af-dev-acme-retail-dev"]
    ecs = local_aws.client("ecs")
    service = ecs.describe_services(cluster=outputs["ClusterName"], services=[outputs["ServiceName"]])["services"][0]
    deployed_definition = service["taskDefinition"]
    family = ecs.describe_task_definition(taskDefinition=deployed_definition)["taskDefinition"]["family"]
    # The rollback's footprint: the service back on another revision of the family than the stack deployed.
    other = ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "runtime", "image": IMAGE.replace(":1.0.0", ":0.9.0"), "memory": 512}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=outputs["ClusterName"], service=outputs["ServiceName"], taskDefinition=other)
    try:
        async with Client(server) as client:
            status = (await client.call_tool("foundry.get_instance_status", ACME_STATUS)).structured_content
    finally:
        ecs.update_service(
            cluster=outputs["ClusterName"], service=outputs["ServiceName"], taskDefinition=deployed_definition
        )
    assert status["stack"]["status"] == "CREATE_COMPLETE"
    assert status["verdict"] == "failed"
    assert any("circuit breaker rolled the new task definition back" in r for r in status["reasons"])


async def test_failed_deploy_reports_cloudformations_reason(
    deployed: dict[str, Any], server: MCPServer, local_aws: LocalAws
) -> None:
    # Someone else's rule already holds the listener priority placed for this instance: CloudFormation refuses.
    outputs = deployed["result"]["outputs"]["af-dev-acme-retail-dev"]
    ssm, elbv2 = local_aws.client("ssm"), local_aws.client("elbv2")
    listener = ssm.get_parameter(Name="/agentfoundry/dev/platform/shards/0/listener-arn")["Parameter"]["Value"]
    taken = {r["Priority"] for r in elbv2.describe_rules(ListenerArn=listener)["Rules"]}
    priority = next(p for p in range(1, 100) if str(p) not in taken)
    elbv2.create_rule(
        ListenerArn=listener,
        Priority=priority,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["squatter.example"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": outputs["TargetGroupArn"]}],
    )
    placement = (REPO_ROOT / "agents" / "placement" / "dev.yaml").read_text()
    assert f"priority: {priority}" in placement, "the squatter must take the priority of the instance deployed next"
    async with Client(server) as client:
        result = await client.call_tool(
            "foundry.deploy_instance",
            {"environment": "dev", "instance": "default-org/default-domain/dev", "runtime_image": IMAGE},
        )
    out = result.structured_content
    assert out["outcome"] == "failed", out
    assert "PriorityInUse" in out["failure"]["reason"]
    assert out["failure"]["stack"] == "af-dev-default-org-default-domain-dev"
    assert out["outputs"] == {}


async def test_second_concurrent_deploy_of_the_same_instance_is_refused_and_says_so(
    server: MCPServer, work_root: Path
) -> None:
    first_is_running = asyncio.Event()
    second_answered = asyncio.Event()
    arguments = {**ACME, "dry_run": True}

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        # Runs inside the first deploy (in-memory transport): the lock is held until this returns.
        first_is_running.set()
        await second_answered.wait()

    async def first() -> Any:
        async with Client(server) as client:
            return await client.call_tool("foundry.deploy_instance", arguments, progress_callback=on_progress)

    async def second() -> Any:
        await first_is_running.wait()
        try:
            async with Client(server) as client:
                return await client.call_tool("foundry.deploy_instance", arguments)
        finally:
            second_answered.set()

    first_result, second_result = await asyncio.gather(first(), second())
    assert second_result.is_error
    text = " ".join(c.text for c in second_result.content)
    assert "a deploy of acme/retail/dev in dev is already running" in text
    assert "refused, not queued" in text
    assert first_result.structured_content["outcome"] == "synthesized"


ACME_STATUS = {"environment": "dev", "instance": "acme/retail/dev", "probe_instance": False}
