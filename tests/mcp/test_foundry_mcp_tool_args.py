"""Argument checks of the Foundry MCP tools, as pure functions over the example fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.deploy.arguments import (
    DIRECTORY_FORM,
    SELECTOR_FORM,
    ToolArgumentError,
    check_image_uri,
    check_plain_value,
    check_repo_path,
    check_selector,
    check_timeout,
    find_instance,
)
from foundry.deploy.image_reference import IMAGE_FORM
from foundry.fleet.load import load_fleet
from foundry.fleet.model import Fleet
from tests.mcp.foundry_mcp_process_helpers import REPO_ROOT


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(REPO_ROOT / "agents")


def test_known_instance_is_found(fleet: Fleet) -> None:
    resolved = find_instance(fleet, "dev", "acme/retail/dev")
    assert resolved.manifest.spec.stack_name == "af-dev-acme-retail-dev"


def test_instance_of_another_environment_is_unknown_and_the_known_ones_are_listed(fleet: Fleet) -> None:
    with pytest.raises(
        ToolArgumentError,
        match=r"unknown instance 'globex/billing/eu-west-1' in environment 'dev'.*"
        r"known: acme/retail/dev, default-org/default-domain/dev",
    ):
        find_instance(fleet, "dev", "globex/billing/eu-west-1")


def test_unknown_environment_is_refused_with_the_known_ones(fleet: Fleet) -> None:
    with pytest.raises(ToolArgumentError, match="unknown environment 'qa'; known: dev, prod, staging"):
        find_instance(fleet, "qa", "acme/retail/dev")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme/retail/dev; rm -rf /", "shell metacharacters ;"),
        ("acme/retail/$(whoami)", r"shell metacharacters \$ \( \)"),
        ("acme/retail/`id`", "shell metacharacters `"),
        ("acme/retail/dev && curl x", "shell metacharacters &"),
        ("acme/retail/dev|tee", r"shell metacharacters \|"),
        ("acme/retail/dev > /etc/passwd", "shell metacharacters >"),
        ("--app=node evil.js", "looks like a command-line flag"),
        ("-c", "looks like a command-line flag"),
        ("acme/retail/dev\n--all", "control characters"),
        ("acme/retail/dev --all", "whitespace"),
        ("", "must not be empty"),
        ("a" * 600, "too long"),
    ],
)
def test_unsafe_values_are_refused_with_what_was_found(fleet: Fleet, value: str, expected: str) -> None:
    with pytest.raises(ToolArgumentError, match=expected) as refused:
        find_instance(fleet, "dev", value)
    message = str(refused.value)
    assert message.startswith("instance: "), "the refusal names the argument"
    assert message.endswith(f"expected {SELECTOR_FORM}"), "the refusal says what is allowed"


def test_selector_with_bad_shape_is_refused(fleet: Fleet) -> None:
    with pytest.raises(ToolArgumentError, match="must be ORG/DOMAIN/INSTANCE"):
        find_instance(fleet, "dev", "acme/retail")


def test_flag_like_environment_is_refused(fleet: Fleet) -> None:
    with pytest.raises(ToolArgumentError, match="environment: '--profile=prod' looks like a command-line flag"):
        find_instance(fleet, "--profile=prod", "acme/retail/dev")


@pytest.mark.parametrize(
    "uri",
    [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.4.2",
        "localhost:5000/agent-runtime:dev",
        "public.ecr.aws/acme/agent-runtime@sha256:" + "a" * 64,
        "agent-runtime:2026-11-20",
    ],
)
def test_image_references_with_a_tag_or_digest_are_accepted(uri: str) -> None:
    assert check_image_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-runtime", "names no tag or digest"),
        ("Agent-Runtime:1", "is not a container image reference"),
        ("repo:tag;curl evil", "shell metacharacters"),
        ("--app=repo:1", "looks like a command-line flag"),
        ("repo@sha256:short", "is not a container image reference"),
    ],
)
def test_bad_image_references_are_refused(uri: str, expected: str) -> None:
    with pytest.raises(ToolArgumentError, match=expected) as refused:
        check_image_uri(uri)
    assert str(refused.value).startswith("runtime_image: ")
    assert str(refused.value).endswith(f"expected {IMAGE_FORM}")


def test_repo_relative_directory_is_accepted() -> None:
    assert check_repo_path("agents_dir", "agents", REPO_ROOT) == (REPO_ROOT / "agents").resolve()


@pytest.mark.parametrize("value", ["../agents", "/etc", "agents/../../.."])
def test_paths_outside_the_repository_are_refused(value: str) -> None:
    with pytest.raises(ToolArgumentError, match="outside the repository") as refused:
        check_repo_path("agents_dir", value, REPO_ROOT)
    assert str(refused.value).startswith("agents_dir: ")
    assert str(refused.value).endswith(f"expected {DIRECTORY_FORM}")


@pytest.mark.parametrize("value", ["-agents", "agents;ls", "pyproject.toml"])
def test_flag_like_unsafe_or_non_directory_paths_are_refused_saying_what_is_allowed(value: str) -> None:
    with pytest.raises(ToolArgumentError) as refused:
        check_repo_path("agents_dir", value, REPO_ROOT)
    assert str(refused.value).startswith("agents_dir: ")
    assert str(refused.value).endswith(f"expected {DIRECTORY_FORM}")


def test_symlink_that_leaves_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "agents").symlink_to(tmp_path)
    with pytest.raises(ToolArgumentError, match="outside the repository"):
        check_repo_path("agents_dir", "agents", repo)


def test_plain_value_passes_unchanged() -> None:
    assert check_plain_value("instance", "acme/retail/dev", SELECTOR_FORM) == "acme/retail/dev"


def test_selector_becomes_an_instance_key() -> None:
    key = check_selector("instance", "acme/retail/dev")
    assert (key.organization_id, key.domain_id, key.instance_id) == ("acme", "retail", "dev")


@pytest.mark.parametrize("seconds", [0, 5, 10**6])
def test_timeout_outside_its_range_is_refused(seconds: int) -> None:
    with pytest.raises(ToolArgumentError, match=r"^timeout_seconds: .*expected whole seconds from 30 to 14400$"):
        check_timeout(seconds)
