"""Runtime bundles: everything an instance needs to run, in a reproducible archive with a content hash.

The archive has sorted entries, fixed timestamps, owners and modes, and a gzip header without name or time, so
the same instance produces the same bytes on every run and machine. `index.json` inside lists every file with its
sha256; the content hash is the sha256 of that listing, and the runtime recomputes it before trusting a bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from foundry.graph_definition import graph_definition, mcp_tool_config
from foundry.render import canonical_json, instance_yaml
from foundry.resolve import ResolvedInstance

INDEX_FILE = "index.json"
INSTANCE_FILE = "instance.yaml"
GRAPH_FILE = "graph.json"
MCP_FILE = "mcp.json"
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


class BundleError(Exception):
    """A bundle that cannot be trusted: the message names the file and what is wrong with it."""


def bundle_files(instance: ResolvedInstance) -> dict[str, bytes]:
    files = {
        INSTANCE_FILE: instance_yaml(instance.manifest),
        GRAPH_FILE: canonical_json(graph_definition(instance.manifest, instance.specs)),
        MCP_FILE: canonical_json(mcp_tool_config(instance.manifest, instance.specs)),
    }
    for spec_path, raw in instance.spec_files.items():
        files[f"agents/{spec_path}"] = raw
    return dict(sorted(files.items()))


def content_hash(files: dict[str, bytes]) -> str:
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return "sha256:" + hashlib.sha256(listing.encode("utf-8")).hexdigest()


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


def read_bundle(
    archive: bytes, source: str, expected_hash: str | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Opens an archive and checks it against its own index and, if given, the expected content hash.
    Returns (index, files). Raises BundleError naming `source` and the offending file."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = tar.getmembers()
            files: dict[str, bytes] = {}
            for member in members:
                member_path = PurePosixPath(member.name)
                if not member.isfile() or member_path.is_absolute() or ".." in member_path.parts:
                    raise BundleError(f"{source}: unexpected archive member {member.name!r}")
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{source}: not a readable bundle archive ({exc})") from exc
    if INDEX_FILE not in files:
        raise BundleError(f"{source}: {INDEX_FILE} is missing")
    try:
        index = json.loads(files.pop(INDEX_FILE))
        listed = {f["path"]: f["sha256"] for f in index["files"]}
        declared = index["content_hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{source}: {INDEX_FILE} is malformed ({exc})") from exc
    for path in sorted(set(listed) | set(files)):
        if path not in files:
            raise BundleError(f"{source}: {path} is listed in {INDEX_FILE} but missing from the archive")
        if path not in listed:
            raise BundleError(f"{source}: {path} is in the archive but not listed in {INDEX_FILE}")
        actual = hashlib.sha256(files[path]).hexdigest()
        if actual != listed[path]:
            raise BundleError(f"{source}: {path} has sha256 {actual}, but {INDEX_FILE} says {listed[path]}")
    actual_hash = content_hash(files)
    if actual_hash != declared:
        raise BundleError(f"{source}: content hash is {actual_hash}, but {INDEX_FILE} says {declared}")
    if expected_hash is not None and actual_hash != expected_hash:
        raise BundleError(f"{source}: content hash is {actual_hash}, but {expected_hash} was expected")
    return index, files
