"""A set of cloud assemblies and its index: which assembly holds each stack, and each assembly's digest.

`python -m foundry synth --out DIR` writes `DIR/index.json` (canonical JSON) beside the assemblies it lists
(`DIR/app/` unsharded; `DIR/platform/` and `DIR/shard-K/` with `--shards N`). A rollout reads the set back with
`open_assembly_set`, which also takes a plain cloud assembly (`cdk synth --output DIR`: a `manifest.json`, no
index). The set's digest covers every byte of every assembly (through the index, which names each assembly's
digest), so a rollout can refuse to resume from a set that changed since it started.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.cdk.cloud_assembly import assembly_digest, stack_templates
from foundry.files.json_emit import canonical_json

INDEX_FILE = "index.json"
API_VERSION = "agent-foundry/v1"
KIND = "CloudAssemblySet"


class AssemblySetError(Exception):
    """The set cannot be used as it is: missing, unreadable, altered, or lacking a stack; the message says which."""


@dataclass(frozen=True)
class AssemblyEntry:
    name: str
    """The assembly's folder under the set's root (`.` for a plain cloud assembly)."""
    digest: str
    stacks: tuple[str, ...]


@dataclass(frozen=True)
class AssemblySet:
    root: Path
    assemblies: Mapping[str, AssemblyEntry]
    shards: int | None
    """The shard count it was synthesized with; None for one assembly."""
    indexed: bool
    """True when read from (or written with) `index.json`; False for a plain cloud assembly."""

    @property
    def stacks(self) -> dict[str, str]:
        """Stack name -> the name of the assembly that holds it."""
        return {stack: entry.name for entry in self.assemblies.values() for stack in entry.stacks}

    def assembly_of(self, stack: str) -> Path:
        """The folder of the assembly that holds `stack`; AssemblySetError when the set has no such stack."""
        name = self.stacks.get(stack)
        if name is None:
            raise AssemblySetError(f"the cloud assembly {self.root} holds no stack {stack!r}")
        return self.root / name

    def require(self, stacks: list[str]) -> None:
        """AssemblySetError naming every stack of `stacks` the set does not hold."""
        missing = sorted(set(stacks) - set(self.stacks))
        if missing:
            held = len(self.stacks)
            raise AssemblySetError(
                f"the cloud assembly {self.root} does not hold {len(missing)} stack(s) this rollout must deploy: "
                f"{', '.join(missing)} (it holds {held} stack(s)); synthesize them into it "
                "(`python -m foundry synth --out DIR --environment ENV`) or roll out without them"
            )

    def index_document(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "shards": self.shards,
            "assemblies": {e.name: {"digest": e.digest, "stacks": list(e.stacks)} for e in self.assemblies.values()},
            "stacks": dict(sorted(self.stacks.items())),
        }

    @property
    def digest(self) -> str:
        """`sha256:<hex>` of the set: of its canonical index (which holds every assembly's digest), or the
        assembly's own digest for a plain assembly."""
        if not self.indexed:
            [entry] = self.assemblies.values()
            return entry.digest
        return f"sha256:{hashlib.sha256(canonical_json(self.index_document())).hexdigest()}"

    def write_index(self) -> Path:
        path = self.root / INDEX_FILE
        path.write_bytes(canonical_json(self.index_document()))
        return path


def describe_assembly(root: Path, name: str) -> AssemblyEntry:
    """Reads one assembly under `root`: its stacks and its digest."""
    folder = root / name
    try:
        return AssemblyEntry(name=name, digest=assembly_digest(folder), stacks=tuple(sorted(stack_templates(folder))))
    except (OSError, ValueError, KeyError) as exc:
        raise AssemblySetError(f"{folder} is not a readable cloud assembly: {exc}") from exc


def open_assembly_set(root: Path, *, verify: bool = True) -> AssemblySet:
    """The set at `root`: `index.json` with its assemblies, or a plain cloud assembly. With `verify`, every
    assembly's digest is recomputed and one that differs from the index is refused, naming it."""
    if not root.is_dir():
        raise AssemblySetError(f"the cloud assembly {root} does not exist (or is not a folder)")
    index_path = root / INDEX_FILE
    if not index_path.is_file():
        if not (root / "manifest.json").is_file():
            raise AssemblySetError(
                f"{root} is not a cloud assembly: it has neither {INDEX_FILE} (`python -m foundry synth`) nor "
                "manifest.json (`cdk synth --output`)"
            )
        entry = describe_assembly(root, ".")
        return AssemblySet(root=root, assemblies={".": entry}, shards=None, indexed=False)
    try:
        document = json.loads(index_path.read_text(encoding="utf-8"))
        if document.get("kind") != KIND or not isinstance(document.get("assemblies"), dict):
            raise ValueError(f"kind {document.get('kind')!r} is not {KIND!r} or 'assemblies' is not a mapping")
        listed = {
            str(name): AssemblyEntry(name=str(name), digest=str(body["digest"]), stacks=tuple(body["stacks"]))
            for name, body in document["assemblies"].items()
        }
        shards = document.get("shards")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AssemblySetError(f"{index_path} is not a readable assembly index: {exc}") from exc
    for name, entry in listed.items():
        if Path(name).name != name or name in (".", ".."):
            raise AssemblySetError(f"{index_path}: assembly name {name!r} is not a folder name")
        if verify:
            found = describe_assembly(root, name)
            if found.digest != entry.digest or found.stacks != entry.stacks:
                raise AssemblySetError(
                    f"the cloud assembly {root / name} was altered after it was synthesized: its digest is "
                    f"{found.digest}, {index_path} records {entry.digest}; synthesize it again"
                )
    return AssemblySet(root=root, assemblies=listed, shards=int(shards) if shards is not None else None, indexed=True)
