"""Fixtures of the Foundry MCP server tests: a server wired to the real CDK CLI runner, with its deploy folders
(cdk.out, outputs files, locks) in the test's tmp_path so a test can prove what was (not) created."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.server.mcpserver import MCPServer

from foundry.aws.clients import boto3_clients
from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import InstanceLocks
from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.mcp.server import FoundryConfig, build_server
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT


@pytest.fixture
def deploys_dir(tmp_path: Path) -> Path:
    return tmp_path / "foundry-deploys"


@pytest.fixture
def runner() -> ProcessRunner:
    return ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))


@pytest.fixture
def deployer(runner: ProcessRunner, deploys_dir: Path) -> Deployer:
    return Deployer(
        repo_root=REPO_ROOT, runner=runner, locks=InstanceLocks(), work_root=deploys_dir, clients=boto3_clients
    )


@pytest.fixture
def foundry_config(deployer: Deployer) -> FoundryConfig:
    return FoundryConfig(
        repo_root=REPO_ROOT, agents_dir=DEFAULT_AGENTS_DIR, deployer=deployer, clients=boto3_clients, probe=None
    )


@pytest.fixture
def server(foundry_config: FoundryConfig) -> MCPServer:
    return build_server(foundry_config)
