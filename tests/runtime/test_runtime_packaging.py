"""The runtime stays a small package that imports nothing of the control plane or the CDK. (The image itself is
built and run in test_runtime_image.py; its dependencies are checked in tests/test_requirements_locks.py.)"""

from __future__ import annotations

import subprocess
import sys

from mcp import Client, StdioServerParameters

from tests.runtime.runtime_harness import REPO_ROOT, BuiltBundle, runtime_env


def test_the_runtime_imports_nothing_of_the_control_plane_or_aws_cdk() -> None:
    probe = (
        "import sys, runtime.cli, runtime.edge.server, runtime.instance, runtime.graph;"
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aws_cdk', 'constructs', 'jsii', 'cdk_nag', 'foundry'));"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=runtime_env({}), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


async def test_the_stdio_mode_serves_the_same_tools(example_bundles: list[BuiltBundle]) -> None:
    built = example_bundles[0]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "runtime", "serve", "--bundle", str(built.path), "--stdio"],
        env=runtime_env({}),
        cwd=str(REPO_ROOT),
    )
    async with Client(params) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        result = await client.call_tool("invoke", {"message": "plan the roadmap", "thread_id": "stdio"})
    assert tools == ["describe", "erase_subject_data", "export_subject_data", "invoke", "status", "usage"]
    assert result.structured_content is not None and result.structured_content["ok"] is True
