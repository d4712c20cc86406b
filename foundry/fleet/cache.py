"""A content-addressed cache of validated, resolved fleets.

Reading and checking a 1,000-instance tree takes over a second (YAML parsing with line tracking, the secret scan,
validation); a deploy of one instance, `cdk synth -c instance=...` or a Foundry MCP call should not pay that every
time. The key covers every YAML file under the agents directory (path and bytes), the directory itself, and the
source of the `foundry` and `instance_contract` packages and the library versions that read it, so any change to an
input or to the rules misses the cache. Only fully valid fleets are stored: errors are always computed afresh.

The cache key is no secret (anyone who can read the tree computes it), and an entry holds what policy depends on
(each environment's allowed image repositories, every external MCP server URL). So an entry is believed only when
it carries an HMAC-SHA256 made with the user's own key, kept outside the repository (`foundry.files.user_key`):
a file planted under `build/` by someone without that key, or an entry altered after it was written, is a miss and
the files are read again. Without a usable key there is no cache at all. An entry is data, never code: JSON read
back through the same pydantic models the files are checked with (`_CachedFleet`); anything that does not
validate, or names another key or directory, is a miss too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import sys
from pathlib import Path
from typing import Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict

from foundry.files.atomic import write_atomically
from foundry.files.repo import PACKAGE_DIR
from foundry.files.safe_yaml import YamlDocument
from foundry.files.user_key import KeyUnavailableError, load_or_create_key
from foundry.fleet.model import Fleet
from foundry.manifests.alarm_settings import AlarmThresholds
from foundry.manifests.loader import AgentsTree, Loaded
from foundry.manifests.platform_settings import PlatformSettings
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import AgentInstance, AgentInstanceTemplate, AgentManifest, AgentSpec

KEEP_ENTRIES = 16
FORMAT = "agent-foundry/fleet-cache/2"
MAC_PREFIX = b"hmac-sha256:"
_PACKAGE_DIR = PACKAGE_DIR
_CONTRACT_DIR = _PACKAGE_DIR.parent / "instance_contract"
_NO_DOCUMENT = YamlDocument(data={}, root=None, raw=b"")


def _code_fingerprint() -> bytes:
    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{pydantic.VERSION}|{yaml.__version__}|{yaml.__with_libyaml__}".encode())
    for label, package in (("foundry", _PACKAGE_DIR), ("instance_contract", _CONTRACT_DIR)):
        for source in sorted(package.rglob("*.py")):
            digest.update(
                f"{label}/{source.relative_to(package).as_posix()}".encode() + b"\0" + source.read_bytes() + b"\0"
            )
    return digest.digest()


def cache_key(agents_dir: Path) -> str:
    """sha256 over the code that reads the tree and every YAML file in it."""
    digest = hashlib.sha256(_code_fingerprint())
    digest.update(f"{agents_dir}\0{agents_dir.resolve()}\0".encode())
    for path in sorted(p for p in agents_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        digest.update(path.relative_to(agents_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CachedTemplate(_Data):
    file: str
    model: AgentInstanceTemplate


class _CachedPlatform(_Data):
    file: str
    model: PlatformSettings


class _CachedManifest(_Data):
    file: str
    model: AgentManifest


class _CachedSpec(_Data):
    file: str
    model: AgentSpec
    raw: str
    """The spec file's bytes, base64: bundles carry them verbatim."""


class _CachedInstance(_Data):
    manifest: AgentInstance
    spec_paths: list[str]
    alarms: AlarmThresholds


class _CachedFleet(_Data):
    """One cache entry. Only the parsed YAML (line maps, raw bytes) that error reporting needs is left out."""

    format: Literal["agent-foundry/fleet-cache/2"]
    key: str
    root: str
    template: _CachedTemplate
    platform: _CachedPlatform
    environments: dict[str, _CachedManifest]
    specs: dict[str, _CachedSpec]
    instances: list[_CachedInstance]


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"fleet-{key}.entry"


def _mac(secret: bytes, key: str, payload: bytes) -> bytes:
    """Binds the payload to its cache key and format, so an entry cannot be replayed under another key."""
    message = FORMAT.encode() + b"\0" + key.encode() + b"\0" + payload
    return hmac.new(secret, message, hashlib.sha256).hexdigest().encode()


def _user_key() -> bytes | None:
    try:
        return load_or_create_key()
    except KeyUnavailableError:
        return None


def _authenticated_payload(secret: bytes, key: str, entry: bytes) -> bytes | None:
    """The entry's JSON if its first line is the right MAC, else None."""
    first, newline, payload = entry.partition(b"\n")
    if not newline or not first.startswith(MAC_PREFIX):
        return None
    if not hmac.compare_digest(first.removeprefix(MAC_PREFIX), _mac(secret, key, payload)):
        return None
    return payload


def _to_data(key: str, fleet: Fleet) -> _CachedFleet:
    tree = fleet.tree
    raw: dict[str, bytes] = {}
    for instance in fleet.instances:
        raw.update(instance.spec_files)
    return _CachedFleet(
        format=FORMAT,
        key=key,
        root=str(tree.root),
        template=_CachedTemplate(file=tree.template.file, model=tree.template.model),
        platform=_CachedPlatform(file=tree.platform.file, model=tree.platform.model),
        environments={env: _CachedManifest(file=m.file, model=m.model) for env, m in tree.environments.items()},
        specs={
            path: _CachedSpec(
                file=spec.file, model=spec.model, raw=base64.b64encode(raw.get(path, spec.doc.raw)).decode()
            )
            for path, spec in tree.specs.items()
        },
        instances=[
            _CachedInstance(manifest=i.manifest, spec_paths=sorted(i.spec_files), alarms=i.alarms)
            for i in fleet.instances
        ],
    )


def _from_data(data: _CachedFleet) -> Fleet:
    raw = {path: base64.b64decode(spec.raw, validate=True) for path, spec in data.specs.items()}
    specs = {path: spec.model for path, spec in data.specs.items()}
    tree = AgentsTree(
        root=Path(data.root),
        environments={env: Loaded(m.file, m.model, _NO_DOCUMENT) for env, m in data.environments.items()},
        template=Loaded(data.template.file, data.template.model, _NO_DOCUMENT),
        platform=Loaded(data.platform.file, data.platform.model, _NO_DOCUMENT),
        specs={path: Loaded(spec.file, spec.model, _NO_DOCUMENT) for path, spec in data.specs.items()},
    )
    instances = [
        ResolvedInstance(
            manifest=i.manifest,
            spec_files={p: raw[p] for p in i.spec_paths},
            specs={p: specs[p] for p in i.spec_paths},
            alarms=i.alarms,
        )
        for i in data.instances
    ]
    return Fleet(tree=tree, instances=instances)


def read(cache_dir: Path, key: str, agents_dir: Path | None = None) -> Fleet | None:
    """The cached fleet for `key`, or None (a miss) for anything that is not a valid entry for that key (and
    `agents_dir`, when given): missing, torn, hand-edited, planted, not made with the user's key, or written by
    other code."""
    secret = _user_key()
    if secret is None:
        return None
    path = _entry_path(cache_dir, key)
    try:
        entry = path.read_bytes()
    except OSError:
        return None
    text = _authenticated_payload(secret, key, entry)
    if text is None:
        return None
    try:
        data = _CachedFleet.model_validate_json(text)
        if data.key != key or (agents_dir is not None and data.root != str(agents_dir)):
            return None
        fleet = _from_data(data)
    except (pydantic.ValidationError, ValueError, KeyError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)
    return fleet


def write(cache_dir: Path, key: str, fleet: Fleet) -> None:
    """Best effort: a read-only checkout, a full disk or no usable key just means no cache."""
    secret = _user_key()
    if secret is None:
        return
    try:
        payload = _to_data(key, fleet).model_dump_json().encode()
        write_atomically({_entry_path(cache_dir, key): MAC_PREFIX + _mac(secret, key, payload) + b"\n" + payload})
        entries = sorted(cache_dir.glob("fleet-*.entry"), key=lambda p: p.stat().st_mtime, reverse=True)
        older_formats = [*cache_dir.glob("fleet-*.pickle"), *cache_dir.glob("fleet-*.json")]
        for stale in [*entries[KEEP_ENTRIES:], *older_formats]:
            stale.unlink(missing_ok=True)
    except OSError:
        return
