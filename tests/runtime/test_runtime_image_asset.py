"""A control-plane change never rolls the fleet: the runtime image asset's hash covers only what runs in it.

The CDK app builds the runtime image as a `DockerImageAsset` over the repository root with file runtime/Dockerfile
(stacks/fleet_app.py, stacks/instance_stack.py); the asset hash is in every instance's task definition, so any
change to it redeploys every instance. Here the same asset is made (same directory, file and platform, the
.dockerignore honoured as the app honours it) over a copy of the repository, before and after an edit.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr_assets as ecr_assets

from tests.runtime.runtime_harness import REPO_ROOT

pytestmark = pytest.mark.slow

RUNTIME_DOCKERFILE = "runtime/Dockerfile"
"""As stacks/fleet_app.py passes it (relative to the build context, the repository root)."""

CONTROL_PLANE_EDITS = [
    "foundry/mcp/server.py",  # the Foundry MCP server
    "foundry/deploy/deployer.py",  # the deployer
    "foundry/plan/changes.py",  # the change plan
    "foundry/cli.py",  # the CLI
    "foundry/manifests/schema.py",
    "foundry/bundles/archive.py",
    "app.py",
    "stacks/instance_stack.py",
    "constructs/af_agent_runtime.py",
    "agents/manifests/manifest.dev.yaml",
    "tests/runtime/runtime_harness.py",
    "requirements.txt",
    "requirements.lock",
    "README.md",
    "runtime/image/podman.py",  # builds the image, is not in it
]
RUNTIME_EDITS = [
    "runtime/graph.py",
    "runtime/edge/server.py",
    "runtime/agents/supervisor.py",
    "runtime/requirements.lock",
    "runtime/Dockerfile",
    "instance_contract/schema.py",
    "instance_contract/bundle_format.py",
    "oauth_resource/verifier.py",
]


class AssetHasher:
    """One CDK app; each call adds the runtime image asset for a directory and returns its hash."""

    def __init__(self) -> None:
        self.stack = cdk.Stack(cdk.App(), "ImageAssetProbe")
        self.count = 0

    def __call__(self, directory: Path) -> str:
        self.count += 1
        asset = ecr_assets.DockerImageAsset(
            self.stack,
            f"RuntimeImage{self.count}",
            directory=str(directory),
            file=RUNTIME_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        return asset.asset_hash


@pytest.fixture(scope="module")
def asset_hash() -> AssetHasher:
    return AssetHasher()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (tracked and new, not ignored), without .venv, node_modules, build output or .git."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    target = tmp_path_factory.mktemp("repo-copy") / "repo"
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture
def repo(pristine: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "repo"
    shutil.copytree(pristine, copy)
    yield copy


def edit(path: Path) -> None:
    comment = "<!-- edited -->" if path.suffix == ".md" else "# edited"
    path.write_text(path.read_text() + f"\n{comment}\n")


@pytest.mark.parametrize("changed", CONTROL_PLANE_EDITS)
def test_a_control_plane_change_leaves_the_runtime_image_asset_hash_unchanged(
    changed: str, repo: Path, pristine: Path, asset_hash: AssetHasher
) -> None:
    before = asset_hash(pristine)
    edit(repo / changed)
    assert asset_hash(repo) == before


@pytest.mark.parametrize("changed", RUNTIME_EDITS)
def test_a_runtime_change_changes_the_runtime_image_asset_hash(
    changed: str, repo: Path, pristine: Path, asset_hash: AssetHasher
) -> None:
    before = asset_hash(pristine)
    edit(repo / changed)
    assert asset_hash(repo) != before


def test_new_control_plane_files_and_bytecode_caches_leave_the_hash_unchanged(
    repo: Path, pristine: Path, asset_hash: AssetHasher
) -> None:
    before = asset_hash(pristine)
    (repo / "runtime" / "__pycache__").mkdir(exist_ok=True)
    (repo / "runtime" / "__pycache__" / "graph.cpython-311.pyc").write_bytes(b"\0")
    (repo / "tests" / "runtime" / "test_new.py").write_text("def test_x() -> None: ...\n")
    (repo / "foundry" / "new_tool.py").write_text("X = 1\n")
    (repo / "docs" / "new.md").write_text("# new\n")
    assert asset_hash(repo) == before


def test_a_new_runtime_module_changes_the_hash(repo: Path, pristine: Path, asset_hash: AssetHasher) -> None:
    """(CDK caches a fingerprint per directory within a process: every hash here is of a fresh copy.)"""
    before = asset_hash(pristine)
    (repo / "runtime" / "new_module.py").write_text("X = 1\n")
    assert asset_hash(repo) != before
