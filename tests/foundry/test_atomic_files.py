"""The one writer of generated files: atomic, and content-addressed where the name is the content's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from foundry.files.atomic import write_atomically, write_content_addressed


def test_a_content_addressed_file_is_named_by_its_sha256_and_written_once(tmp_path: Path) -> None:
    path = write_content_addressed(b"bundle", tmp_path / "bundles", ".tar.gz")
    assert path == tmp_path / "bundles" / f"{hashlib.sha256(b'bundle').hexdigest()}.tar.gz"
    assert path.read_bytes() == b"bundle"
    mtime = path.stat().st_mtime_ns
    assert write_content_addressed(b"bundle", tmp_path / "bundles", ".tar.gz") == path
    assert path.stat().st_mtime_ns == mtime
    assert write_content_addressed(b"other", tmp_path / "bundles", ".tar.gz") != path


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.json"
    with pytest.raises(TypeError):
        write_atomically({target: "not bytes"})  # type: ignore[dict-item]
    assert list((tmp_path / "out").iterdir()) == []
