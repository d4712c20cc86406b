"""`runtime_image` may only name a repository that agents/platform.yaml allows for the environment (by default the
environment's own ECR registry): the image runs with the tenant's task role and secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from foundry.deploy.arguments import ToolArgumentError, check_runtime_image
from foundry.deploy.deployer import Deployer
from foundry.deploy.image_reference import ImageReference, parse_image_reference, parse_repository_pattern
from foundry.fleet.load import load_fleet
from foundry.fleet.model import Fleet
from foundry.manifests.problems import ManifestError
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT

DEV_ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"  # agents/platform.yaml: dev's account and region
DIGEST = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(REPO_ROOT / "agents")


def dev_settings(fleet: Fleet) -> Any:
    return fleet.tree.platform.model.spec.environments["dev"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{DEV_ECR}/agent-runtime:1.4.2", ImageReference(DEV_ECR, "agent-runtime", "1.4.2", None)),
        (f"{DEV_ECR}/team/runtime@{DIGEST}", ImageReference(DEV_ECR, "team/runtime", None, DIGEST)),
        (f"{DEV_ECR}/runtime:1@{DIGEST}", ImageReference(DEV_ECR, "runtime", "1", DIGEST)),
        ("localhost:5000/agent-runtime:dev", ImageReference("localhost:5000", "agent-runtime", "dev", None)),
        ("python:3.11-slim", ImageReference("docker.io", "library/python", "3.11-slim", None)),
        ("acme/runtime:2", ImageReference("docker.io", "acme/runtime", "2", None)),
        ("Registry.Example.COM/x:1", ImageReference("registry.example.com", "x", "1", None)),
    ],
)
def test_image_references_are_parsed_into_registry_repository_tag_and_digest(
    text: str, expected: ImageReference
) -> None:
    assert parse_image_reference(text) == expected


def test_the_environments_own_ecr_registry_is_allowed_by_default(fleet: Fleet) -> None:
    image = f"{DEV_ECR}/agent-runtime:1.0.0"
    assert check_runtime_image(image, "dev", dev_settings(fleet)) == image
    assert check_runtime_image(f"{DEV_ECR}/team/runtime@{DIGEST}", "dev", dev_settings(fleet))


@pytest.mark.parametrize(
    "image",
    [
        f"{DEV_ECR}.evil.com/agent-runtime:1.0.0",  # a longer host, not the allowed one
        f"evil.com/{DEV_ECR}/agent-runtime:1.0.0",  # the allowed host as a repository path
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0",  # another account's registry
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com/agent-runtime:1.0.0",  # the account, another region
        "public.ecr.aws/docker/library/python:3.11-slim",
        "python:3.11-slim",  # Docker Hub
        f"{DEV_ECR}:443/agent-runtime:1.0.0",  # the same host on a port is another registry reference
    ],
)
def test_an_image_from_anywhere_else_is_refused_naming_image_environment_and_what_is_allowed(
    fleet: Fleet, image: str
) -> None:
    with pytest.raises(ToolArgumentError) as refused:
        check_runtime_image(image, "dev", dev_settings(fleet))
    message = str(refused.value)
    assert message.startswith(f"runtime_image: {image!r}")
    assert "is not allowed in environment 'dev'" in message
    assert message.endswith(f"{DEV_ECR}/*")
    assert "by default its own ECR registry" in message


@pytest.mark.parametrize(
    "image", [f"{DEV_ECR}@evil.com/agent-runtime:1.0.0", f"{DEV_ECR}/../agent-runtime:1", f"{DEV_ECR}//x:1"]
)
def test_references_that_try_to_smuggle_a_host_are_not_image_references(fleet: Fleet, image: str) -> None:
    with pytest.raises(ToolArgumentError, match="is not a container image reference"):
        check_runtime_image(image, "dev", dev_settings(fleet))


def allow(agents_copy: Path, patterns: list[str]) -> Fleet:
    platform = agents_copy / "platform.yaml"
    text = platform.read_text()
    listed = "".join(f"\n      - {p}" for p in patterns)
    platform.write_text(text.replace("      log_retention_days: 7\n", f"      log_retention_days: 7\n      "
                                     f"allowed_image_repositories:{listed}\n", 1))  # fmt: skip
    return load_fleet(agents_copy, cache_dir=None)


def test_allowed_image_repositories_replace_the_default(agents_copy: Path) -> None:
    fleet = allow(agents_copy, ["registry.acme.example/platform/*", "public.ecr.aws/acme/agent-runtime"])
    settings = dev_settings(fleet)
    assert check_runtime_image("registry.acme.example/platform/runtime:3", "dev", settings)
    assert check_runtime_image("registry.acme.example/platform/nested/runtime:3", "dev", settings)
    assert check_runtime_image("public.ecr.aws/acme/agent-runtime:3", "dev", settings)
    for refused in (
        "registry.acme.example/platform:3",  # the namespace itself is not under it
        "registry.acme.example/platform-evil/runtime:3",  # a longer name, not a sub-path
        "public.ecr.aws/acme/agent-runtime-evil:3",
        f"{DEV_ECR}/agent-runtime:1.0.0",  # the default no longer applies once the list is given
    ):
        with pytest.raises(ToolArgumentError, match="its allowed_image_repositories") as caught:
            check_runtime_image(refused, "dev", settings)
        assert str(caught.value).endswith("registry.acme.example/platform/*, public.ecr.aws/acme/agent-runtime")


@pytest.mark.parametrize(
    "pattern", ["registry.acme.example", "registry.acme.example/runtime:1", "registry.acme.example/Runtime", "/*"]
)
def test_a_malformed_allowed_repository_is_refused_by_validate_naming_the_field(
    agents_copy: Path, pattern: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        allow(agents_copy, [f"'{pattern}'"])
    text = str(caught.value)
    assert "platform.yaml" in text
    assert "allowed_image_repositories" in text


def test_repository_patterns_are_matched_on_parsed_parts() -> None:
    pattern = parse_repository_pattern(f"{DEV_ECR}/team/*")
    assert pattern.allows(parse_image_reference(f"{DEV_ECR}/team/a:1"))
    assert not pattern.allows(parse_image_reference(f"{DEV_ECR}/teams/a:1"))
    assert str(pattern) == f"{DEV_ECR}/team/*"
    with pytest.raises(ValueError, match="carries a tag or digest"):
        parse_repository_pattern(f"{DEV_ECR}/team:1")


async def test_deploy_with_a_foreign_image_is_refused_before_anything_runs(
    server: MCPServer, deployer: Deployer, deploys_dir: Path
) -> None:
    arguments = {"environment": "dev", "instance": "acme/retail/dev", "runtime_image": "docker.io/evil/runtime:1"}
    async with Client(server) as client:
        result = await client.call_tool("foundry.deploy_instance", arguments)
    assert result.is_error
    text = " ".join(str(getattr(c, "text", "")) for c in result.content)
    assert "runtime_image: 'docker.io/evil/runtime:1'" in text
    assert "not allowed in environment 'dev'" in text
    assert f"{DEV_ECR}/*" in text
    assert deployer.runner.started == 0
    assert not deploys_dir.exists()
