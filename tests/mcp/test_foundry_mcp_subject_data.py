"""`foundry.export_subject_data` and `foundry.erase_subject_data` carried to a REAL runtime process through the
instance's own MCP tools: moto's CloudFormation holds the instance's stack, whose InstanceEndpoint output points at
a secured `python -m runtime serve` on 127.0.0.1 (tokens from a local issuer, threads in its own SQLite file that
the Foundry is never told of). The Foundry finds the endpoint as in AWS and presents the operator's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from foundry.deploy.deployer import Deployer
from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.manifests import naming
from foundry.mcp.server import FoundryConfig, build_server
from oauth_resource.dev_issuer import RunningIssuer, serve_issuer
from runtime.auth import ADMIN_SCOPE, INSTANCE_SCOPES, READ_SCOPE
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT
from tests.mcp.test_foundry_mcp_instance_probe import instance_stack_template
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, auth_env, mcp_client, serve, write_bundles

pytestmark = pytest.mark.slow
INSTANCE = {"environment": "dev", "instance": "default-org/default-domain/dev"}


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with moto_server(ecs_running_tasks=1) as aws:
        yield aws


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    (bundle,) = write_bundles(DEFAULT_AGENTS_DIR, tmp_path_factory.mktemp("bundles"), instance=INSTANCE["instance"])
    return bundle


@pytest.fixture
def runtime(built: BuiltBundle, issuer: RunningIssuer, tmp_path: Path, local_aws: LocalAws) -> Iterator[RuntimeProcess]:
    process = serve({**built.identity_env(), **auth_env(issuer.url), "STATE_URL": f"sqlite:///{tmp_path / 't.db'}"})
    stack = naming.instance_stack_name("dev", built.instance.key)
    cloudformation = local_aws.client("cloudformation")
    if any(s["StackName"] == stack for s in cloudformation.describe_stacks()["Stacks"]):
        cloudformation.delete_stack(StackName=stack)
    cloudformation.create_stack(StackName=stack, TemplateBody=instance_stack_template(process.url, built.content_hash))
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.terminate()


@pytest.fixture
def foundry(local_aws: LocalAws, deployer: Deployer) -> MCPServer:
    return build_server(
        FoundryConfig(
            repo_root=REPO_ROOT, agents_dir=DEFAULT_AGENTS_DIR, deployer=deployer, clients=local_aws.client, probe=None
        )
    )


async def call(server: MCPServer, tool: str, **arguments: Any) -> tuple[bool, Any]:
    async with Client(server) as client:
        result = await client.call_tool(tool, {**INSTANCE, **arguments})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return result.is_error, text if result.is_error else result.structured_content


async def test_the_foundry_exports_and_erases_a_subjects_threads_through_the_instances_own_tools(
    foundry: MCPServer, runtime: RuntimeProcess, built: BuiltBundle, issuer: RunningIssuer
) -> None:
    alice = built.token(issuer.issuer, subject="alice", scopes=INSTANCE_SCOPES)
    operator = built.token(issuer.issuer, subject="ops", scopes=(READ_SCOPE, ADMIN_SCOPE))
    async with mcp_client(runtime.url, alice) as client:
        for thread in ("t1", "t2"):
            done = await client.call_tool("invoke", {"message": f"plan {thread}", "thread_id": thread})
            assert not done.is_error, done.content

    failed, answer = await call(foundry, "foundry.export_subject_data", subject="alice", instance_token=alice)
    assert failed and "insufficient_scope: this call needs the agentfoundry/admin scope" in answer

    failed, answer = await call(foundry, "foundry.export_subject_data", subject="alice", instance_token=operator)
    assert not failed, answer
    assert answer["instance_endpoint"] == runtime.url
    assert (answer["organization"], answer["subject"]) == ("default-org", "alice")
    first_messages = {t["thread_id"]: t["messages"][0]["content"] for t in answer["threads"]}
    assert first_messages == {"t1": "plan t1", "t2": "plan t2"}

    failed, answer = await call(foundry, "foundry.erase_subject_data", subject="alice", instance_token=operator)
    assert (failed, answer["erased"]) == (False, 2)
    failed, answer = await call(foundry, "foundry.erase_subject_data", subject="alice", instance_token=operator)
    assert failed and "erased 0 threads: no threads of subject 'alice' in organization 'default-org'" in answer


async def test_an_undeployed_instance_or_a_bad_token_is_a_clear_refusal(
    foundry: MCPServer, local_aws: LocalAws
) -> None:
    failed, answer = await call(
        foundry,
        "foundry.export_subject_data",
        environment="dev",
        instance="acme/retail/dev",
        subject="alice",
        instance_token="x" * 20,
    )
    assert failed and "instance acme/retail/dev is not deployed (no stack af-dev-acme-retail-dev)" in answer
    failed, answer = await call(foundry, "foundry.erase_subject_data", subject="alice", instance_token=" ")
    assert failed and "instance_token is empty" in answer
