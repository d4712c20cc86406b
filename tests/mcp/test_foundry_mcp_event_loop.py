"""Tool handlers never block the server's event loop: while one client waits on a deploy, another is answered.

Two real clients talk to `python -m foundry serve --transport http` over streamable HTTP. The first asks for a dry
run of one instance of a generated 1,000-instance fleet that the server has never read (validating it takes
seconds), then waits while the real CDK CLI synthesizes and diffs it. Meanwhile the second client calls
`foundry.list_instances` again and again until the first call returns. Every answer must come quickly: the bound is
generous (a busy shared machine answers in a fraction of it), it only tells "blocked" (seconds, for as long as the
fleet is being validated on the loop) from "not blocked".
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from benchmarks.fleet_generator import generate_fleet
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT, ServerProcess, http_server

pytestmark = pytest.mark.slow

TOKEN = "loop-token-0123456789abcdef"
FLEET_SIZE = 1000
ANSWER_BOUND_SECONDS = 2.0
GEN_IMAGE = "444444444444.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0"  # the generated fleet's own ECR


@pytest.fixture(scope="module")
def large_fleet() -> Iterator[str]:
    """A fleet no server has read yet (a fresh folder: its validated-fleet cache entry does not exist), inside the
    repository as `agents_dir` requires."""
    folder = REPO_ROOT / "build" / "test-fleets" / uuid.uuid4().hex
    generate_fleet(folder / "agents", FLEET_SIZE)
    try:
        yield str((folder / "agents").relative_to(REPO_ROOT))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # only when no other run's fleet is in it


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with moto_server() as aws:
        yield aws


@pytest.fixture(scope="module")
def server(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("deploys")
    with http_server(TOKEN, extra_args=("--work-dir", str(work)), extra_env=local_aws.env) as process:
        yield process


async def test_list_instances_answers_quickly_while_another_client_waits_on_a_deploy(
    server: ServerProcess, large_fleet: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deploy_done = asyncio.Event()
    answers: list[float] = []

    async def deploy() -> Any:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(900)) as http,
            Client(streamable_http_client(server.url, http_client=http), read_timeout_seconds=900) as client,
        ):
            try:
                return await client.call_tool(
                    "foundry.deploy_instance",
                    {
                        "environment": "gen0",
                        "instance": "org00/dom0/i0000",
                        "dry_run": True,
                        "runtime_image": GEN_IMAGE,
                        "agents_dir": large_fleet,
                    },
                )
            finally:
                deploy_done.set()

    async def list_meanwhile() -> None:
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(server.url, http_client=http)) as client,
        ):
            while not deploy_done.is_set():
                started = time.monotonic()
                result = await client.call_tool("foundry.list_instances", {"environment": "dev"})
                answers.append(time.monotonic() - started)
                assert result.structured_content["count"] == 2

    deployed, _ = await asyncio.gather(deploy(), list_meanwhile())
    assert not deployed.is_error, deployed.content
    assert deployed.structured_content["outcome"] == "synthesized", deployed.structured_content
    assert len(answers) >= 5, "the second client was answered while the first one waited"
    assert max(answers) < ANSWER_BOUND_SECONDS, f"slowest answer {max(answers):.1f}s: the event loop was blocked"
