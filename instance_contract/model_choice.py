"""Which model one agent uses: the single answer both the runtime (which calls it) and the Foundry (which grants it,
and refuses a combination that names no model) read, so that permissions and calls can never disagree.

An agent's own `model.provider` wins over the instance's `mcp.model_provider` unless it says `inherit`; for Bedrock,
its own `model.model_id` wins over the instance's `mcp.bedrock_model_id`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from instance_contract.schema import AgentSpec, McpToolConfig, ModelSettings


class ModelChoiceError(ValueError):
    """The agent uses Bedrock but neither its spec nor the instance names a model id."""


@dataclass(frozen=True)
class AgentModel:
    provider: Literal["offline", "bedrock"]
    model_id: str | None
    """Always set for Bedrock; for the offline provider only a label (its replies name it)."""
    region: str | None
    """The instance's `bedrock_region`; None means the region the process runs in."""


def agent_model(agent_id: str, settings: ModelSettings, instance: McpToolConfig) -> AgentModel:
    """The provider and model `agent_id` uses at run time. Raises ModelChoiceError naming the agent."""
    provider = instance.model_provider if settings.provider == "inherit" else settings.provider
    if provider == "offline":
        return AgentModel(provider="offline", model_id=settings.model_id, region=None)
    model_id = settings.model_id or instance.bedrock_model_id
    if model_id is None:
        raise ModelChoiceError(
            f"agent {agent_id!r} uses the bedrock provider but neither its spec (spec.model.model_id) nor the "
            "instance template (spec.mcp.bedrock_model_id) names a model id"
        )
    return AgentModel(provider="bedrock", model_id=model_id, region=instance.bedrock_region)


def bedrock_model_ids(specs: Iterable[AgentSpec], instance: McpToolConfig) -> list[str]:
    """Every Bedrock model the instance's agents call, sorted and without repeats: exactly what its task role must
    be allowed to invoke. Raises ModelChoiceError for an agent whose model cannot be resolved."""
    chosen = (agent_model(spec.metadata.agent_id, spec.spec.model, instance) for spec in specs)
    return sorted({m.model_id for m in chosen if m.provider == "bedrock" and m.model_id is not None})
