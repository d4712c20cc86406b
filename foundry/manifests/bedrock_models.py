"""Which Amazon Bedrock foundation models an instance's agents can call: the task role is granted exactly these.

Mirrors how the runtime picks a model (runtime.backend.backend_mcp.providers_for): an agent uses Bedrock when its spec
says `model.provider: bedrock`, or `inherit` while the instance's `mcp.model_provider` is `bedrock`; it calls its own
`model.model_id`, else the instance's `mcp.bedrock_model_id`, in `mcp.bedrock_region`, else the stack's region.
Pure: no CDK, no AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundry.manifests.resolve import ResolvedInstance


@dataclass(frozen=True, order=True)
class BedrockModel:
    region: str
    model_id: str

    def arn(self, partition: str) -> str:
        return f"arn:{partition}:bedrock:{self.region}::foundation-model/{self.model_id}"


def bedrock_models(instance: ResolvedInstance, *, default_region: str) -> tuple[BedrockModel, ...]:
    """Sorted and without duplicates, so the policy is deterministic. Raises ValueError naming the agent's spec
    when an agent uses Bedrock but neither it nor the instance names a model (the runtime would refuse to start)."""
    mcp = instance.manifest.spec.mcp
    region = mcp.bedrock_region or default_region
    models: set[BedrockModel] = set()
    for spec_path in sorted(instance.specs):
        model = instance.specs[spec_path].spec.model
        provider = mcp.model_provider if model.provider == "inherit" else model.provider
        if provider != "bedrock":
            continue
        model_id = model.model_id or mcp.bedrock_model_id
        if model_id is None:
            raise ValueError(
                f"{instance.manifest.spec.stack_name}: agent spec {spec_path} uses model provider 'bedrock' but "
                "names no spec.model.model_id, and the instance template sets no mcp.bedrock_model_id; set one of them"
            )
        models.add(BedrockModel(region=region, model_id=model_id))
    return tuple(sorted(models))
