"""Runtime bundles: everything an instance needs to run, in a reproducible archive with a content hash.

The archive has sorted entries, fixed timestamps, owners and modes, and a gzip header without name or time, so
the same instance produces the same bytes on every run and machine. `index.json` inside lists every file with its
sha256; the content hash is the sha256 of that listing, and the runtime recomputes it before trusting a bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from typing import Any

from foundry.bundles.graph_definition import graph_definition, mcp_tool_config
from foundry.bundles.render import instance_yaml
from foundry.files.json_emit import canonical_json
from foundry.manifests.resolve import ResolvedInstance
from instance_contract.bundle_format import (
    GRAPH_FILE,
    INDEX_FILE,
    INSTANCE_FILE,
    MCP_FILE,
    BundleError,
    content_hash,
    read_bundle,
)

FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z, the earliest time every archive format can hold


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]
    """Every file but the index, keyed by archive path."""
    content_hash: str
    """'sha256:<hex>' over the sorted (path, sha256) listing."""
    archive: bytes

    @property
    def archive_sha256(self) -> str:
        return hashlib.sha256(self.archive).hexdigest()


def bundle_files(instance: ResolvedInstance) -> dict[str, bytes]:
    files = {
        INSTANCE_FILE: instance_yaml(instance.manifest),
        GRAPH_FILE: canonical_json(graph_definition(instance.manifest, instance.specs).model_dump(mode="json")),
        MCP_FILE: canonical_json(mcp_tool_config(instance.manifest, instance.specs).model_dump(mode="json")),
    }
    for spec_path, raw in instance.spec_files.items():
        files[f"agents/{spec_path}"] = raw
    return dict(sorted(files.items()))


def bundle_content_hash(instance: ResolvedInstance) -> str:
    """The content hash `build_bundle` gives the instance's archive, from its files alone: listing a fleet's hashes
    need not compress an archive per instance."""
    return content_hash(bundle_files(instance))


def index_document(instance_name: str, environment: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "agent-foundry/v1",
        "kind": "BundleIndex",
        "instance": instance_name,
        "environment": environment,
        "content_hash": content_hash(files),
        "files": [
            {"path": p, "sha256": hashlib.sha256(files[p]).hexdigest(), "size": len(files[p])} for p in sorted(files)
        ],
    }


def build_bundle(instance: ResolvedInstance) -> Bundle:
    files = bundle_files(instance)
    index = index_document(instance.manifest.metadata.name, instance.environment, files)
    archive = _archive({INDEX_FILE: canonical_json(index), **files})
    return Bundle(files=files, content_hash=index["content_hash"], archive=archive)


def _archive(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(name=path)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue()


__all__ = [
    "FIXED_MTIME",
    "GRAPH_FILE",
    "INDEX_FILE",
    "INSTANCE_FILE",
    "MCP_FILE",
    "Bundle",
    "BundleError",
    "build_bundle",
    "bundle_content_hash",
    "bundle_files",
    "content_hash",
    "index_document",
    "read_bundle",
]
