"""A bundle the runtime cannot vouch for stops the process at start, with a message naming what is wrong."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from foundry.bundles.archive import INDEX_FILE, index_document, read_bundle
from foundry.files.json_emit import canonical_json
from tests.runtime.runtime_harness import REPO_ROOT, BuiltBundle, runtime_env

pytestmark = pytest.mark.slow


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=runtime_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def repack(files: dict[str, bytes], name: str, environment: str) -> bytes:
    """A self-consistent archive (its index matches its files), so only the runtime's own checks can object."""
    everything = {INDEX_FILE: canonical_json(index_document(name, environment, files)), **files}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path, data in sorted(everything.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def serve_repacked(bundle: BuiltBundle, files: dict[str, bytes], path: Path) -> subprocess.CompletedProcess[str]:
    """Starts the runtime on `files` repacked as a self-consistent bundle at `path` (no hash pinned)."""
    path.write_bytes(repack(files, bundle.instance.manifest.metadata.name, "dev"))
    return run_serve({**bundle.identity_env(), "BUNDLE_URI": str(path), "BUNDLE_HASH": ""})


@pytest.fixture
def bundle(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == "acme/retail/dev")


def contents(bundle: BuiltBundle) -> dict[str, bytes]:
    _, files = read_bundle(bundle.path.read_bytes(), str(bundle.path))
    return files


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Uvicorn running" not in result.stderr


def test_a_missing_bundle_file_is_named(bundle: BuiltBundle, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.tar.gz"
    result = run_serve({**bundle.identity_env(), "BUNDLE_URI": str(missing)})
    assert_refused(result, str(missing), "bundle file not found")


def test_a_wrong_content_hash_is_refused(bundle: BuiltBundle) -> None:
    wrong = "sha256:" + "0" * 64
    result = run_serve({**bundle.identity_env(), "BUNDLE_HASH": wrong})
    assert_refused(result, str(bundle.path), bundle.content_hash, wrong)


def test_a_malformed_bundle_hash_setting_is_refused(bundle: BuiltBundle) -> None:
    result = run_serve({**bundle.identity_env(), "BUNDLE_HASH": "md5:abc"})
    assert_refused(result, "BUNDLE_HASH")


def test_a_file_changed_after_bundling_is_named(bundle: BuiltBundle, tmp_path: Path) -> None:
    with tarfile.open(bundle.path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members["graph.json"] = members["graph.json"].replace(b"ticket-agent", b"evil-agent")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path, data in sorted(members.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(raw.getvalue())
    result = run_serve({**bundle.identity_env(), "BUNDLE_URI": str(tampered), "BUNDLE_HASH": ""})
    assert_refused(result, "graph.json has sha256")


def test_a_file_missing_from_the_bundle_is_named(bundle: BuiltBundle, tmp_path: Path) -> None:
    files = contents(bundle)
    del files["graph.json"]
    result = serve_repacked(bundle, files, tmp_path / "no-graph.tar.gz")
    assert_refused(result, "graph.json is missing from the bundle")


def test_an_invalid_instance_manifest_is_named_with_its_field(bundle: BuiltBundle, tmp_path: Path) -> None:
    files = contents(bundle)
    document = yaml.safe_load(files["instance.yaml"])
    document["spec"]["deploy"]["cpu"] = 300
    files["instance.yaml"] = yaml.safe_dump(document).encode()
    result = serve_repacked(bundle, files, tmp_path / "bad-manifest.tar.gz")
    assert_refused(result, "instance.yaml: spec.deploy.cpu")


def test_an_instance_manifest_nested_past_the_bound_is_refused_before_it_is_composed(
    bundle: BuiltBundle, tmp_path: Path
) -> None:
    """Thousands of `[` would overflow libyaml's recursive composer and kill the process without a message."""
    files = contents(bundle)
    files["instance.yaml"] = b"spec: " + b"[" * 20_000 + b"]" * 20_000 + b"\n"
    result = serve_repacked(bundle, files, tmp_path / "deep-manifest.tar.gz")
    assert_refused(result, "instance.yaml is not valid YAML", "nested more than 100 levels deep")


def test_an_invalid_agent_spec_is_named(bundle: BuiltBundle, tmp_path: Path) -> None:
    files = contents(bundle)
    path_in_bundle = "agents/specs/workers/pm-agent.yaml"
    files[path_in_bundle] = files[path_in_bundle].replace(b"role: worker", b"role: wizard")
    result = serve_repacked(bundle, files, tmp_path / "bad-spec.tar.gz")
    assert_refused(result, f"{path_in_bundle}: spec.role")


def test_a_graph_edge_to_an_unknown_node_is_named_with_the_nodes_allowed(bundle: BuiltBundle, tmp_path: Path) -> None:
    files = contents(bundle)
    graph = json.loads(files["graph.json"])
    graph["edges"][0]["target"] = "planner"
    files["graph.json"] = json.dumps(graph).encode()
    result = serve_repacked(bundle, files, tmp_path / "bad-graph.tar.gz")
    assert_refused(
        result, "graph.json: edges[0] (io_in -> planner, next): target 'planner' is not allowed", "(io_in, governance"
    )


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("ORG_ID", "globex", "organization_id"),
        ("DOMAIN_ID", "billing", "domain_id"),
        ("ENVIRONMENT", "prod", "environment"),
        ("INSTANCE_ID", "us-east-1", "instance_id"),
    ],
)
def test_an_identity_that_does_not_match_the_bundle_is_refused(
    bundle: BuiltBundle, variable: str, value: str, field: str
) -> None:
    result = run_serve({**bundle.identity_env(), variable: value})
    assert_refused(result, "identity mismatch", f"{variable}={value!r}", f"spec.identity.{field}")
