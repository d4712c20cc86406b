"""A local AWS for the Foundry MCP tests: moto's server on 127.0.0.1, as the account of the dev environment, and
the real CDK CLI steps a platform engineer runs on it (bootstrap, the platform stack)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from mcp.server.mcpserver import MCPServer

from foundry.aws.cloudformation import stack_events_failure
from foundry.cdk.process import ProcessResult, ProcessRunner, tool_environment
from foundry.deploy.deployer import Deployer
from foundry.deploy.interruption import WATCH_POLL_SECONDS
from foundry.deploy.locks import InstanceLocks
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.local.server import MOTO_SERVER_MODULE
from foundry.mcp.server import FoundryConfig, build_server
from tests.mcp.foundry_mcp_process_helpers import free_port, started

DEV_ACCOUNT = "111111111111"  # agents/platform.yaml: dev
REGION = "us-east-1"


@dataclass(frozen=True)
class LocalAws:
    url: str
    env: dict[str, str]
    """What a cdk/boto3 process needs to talk to it (endpoint, dummy credentials, region)."""

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.session.Session().client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/reset").raise_for_status()


def local_runner(local_aws: LocalAws) -> ProcessRunner:
    """Runs cdk and the other tools as the server would, pointed at the local AWS."""
    return ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT, {**os.environ, **local_aws.env}))


def local_deployer(
    local_aws: LocalAws,
    runner: ProcessRunner,
    work_root: Path,
    *,
    cdk_cli: Path | None = None,
    watch_poll_seconds: float = WATCH_POLL_SECONDS,
) -> Deployer:
    """The server's deployer against the local AWS: `--method=direct` (moto has no change sets) and stack events
    for a failure's resource."""
    return Deployer(
        repo_root=REPO_ROOT,
        runner=runner,
        locks=InstanceLocks(),
        method="direct",
        failure_lookup=stack_events_failure(local_aws.client),
        work_root=work_root,
        clients=local_aws.client,
        cdk_cli=cdk_cli,
        watch_poll_seconds=watch_poll_seconds,
    )


def local_foundry_server(local_aws: LocalAws, deployer: Deployer) -> MCPServer:
    """The Foundry MCP server over the repository's agents, deploying with `deployer` to the local AWS."""
    config = FoundryConfig(
        repo_root=REPO_ROOT, agents_dir=DEFAULT_AGENTS_DIR, deployer=deployer, clients=local_aws.client, probe=None
    )
    return build_server(config)


def _aws_env(port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION": f"http://localhost:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


@contextmanager
def moto_server(*, ecs_running_tasks: int = 0) -> Iterator[LocalAws]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    aws_env = _aws_env(port)
    server_env = {
        **os.environ,
        "MOTO_ACCOUNT_ID": DEV_ACCOUNT,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        # moto runs no containers; this is the running count it reports for every new ECS service
        "MOTO_ECS_SERVICE_RUNNING": str(ecs_running_tasks),
    }
    # moto's server plus the CloudFormation types the instance stacks need that moto lacks (foundry/local/moto.py)
    argv = [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", "127.0.0.1", "-p", str(port)]
    with started(argv, env=server_env, ready_marker="Running on", url=url):
        yield LocalAws(url=url, env=aws_env)


CDK = str(REPO_ROOT / "node_modules" / ".bin" / "cdk")


async def _ignore(line: str) -> None:
    return None


def run_cdk(runner: ProcessRunner, argv: list[str], timeout_seconds: int = 600) -> ProcessResult:
    """The real CDK CLI through the server's runner (same environment), outside any tool call."""
    result = asyncio.run(runner.run([CDK, *argv], timeout_seconds=timeout_seconds, on_line=_ignore))
    assert result.ok, "\n".join(result.lines[-40:])
    return result


def bootstrap(runner: ProcessRunner) -> None:
    run_cdk(runner, ["bootstrap", f"aws://{DEV_ACCOUNT}/{REGION}", "--app", ""], timeout_seconds=300)


def deploy_platform(
    runner: ProcessRunner, output: Path, *, environment: str = "dev", agents_dir: Path | None = None
) -> None:
    """What a platform engineer does on purpose before any instance of the environment is deployed."""
    run_cdk(
        runner,
        [
            "deploy",
            f"af-{environment}-platform",
            "--context",
            f"agentsDir={agents_dir or REPO_ROOT / 'agents'}",
            "--context",
            f"environment={environment}",
            "--output",
            str(output),
            "--require-approval",
            "never",
            "--method=direct",
            "--no-color",
        ],
    )


@contextmanager
def in_process_moto_server() -> Iterator[LocalAws]:
    """moto's server in a thread of this process, for the tests that must play CloudFormation's own timing (a stack
    CloudFormation is still working on, see `CloudFormationAtWork`): the same HTTP API as `moto_server`."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    import foundry.local.moto_models  # noqa: F401 - the same CloudFormation additions as the local AWS's server

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_ACCOUNT_ID", DEV_ACCOUNT)
        patch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        aws = LocalAws(url=url, env=_aws_env(port))
        try:
            yield aws
        finally:
            aws.reset()
            server.stop()


class CloudFormationAtWork:
    """Keeps chosen stacks in CREATE_IN_PROGRESS after moto created their resources, as CloudFormation does while
    it waits for an ECS service to stabilize (which can take hours), until `settle` gives the operation's end.
    moto completes a stack inside CreateStack; this is the one place where the tests play CloudFormation's timing
    (in-process moto only)."""

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        from moto.cloudformation.models import Stack

        self.held: set[str] = set()
        original = Stack.mark_creation_complete
        held = self.held

        def mark_creation_complete(stack: Any) -> None:
            if stack.name not in held:
                original(stack)

        patch.setattr(Stack, "mark_creation_complete", mark_creation_complete)

    def hold(self, stack_name: str) -> None:
        self.held.add(stack_name)

    def settle(self, stack_name: str, status: str) -> None:
        """CloudFormation finishes: the stack ends in `status` (e.g. ROLLBACK_COMPLETE after a failed create)."""
        from moto.cloudformation.models import cloudformation_backends

        self.held.discard(stack_name)
        backend = cloudformation_backends[DEV_ACCOUNT][REGION]
        for stack in backend.stacks.values():
            if stack.name == stack_name and stack.status.endswith("_IN_PROGRESS"):
                stack.status = status
                stack._add_stack_event(status)
