"""A local AWS for the Foundry MCP tests: moto's server on 127.0.0.1, as the account of the dev environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import httpx

from foundry.local_aws import MOTO_SERVER_MODULE, REPO_ROOT
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


@contextmanager
def moto_server(*, ecs_running_tasks: int = 0) -> Iterator[LocalAws]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    aws_env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION": f"http://localhost:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    server_env = {
        **os.environ,
        "MOTO_ACCOUNT_ID": DEV_ACCOUNT,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        # moto runs no containers; this is the running count it reports for every new ECS service
        "MOTO_ECS_SERVICE_RUNNING": str(ecs_running_tasks),
    }
    # moto's server plus the CloudFormation types the instance stacks need that moto lacks (foundry/local_moto.py)
    argv = [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", "127.0.0.1", "-p", str(port)]
    with started(argv, env=server_env, ready_marker="Running on", url=url):
        yield LocalAws(url=url, env=aws_env)
