"""Reading a synthesized cloud assembly (`cdk.out/manifest.json`): which stacks it holds, their templates, and
the digest that pins its exact content (a rollout deploys the assembly it recorded, or nothing)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def stack_templates(assembly: Path) -> dict[str, Path]:
    """Stack name -> template file of every stack artifact, following nested assemblies (stages).
    Raises OSError or ValueError when the manifest is missing or unreadable."""
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    templates: dict[str, Path] = {}
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        props = artifact.get("properties") or {}
        if artifact.get("type") == "aws:cloudformation:stack":
            name = str(props.get("stackName") or artifact.get("displayName") or artifact_id)
            templates[name] = assembly / props["templateFile"]
        elif artifact.get("type") == "cdk:cloud-assembly":
            templates.update(stack_templates(assembly / props["directoryName"]))
    return templates


def assembly_stacks(assembly: Path) -> list[str]:
    """Names of the CloudFormation stacks in a cloud assembly (manifest.json), sorted; none if it is unreadable."""
    try:
        return sorted(stack_templates(assembly))
    except (OSError, ValueError, KeyError):
        return []


def read_templates(assembly: Path) -> dict[str, dict[str, Any]]:
    """Stack name -> template for every stack artifact, following nested assemblies (stages)."""
    return {name: json.loads(path.read_text(encoding="utf-8")) for name, path in stack_templates(assembly).items()}


LOCK_FILE_SUFFIX = ".lock"
"""The CLI's reader/writer locks (`read.<pid>.<n>.lock`, `synth.lock`) come and go while it reads an assembly;
they are not part of what was synthesized."""
UNDIGESTED_FILES = frozenset({"performance-counters.json"})
"""aws-cdk-lib's timings of the synth itself: they differ on every run and nothing deploys them. Leaving them out
lets the same manifests give the same digest."""


def assembly_files(assembly: Path) -> list[Path]:
    """Every file of a cloud assembly that the digest covers, sorted by relative path (locks and timings left out).
    Raises OSError when `assembly` is not a directory holding `manifest.json`."""
    if not (assembly / "manifest.json").is_file():
        raise FileNotFoundError(f"{assembly} is not a cloud assembly: it has no manifest.json")
    files = [
        p
        for p in assembly.rglob("*")
        if p.is_file() and not p.name.endswith(LOCK_FILE_SUFFIX) and p.name not in UNDIGESTED_FILES
    ]
    return sorted(files, key=lambda p: p.relative_to(assembly).as_posix())


def assembly_digest(assembly: Path) -> str:
    """`sha256:<hex>` over every file's relative path and bytes: the same assembly always gets the same digest, and
    any change to a template, an asset or the manifest changes it. Raises OSError as `assembly_files` does."""
    digest = hashlib.sha256()
    for path in assembly_files(assembly):
        relative = path.relative_to(assembly).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        file_digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(file_digest.digest())
    return f"sha256:{digest.hexdigest()}"
