"""Example instances with Bedrock model settings, made by editing a resolved example instance (for the pure
model-set function and the construct's template tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from foundry.fleet.load import load_fleet
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import ModelSettings

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"


def example_instance(stack_name: str = "af-prod-acme-retail-us-east-1") -> ResolvedInstance:
    return next(i for i in load_fleet(REPO_AGENTS).instances if i.manifest.spec.stack_name == stack_name)


def with_instance_model(
    instance: ResolvedInstance, *, provider: str, model_id: str | None, region: str | None = None
) -> ResolvedInstance:
    spec = instance.manifest.spec
    mcp = spec.mcp.model_copy(
        update={"model_provider": provider, "bedrock_model_id": model_id, "bedrock_region": region}
    )
    manifest = instance.manifest.model_copy(update={"spec": spec.model_copy(update={"mcp": mcp})})
    return dataclasses.replace(instance, manifest=manifest)


def with_agent_model(instance: ResolvedInstance, agent_id: str, model: ModelSettings) -> ResolvedInstance:
    """`agent_id`'s spec with `model` instead of its own model settings."""
    (path,) = [p for p, s in instance.specs.items() if s.metadata.agent_id == agent_id]
    spec = instance.specs[path]
    edited = spec.model_copy(update={"spec": spec.spec.model_copy(update={"model": model})})
    return dataclasses.replace(instance, specs={**instance.specs, path: edited})
