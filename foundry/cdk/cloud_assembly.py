"""Reading a synthesized cloud assembly (`cdk.out/manifest.json`): which stacks it holds, and their templates."""

from __future__ import annotations

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
