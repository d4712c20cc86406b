"""Builds and synthesizes the CDK app in-process (the same code path as `cdk synth`, minus the CLI) and reads the
cloud assembly back as plain JSON, so tests assert on real templates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App

from stacks.fleet_app import REPO_ROOT, FleetSelection, FleetStacks, build_fleet

CDK_CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
PREBUILT_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    stacks: FleetStacks
    templates: dict[str, dict[str, Any]]
    """Stack name -> template."""
    manifest: dict[str, Any]

    def resources(self, stack: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == kind}

    def only(self, stack: str, kind: str) -> dict[str, Any]:
        found = list(self.resources(stack, kind).values())
        assert len(found) == 1, f"{stack} has {len(found)} {kind}"
        return found[0]

    def stack_tags(self, stack: str) -> dict[str, str]:
        return dict(self.manifest["artifacts"][stack]["properties"].get("tags", {}))


def synth(
    outdir: Path,
    *,
    agents_dir: Path | None = None,
    validation: bool = False,
    **context: str,
) -> Synthesized:
    """`context` uses the CLI's keys (environment=, instance=, runtimeImage=). cdk-nag runs as in every synth."""
    values: dict[str, Any] = {**CDK_CONTEXT, **context}
    if agents_dir is not None:
        values["agentsDir"] = str(agents_dir)
    app = App(outdir=str(outdir), context=values, builtin_cloud_formation_validation=validation)
    stacks = build_fleet(app, FleetSelection.from_context(app), bundle_dir=outdir.parent / "bundles")
    app.synth()
    templates = {
        name: json.loads((outdir / f"{name}.template.json").read_text())
        for name in [*stacks.platforms, *stacks.instances]
    }
    manifest = json.loads((outdir / "manifest.json").read_text())
    return Synthesized(outdir=outdir, stacks=stacks, templates=templates, manifest=manifest)
