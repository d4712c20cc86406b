"""The local AWS loop, for real: moto's server on 127.0.0.1, `cdk bootstrap` and `cdk deploy` of the dev
environment with the real CDK CLI, boto3 read-back, and the Foundry MCP server's deploy and status tools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mcp import Client

from foundry.local.aws import LocalAws, default_runtime_image
from foundry.local.readback import unmodelled_resources
from foundry.local.server import LocalAwsError, ServerState, alive, aws_environment
from tests.deploy.git_repos import REPO_ROOT

LOOP_TIMEOUT_S = 600


@pytest.fixture
def local_aws(tmp_path: Path) -> Iterator[LocalAws]:
    """A local AWS of its own (state in a temp dir, a free port); stopped and removed even if the test fails."""
    local = LocalAws(state_dir=tmp_path / "local-aws", agents_dir=REPO_ROOT / "agents", cdk_timeout_s=LOOP_TIMEOUT_S)
    try:
        yield local
    finally:
        local.down()


def test_aws_environment_points_every_client_at_the_local_server_and_drops_real_credentials():
    state = ServerState(pid=1, port=4566, account="111111111111", region="us-east-1", environment="dev")
    env = aws_environment(state, base={"AWS_PROFILE": "prod-admin", "AWS_SESSION_TOKEN": "real", "HOME": "/root"})
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION"] == "http://localhost:4566"
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert (env["AWS_ACCESS_KEY_ID"], env["HOME"]) == ("testing", "/root")


def test_resources_moto_did_not_create_are_listed_with_their_type():
    template = {
        "Resources": {"Service": {"Type": "AWS::ECS::Service"}, "Token": {"Type": "AWS::SecretsManager::Secret"}}
    }
    created = [{"LogicalResourceId": "Service"}, {"LogicalResourceId": ""}]
    assert unmodelled_resources(template, created) == [{"logical_id": "Token", "type": "AWS::SecretsManager::Secret"}]


def test_status_without_a_running_server_says_to_run_up(tmp_path):
    with pytest.raises(LocalAwsError, match=r"not running .* run `up` first"):
        LocalAws(state_dir=tmp_path / "none").status()


@pytest.mark.slow
async def test_dev_environment_deploys_to_the_local_aws_and_reads_back_honestly(local_aws, monkeypatch):
    state = local_aws.up()
    assert state.endpoint.startswith("http://127.0.0.1:")
    with pytest.raises(LocalAwsError, match="already running"):
        local_aws.up()

    stacks = local_aws.deploy()
    assert stacks == ["af-dev-platform", "af-dev-acme-retail-dev", "af-dev-default-org-default-domain-dev"]

    result = local_aws.status()
    assert result["ok"], result
    for instance in result["instances"]:
        checks = {c["name"]: c for c in instance["checks"]}
        assert set(checks) == {"ecs_service", "listener_rule", "route53_record", "bundle_object", "state_table"}
        assert instance["hostname"] in checks["listener_rule"]["detail"]
        assert "verified" in checks["bundle_object"]["detail"]
        assert checks["state_table"]["ok"], checks["state_table"]  # the instance's own thread-state table
    # moto's CloudFormation skips these types; the local target says so instead of pretending.
    instance_gaps = {r["type"] for r in result["not_modelled"]["af-dev-acme-retail-dev"]}
    assert {
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
    } <= instance_gaps
    # foundry/local/moto.py models secrets (the execution role's grant names them), so they exist in moto.
    assert "AWS::SecretsManager::Secret" not in instance_gaps
    assert "AWS::ECS::Service" not in instance_gaps
    assert "AWS::CloudWatch::Alarm" not in instance_gaps, "the rollout gate reads the instance's alarms"
    assert "AWS::S3::BucketPolicy" in {r["type"] for r in result["not_modelled"]["af-dev-platform"]}
    env = aws_environment(state)

    def local(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=state.endpoint,
            region_name=state.region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    secrets = local("secretsmanager").list_secrets()["SecretList"]
    assert "agentfoundry/dev/acme/retail/dev/ticket-api-token" in {s["Name"] for s in secrets}
    # The alarms watch the shard's load balancer by the dimension CloudWatch uses for it: app/NAME/ID, the tail of
    # its ARN (the template derives it from the platform's SSM parameter at deploy time).
    balancers = local("elbv2").describe_load_balancers()["LoadBalancers"]
    full_names = {b["LoadBalancerArn"].rsplit(":", 1)[1].removeprefix("loadbalancer/") for b in balancers}
    alarm = local("cloudwatch").describe_alarms(AlarmNames=["af-dev-acme-retail-dev-target-p95-response-time"])[
        "MetricAlarms"
    ][0]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions["LoadBalancer"] in full_names, (dimensions, full_names)
    assert dimensions["LoadBalancer"].startswith("app/")

    # The Foundry MCP server deploys and reads the same instance against the same local AWS.
    for key, value in aws_environment(state).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("AWS_") and k not in aws_environment(state)]:
        monkeypatch.delenv(key)
    from foundry.mcp.serve import make_config
    from foundry.mcp.server import build_server

    config = make_config(REPO_ROOT / "agents", "direct")
    config.deployer.work_root = local_aws.state_dir / "foundry-deploys"
    first_image = default_runtime_image(state.account, state.region)
    # A new image in dev's own ECR registry (the tool allows it; moto never pulls it): an update of a deployed
    # stack, which `cdk deploy` sends with UsePreviousValue for the platform's SSM parameters.
    new_image = first_image.rsplit(":", 1)[0] + ":2.0.0"
    async with Client(build_server(config)) as client:
        deployed = await client.call_tool(
            "foundry.deploy_instance",
            {
                "environment": "dev",
                "instance": "acme/retail/dev",
                "runtime_image": new_image,
                "timeout_seconds": LOOP_TIMEOUT_S,
            },
        )
        assert not deployed.is_error, deployed.content
        outcome: dict[str, Any] = deployed.structured_content or {}
        assert outcome["outcome"] == "deployed", outcome
        status = await client.call_tool(
            "foundry.get_instance_status",
            {"environment": "dev", "instance": "acme/retail/dev", "probe_instance": False},
        )
        assert not status.is_error, status.content
        assert "acme-retail-dev" in str(status.structured_content)
    # The update reached the service: a new task definition revision with the new image runs there, the other
    # instance (not deployed) keeps the first, and both stacks still read the platform's SSM parameters.
    assert running_images(local("ecs")) == {
        "af-dev-acme-retail-dev": (2, new_image),
        "af-dev-default-org-default-domain-dev": (1, first_image),
    }
    updated = local("cloudformation").describe_stacks(StackName="af-dev-acme-retail-dev")["Stacks"][0]
    assert updated["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"] for p in updated["Parameters"]} >= {"VpcId", "PrivateSubnetIds", "ShardListenerArn"}
    final = local_aws.status()
    assert final["ok"], final

    local_aws.down()
    assert not local_aws.state_dir.exists()
    assert not alive(state.pid)


def running_images(ecs: Any) -> dict[str, tuple[int, str]]:
    """Each instance service's task definition revision and its runtime container's image, by task family."""
    found: dict[str, tuple[int, str]] = {}
    for cluster in ecs.list_clusters()["clusterArns"]:
        for arn in ecs.list_services(cluster=cluster)["serviceArns"]:
            service = ecs.describe_services(cluster=cluster, services=[arn])["services"][0]
            task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
            runtime = next(c["image"] for c in task["containerDefinitions"] if "agent-runtime" in c["image"])
            found[task["family"]] = (task["revision"], runtime)
    return found
