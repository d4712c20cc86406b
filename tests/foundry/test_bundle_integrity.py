"""A bundle is trusted only when every file matches its index and the expected content hash."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from foundry.bundles.archive import INDEX_FILE, Bundle, BundleError, _archive, build_bundle, read_bundle
from foundry.fleet.load import load_fleet
from tests.conftest import AGENTS_DIR


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return build_bundle(load_fleet(AGENTS_DIR, instance="acme/retail/dev").instances[0])


def _unpack(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_a_sound_bundle_reads_back_with_its_hash(bundle: Bundle) -> None:
    index, files = read_bundle(bundle.archive, "b.tar.gz", bundle.content_hash)
    assert index["content_hash"] == bundle.content_hash
    assert files == bundle.files
    assert [f["path"] for f in index["files"]] == sorted(bundle.files)


def test_the_archive_is_normalised(bundle: Bundle) -> None:
    with tarfile.open(fileobj=io.BytesIO(bundle.archive), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.mode, m.uid, m.gid, m.uname, m.gname) for m in members} == {(315532800, 0o644, 0, 0, "", "")}
    assert gzip.decompress(bundle.archive)  # a plain gzip stream
    assert bundle.archive[4:8] == b"\0\0\0\0", "gzip header carries no timestamp"


def test_a_wrong_expected_hash_is_refused(bundle: Bundle) -> None:
    with pytest.raises(BundleError, match=r"b\.tar\.gz: content hash is sha256:.* but sha256:0+ was expected"):
        read_bundle(bundle.archive, "b.tar.gz", "sha256:" + "0" * 64)


def test_an_edited_file_is_named(bundle: Bundle) -> None:
    files = _unpack(bundle.archive)
    files["instance.yaml"] += b"# edited\n"
    with pytest.raises(BundleError, match=r"instance\.yaml has sha256"):
        read_bundle(_archive(files), "b.tar.gz")


def test_a_missing_file_is_named(bundle: Bundle) -> None:
    files = _unpack(bundle.archive)
    del files["graph.json"]
    with pytest.raises(BundleError, match=r"graph\.json is listed in index\.json but missing"):
        read_bundle(_archive(files), "b.tar.gz")


def test_an_unlisted_file_is_named(bundle: Bundle) -> None:
    files = _unpack(bundle.archive)
    files["extra.sh"] = b"echo hi"
    with pytest.raises(BundleError, match=r"extra\.sh is in the archive but not listed"):
        read_bundle(_archive(files), "b.tar.gz")


def test_a_forged_index_does_not_match_its_hash(bundle: Bundle) -> None:
    files = _unpack(bundle.archive)
    index = json.loads(files[INDEX_FILE])
    index["content_hash"] = "sha256:" + "1" * 64
    files[INDEX_FILE] = json.dumps(index).encode()
    with pytest.raises(BundleError, match="content hash is"):
        read_bundle(_archive(files), "b.tar.gz")


def test_garbage_is_not_a_bundle() -> None:
    with pytest.raises(BundleError, match="not a readable bundle archive"):
        read_bundle(b"not a tarball", "junk.tar.gz")


def test_bundles_never_carry_secret_values(bundle: Bundle) -> None:
    mcp = json.loads(bundle.files["mcp.json"])
    assert mcp["secrets"] == ["ticket-api-token"]
    assert all(b"AKIA" not in data for data in bundle.files.values())
