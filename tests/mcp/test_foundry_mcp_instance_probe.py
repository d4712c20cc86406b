"""`foundry.get_instance_status` reaching a REAL runtime process through the stack's `InstanceEndpoint` output.

moto's server plays CloudFormation/ECS: a small stack named like the instance's (af-dev-acme-retail-dev) carries
the contract outputs, its InstanceEndpoint pointing at a `python -m runtime serve` on 127.0.0.1 that serves the
instance's real bundle. The status reader finds the endpoint exactly as it does in AWS (describe_stacks) and calls
the runtime's own `status` tool over streamable HTTP. The same is then done over the Foundry server's HTTP
transport with the bearer token, together with a real `cdk synth` dry run whose progress arrives as notifications.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from foundry.aws.instance_status import probe_instance_mcp
from foundry.deploy.deployer import Deployer
from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.mcp.server import FoundryConfig, build_server
from oauth_resource.dev_issuer import serve_issuer
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.mcp.foundry_mcp_notifications import Notifications
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT, ServerProcess, free_port, http_server
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, auth_env, serve, write_bundles

STACK = "af-dev-acme-retail-dev"
ACME = {"environment": "dev", "instance": "acme/retail/dev"}
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0"  # the dev account's own ECR
TOKEN = "probe-token-0123456789abcdef"

pytestmark = pytest.mark.slow


def instance_stack_template(endpoint: str, bundle_hash: str) -> str:
    """The parts of an InstanceStack the status reader looks at: an ECS service and the contract outputs."""
    return json.dumps(
        {
            "Resources": {
                "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "af-dev-probe"}},
                "TaskDefinition": {
                    "Type": "AWS::ECS::TaskDefinition",
                    "Properties": {
                        "Family": STACK,
                        "ContainerDefinitions": [{"Name": "runtime", "Image": IMAGE, "Memory": 512}],
                    },
                },
                "Service": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {
                        "Cluster": {"Ref": "Cluster"},
                        "ServiceName": "acme-retail-dev",
                        "TaskDefinition": {"Ref": "TaskDefinition"},
                        "DesiredCount": 1,
                    },
                },
            },
            "Outputs": {
                "ClusterName": {"Value": "af-dev-probe"},
                "ServiceName": {"Value": "acme-retail-dev"},
                "Hostname": {"Value": "acme-retail-dev.dev.agentfoundry.internal"},
                "BundleHash": {"Value": bundle_hash},
                "InstanceEndpoint": {"Value": endpoint},
            },
        }
    )


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with moto_server(ecs_running_tasks=1) as aws:
        yield aws


@pytest.fixture(scope="module")
def acme_bundle(tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    (built,) = write_bundles(DEFAULT_AGENTS_DIR, tmp_path_factory.mktemp("bundles"), instance="acme/retail/dev")
    return built


@pytest.fixture(scope="module")
def runtime(acme_bundle: BuiltBundle) -> Iterator[RuntimeProcess]:
    process = serve(acme_bundle.identity_env())
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.terminate()


def publish_stack(local_aws: LocalAws, endpoint: str, bundle_hash: str) -> None:
    """(Re)creates the instance's stack in moto with InstanceEndpoint = endpoint."""
    cloudformation = local_aws.client("cloudformation")
    if any(s["StackName"] == STACK for s in cloudformation.describe_stacks()["Stacks"]):
        cloudformation.delete_stack(StackName=STACK)
    cloudformation.create_stack(StackName=STACK, TemplateBody=instance_stack_template(endpoint, bundle_hash))


@pytest.fixture
def status_server(local_aws: LocalAws, deployer: Deployer) -> MCPServer:
    """The Foundry server as `serve` wires it (real boto3 reads, the real MCP probe), its AWS being moto."""
    config = FoundryConfig(
        repo_root=REPO_ROOT,
        agents_dir=DEFAULT_AGENTS_DIR,
        deployer=deployer,
        clients=local_aws.client,
        probe=probe_instance_mcp,
    )
    return build_server(config)


async def status_of(server: MCPServer, arguments: dict[str, Any]) -> dict[str, Any]:
    """One get_instance_status call through the in-memory client; a tool error fails the test."""
    async with Client(server) as client:
        result = await client.call_tool("foundry.get_instance_status", arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_status_includes_the_running_instances_own_status_tool_result(
    status_server: MCPServer, local_aws: LocalAws, runtime: RuntimeProcess, acme_bundle: BuiltBundle
) -> None:
    publish_stack(local_aws, runtime.url, acme_bundle.content_hash)
    status = await status_of(status_server, ACME)
    assert status["instance_endpoint"] == runtime.url
    assert status["instance_status_error"] is None
    own = status["instance_status"]
    assert own["bundle_hash"] == acme_bundle.content_hash
    assert own["ready"] is True
    assert own["draining"] is False
    assert "metrics" in own
    assert status["stack"]["outputs"]["BundleHash"] == own["bundle_hash"]
    assert status["service"]["name"] == "acme-retail-dev"


async def test_status_reports_an_unreachable_instance_without_failing_the_rest(
    status_server: MCPServer, local_aws: LocalAws, acme_bundle: BuiltBundle
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}/mcp"
    publish_stack(local_aws, nobody_listens, acme_bundle.content_hash)
    status = await status_of(status_server, ACME)
    assert status["instance_endpoint"] == nobody_listens
    assert status["instance_status"] is None
    assert "ConnectError" in status["instance_status_error"]
    assert status["stack"]["status"] == "CREATE_COMPLETE"
    assert status["service"]["desired_count"] == 1
    assert status["errors"] == []


@pytest.fixture(scope="module")
def secured_runtime(acme_bundle: BuiltBundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """The instance as it runs behind an internet-facing load balancer: callers need a token from its issuer."""
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as issuer:
        process = serve({**acme_bundle.identity_env(), **auth_env(issuer.url)})
        try:
            yield process
        finally:
            if process.process.poll() is None:
                process.terminate()


async def test_a_secured_instance_is_reported_answering_with_its_protected_resource_not_as_unreachable(
    status_server: MCPServer, local_aws: LocalAws, secured_runtime: RuntimeProcess, acme_bundle: BuiltBundle
) -> None:
    """The Foundry holds no tenant's token: the instance refuses its status call (401), and its open RFC 9728
    metadata shows the runtime answers and who issues the tokens its status tool needs."""
    publish_stack(local_aws, secured_runtime.url, acme_bundle.content_hash)
    status = await status_of(status_server, ACME)
    assert status["instance_status_error"] is None
    own = status["instance_status"]
    assert own["auth_required"] is True
    assert own["resource"] == f"https://{acme_bundle.instance.manifest.spec.hostname}/mcp"
    assert own["authorization_servers"] and "agentfoundry/read" in own["note"]
    assert "metrics" not in own, "nothing the status tool would say without a token"


async def test_probe_can_be_switched_off_per_call(
    status_server: MCPServer, local_aws: LocalAws, runtime: RuntimeProcess, acme_bundle: BuiltBundle
) -> None:
    publish_stack(local_aws, runtime.url, acme_bundle.content_hash)
    status = await status_of(status_server, {**ACME, "probe_instance": False})
    assert status["instance_endpoint"] == runtime.url
    assert status["instance_status"] is None
    assert status["instance_status_error"] is None


# --- the same over streamable HTTP with the bearer token --------------------------------------------------


@pytest.fixture(scope="module")
def http_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-deploys")


@pytest.fixture(scope="module")
def foundry_http(local_aws: LocalAws, http_work_dir: Path) -> Iterator[ServerProcess]:
    work_dir = http_work_dir
    with http_server(TOKEN, extra_args=("--work-dir", str(work_dir)), extra_env=local_aws.env) as server:
        yield server


def http_client(server: ServerProcess, http: httpx2.AsyncClient) -> Client:
    return Client(streamable_http_client(server.url, http_client=http))


def bearer() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(600))


async def test_http_session_reads_status_from_local_aws_and_the_running_instance(
    foundry_http: ServerProcess, local_aws: LocalAws, runtime: RuntimeProcess, acme_bundle: BuiltBundle
) -> None:
    publish_stack(local_aws, runtime.url, acme_bundle.content_hash)
    async with bearer() as http, http_client(foundry_http, http) as client:
        result = await client.call_tool("foundry.get_instance_status", ACME)
        missing = await client.call_tool(
            "foundry.get_instance_status", {"environment": "dev", "instance": "default-org/default-domain/dev"}
        )
    assert not result.is_error, result.content
    status = result.structured_content
    assert status["stack"]["name"] == STACK
    assert status["instance_status"]["bundle_hash"] == acme_bundle.content_hash
    assert missing.structured_content["verdict"] == "not_deployed"
    assert missing.structured_content["errors"] == []


async def test_http_session_dry_run_synthesizes_the_instance_and_streams_progress(
    foundry_http: ServerProcess, http_work_dir: Path
) -> None:
    seen = Notifications()
    arguments = {**ACME, "dry_run": True, "runtime_image": IMAGE}
    async with (
        bearer() as http,
        Client(
            streamable_http_client(foundry_http.url, http_client=http), logging_callback=seen.on_log, log_level="info"
        ) as client,
    ):
        result = await client.call_tool("foundry.deploy_instance", arguments, progress_callback=seen.on_progress)
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["outcome"] == "synthesized", out
    assert out["synthesized_stacks"] == [STACK, "af-dev-platform"]
    assert [c[1] for c in out["commands"]] == ["synth", "diff"]
    assert "instance=acme/retail/dev" in out["commands"][0]
    assert Path(out["work_dir"]) == http_work_dir / "dev" / "acme" / "retail" / "dev"
    assert (http_work_dir / "dev" / "acme" / "retail" / "dev" / "cdk.out" / "manifest.json").is_file()
    assert seen.progress, "no progress notification arrived over HTTP"
    assert any(STACK in line for line in seen.progress)
    assert any("starting dry-run (synth + diff) of acme/retail/dev in dev" in line for line in seen.logs)
