"""The status verdict: botocore's Stubber plays the AWS answers moto cannot give (a FAILED ECS rollout)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.stub import Stubber

from foundry.aws.instance_status import instance_status
from foundry.fleet.load import load_fleet
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT, free_port

STACK = "af-dev-acme-retail-dev"
TASK_V2 = "arn:aws:ecs:us-east-1:111111111111:task-definition/af-dev-acme-retail-dev:2"
TASK_V1 = "arn:aws:ecs:us-east-1:111111111111:task-definition/af-dev-acme-retail-dev:1"
TG = "arn:aws:elasticloadbalancing:us-east-1:111111111111:targetgroup/af-dev-acme/0123456789abcdef"
OUTPUTS = {"ClusterName": "af-dev", "ServiceName": "acme-svc", "TargetGroupArn": TG, "InstanceEndpoint": "http://x/mcp"}


def stubbed(stack_status: str, deployments: list[dict[str, Any]], service_task: str, targets: list[str]) -> Any:
    made: dict[str, Any] = {}
    for service in ("cloudformation", "ecs", "elbv2"):
        made[service] = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cfn = Stubber(made["cloudformation"])
    cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": STACK,
                    "StackStatus": stack_status,
                    "CreationTime": "2026-11-25T00:00:00Z",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()],
                }
            ]
        },
        {"StackName": STACK},
    )
    cfn.add_response(
        "describe_stack_resources",
        {
            "StackResources": [
                {
                    "LogicalResourceId": "RuntimeTaskDefinition",
                    "PhysicalResourceId": TASK_V2,
                    "ResourceType": "AWS::ECS::TaskDefinition",
                    "Timestamp": "2026-11-25T00:00:00Z",
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
            ]
        },
        {"StackName": STACK},
    )
    ecs = Stubber(made["ecs"])
    ecs.add_response(
        "describe_services",
        {
            "services": [
                {
                    "serviceName": "acme-svc",
                    "status": "ACTIVE",
                    "taskDefinition": service_task,
                    "runningCount": 2,
                    "desiredCount": 2,
                    "deployments": deployments,
                    "events": [{"message": "(service acme-svc) rolling back to deployment ecs-svc/111."}],
                }
            ]
        },
        {"cluster": "af-dev", "services": ["acme-svc"]},
    )
    elb = Stubber(made["elbv2"])
    elb.add_response(
        "describe_target_health",
        {
            "TargetHealthDescriptions": [
                {"Target": {"Id": ip, "Port": 8080}, "TargetHealth": {"State": "healthy"}} for ip in targets
            ]
        },
        {"TargetGroupArn": TG},
    )
    for stub in (cfn, ecs, elb):
        stub.activate()
    return lambda service, region: made[service]


def deployment(id_: str, status: str, rollout: str, task: str, reason: str = "") -> dict[str, Any]:
    return {
        "id": id_,
        "status": status,
        "rolloutState": rollout,
        "rolloutStateReason": reason,
        "taskDefinition": task,
        "desiredCount": 2,
        "runningCount": 2,
        "pendingCount": 0,
        "failedTasks": 0,
    }


async def status_with(clients: Any) -> Any:
    instance = load_fleet(REPO_ROOT / "agents", environment="dev", instance="acme/retail/dev").instances[0]
    return await instance_status(instance, region="us-east-1", clients=clients, probe=None)


async def test_failed_rollout_is_reported_failed_although_the_stack_says_update_complete() -> None:
    reason = "ECS deployment circuit breaker: tasks failed to start."
    clients = stubbed(
        "UPDATE_COMPLETE",
        [
            deployment("ecs-svc/222", "PRIMARY", "COMPLETED", TASK_V1),
            deployment("ecs-svc/333", "ACTIVE", "FAILED", TASK_V2, reason),
        ],
        TASK_V1,
        ["10.10.1.5"],
    )
    status = await status_with(clients)
    assert status.stack is not None
    assert status.stack.status == "UPDATE_COMPLETE"
    assert status.verdict == "failed"
    assert any("ecs-svc/333" in r and reason in r for r in status.reasons)
    assert any("rolled the new task definition back" in r for r in status.reasons)
    assert status.service is not None
    assert status.service.recent_events == ["(service acme-svc) rolling back to deployment ecs-svc/111."]


async def test_completed_rollout_of_the_stacks_task_definition_with_healthy_targets_is_healthy() -> None:
    clients = stubbed(
        "UPDATE_COMPLETE", [deployment("ecs-svc/444", "PRIMARY", "COMPLETED", TASK_V2)], TASK_V2, ["10.10.1.5"]
    )
    status = await status_with(clients)
    assert status.verdict == "healthy", status.reasons


async def test_rollout_in_progress_is_reported_in_progress() -> None:
    clients = stubbed(
        "UPDATE_COMPLETE",
        [
            deployment("ecs-svc/555", "PRIMARY", "IN_PROGRESS", TASK_V2),
            deployment("ecs-svc/444", "ACTIVE", "COMPLETED", TASK_V2),
        ],
        TASK_V2,
        ["10.10.1.5"],
    )
    status = await status_with(clients)
    assert status.verdict == "in_progress"
    assert "ECS deployment ecs-svc/555 is rolling out" in status.reasons


async def test_stack_in_update_rollback_complete_is_failed() -> None:
    clients = stubbed(
        "UPDATE_ROLLBACK_COMPLETE", [deployment("ecs-svc/444", "PRIMARY", "COMPLETED", TASK_V2)], TASK_V2, ["10.1.1.1"]
    )
    status = await status_with(clients)
    assert status.verdict == "failed"
    assert status.reasons[0].startswith(f"stack {STACK} is UPDATE_ROLLBACK_COMPLETE")


async def test_missing_stack_is_not_deployed() -> None:
    client = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_client_error(
        "describe_stacks",
        "ValidationError",
        f"Stack with id {STACK} does not exist",
        expected_params={"StackName": STACK},
    )
    stub.activate()
    status = await status_with(lambda service, region: client)
    assert status.verdict == "not_deployed"
    assert status.errors == []


async def test_unreachable_aws_gives_an_unknown_verdict_naming_the_failed_call_not_not_deployed() -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"

    def clients(service: str, region: str) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=nobody_listens,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5),
        )

    status = await status_with(clients)
    assert status.verdict == "unknown"
    assert status.reasons[0] == "the stack could not be read, so whether it is deployed is unknown"
    assert len(status.errors) == 1
    assert status.errors[0].startswith("cloudformation.describe_stacks: Could not connect to the endpoint URL")
    assert nobody_listens in status.errors[0]
    assert status.stack is None
