"""The runtime bundle's format: file names, the content hash and the reader that checks an archive before use.

The Foundry writes bundles (foundry.bundles.archive) and every instance reads its own at start, so both import this
module. `index.json` lists every file with its sha256; the content hash is the sha256 of that listing, and the
runtime recomputes it before trusting a bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import PurePosixPath
from typing import Any

INDEX_FILE = "index.json"
INSTANCE_FILE = "instance.yaml"
GRAPH_FILE = "graph.json"
MCP_FILE = "mcp.json"


class BundleError(Exception):
    """A bundle that cannot be trusted: the message names the file and what is wrong with it."""


def content_hash(files: dict[str, bytes]) -> str:
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return "sha256:" + hashlib.sha256(listing.encode("utf-8")).hexdigest()


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
                if extracted is None:
                    raise BundleError(f"{source}: archive member {member.name!r} has no content")
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
