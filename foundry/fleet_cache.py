"""A content-addressed cache of validated, resolved fleets.

Reading and checking a 1,000-instance tree takes over a second (YAML parsing with line tracking, the secret scan,
validation); a deploy of one instance, `cdk synth -c instance=...` or a Foundry MCP call should not pay that every
time. The key covers every YAML file under the agents directory (path and bytes), the directory itself, and the
source of the `foundry` package and the library versions that read it, so any change to an input or to the rules
misses the cache. Only fully valid fleets are stored: errors are always computed afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pydantic
import yaml

from foundry.atomic_files import write_atomically
from foundry.loader import AgentsTree, Loaded
from foundry.safe_yaml import YamlDocument

if TYPE_CHECKING:
    from foundry.fleet import Fleet

KEEP_ENTRIES = 16
_PACKAGE_DIR = Path(__file__).resolve().parent
_NO_DOCUMENT = YamlDocument(data={}, root=None, raw=b"")
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def _code_fingerprint() -> bytes:
    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{pydantic.VERSION}|{yaml.__version__}|{yaml.__with_libyaml__}".encode())
    for source in sorted(_PACKAGE_DIR.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.digest()


def cache_key(agents_dir: Path) -> str:
    """sha256 over the code that reads the tree and every YAML file in it."""
    digest = hashlib.sha256(_code_fingerprint())
    digest.update(f"{agents_dir}\0{agents_dir.resolve()}\0".encode())
    for path in sorted(p for p in agents_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        digest.update(path.relative_to(agents_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _without_documents(fleet: Fleet) -> Fleet:
    """Drops the parsed YAML (line maps, raw bytes) that only error reporting needs; a cached fleet has no errors."""
    tree = fleet.tree
    return dataclasses.replace(
        fleet,
        tree=AgentsTree(
            root=tree.root,
            environments={k: _light(v) for k, v in tree.environments.items()},
            template=_light(tree.template),
            platform=_light(tree.platform),
            specs={k: _light(v) for k, v in tree.specs.items()},
        ),
    )


def _light(loaded: Loaded[ModelT]) -> Loaded[ModelT]:
    return dataclasses.replace(loaded, doc=_NO_DOCUMENT)


def read(cache_dir: Path, key: str) -> Fleet | None:
    path = cache_dir / f"fleet-{key}.pickle"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        fleet: Fleet = pickle.loads(data)  # noqa: S301 - our own file, keyed by the content that produced it
    except Exception:  # a torn or stale entry is only a miss
        return None
    with contextlib.suppress(OSError):
        os.utime(path)
    return fleet


def write(cache_dir: Path, key: str, fleet: Fleet) -> None:
    """Best effort: a read-only checkout or a full disk just means no cache."""
    try:
        data = pickle.dumps(_without_documents(fleet), protocol=pickle.HIGHEST_PROTOCOL)
        write_atomically({cache_dir / f"fleet-{key}.pickle": data})
        entries = sorted(cache_dir.glob("fleet-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[KEEP_ENTRIES:]:
            stale.unlink(missing_ok=True)
    except OSError:
        return
