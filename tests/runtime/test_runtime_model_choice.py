"""Which model an agent uses: its own `model.provider` / `model.model_id` win over the instance's, in the pure
resolution (instance_contract.model_choice) and at run time, through the backend's `model_generate` tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from mcp import Client

from instance_contract.model_choice import AgentModel, ModelChoiceError, agent_model, bedrock_model_ids
from instance_contract.schema import McpToolConfig, ModelSettings
from runtime.backend.backend_mcp import AgentModelRoute, build_backend_server, providers_for
from runtime.backend.providers import BedrockProvider
from runtime.bundle_source import load_bundle
from runtime.config import ExpectedIdentity, OfflineModelSettings, Secrets
from runtime.store.memory import ThreadMemory
from runtime.store.thread_savers import PrunableMemorySaver
from tests.foundry.manifest_edits import edit
from tests.runtime.runtime_harness import BuiltBundle, copy_agents, write_bundles

INSTANCE_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
OWN_MODEL = "amazon.nova-lite-v1:0"
BEDROCK = McpToolConfig(model_provider="bedrock", bedrock_model_id=INSTANCE_MODEL, bedrock_region="eu-west-1")


def test_an_agent_that_inherits_gets_the_instances_provider_and_model() -> None:
    assert agent_model("a", ModelSettings(), BEDROCK) == AgentModel("bedrock", INSTANCE_MODEL, "eu-west-1")
    assert agent_model("a", ModelSettings(), McpToolConfig()) == AgentModel("offline", None, None)


def test_an_agents_own_model_id_and_provider_win_over_the_instances() -> None:
    assert agent_model("a", ModelSettings(model_id=OWN_MODEL), BEDROCK).model_id == OWN_MODEL
    own = ModelSettings(provider="bedrock", model_id=OWN_MODEL)
    assert agent_model("a", own, McpToolConfig()) == AgentModel("bedrock", OWN_MODEL, None)
    assert agent_model("a", ModelSettings(provider="offline"), BEDROCK).provider == "offline"


def test_a_bedrock_agent_without_any_model_id_is_an_error_naming_it() -> None:
    with pytest.raises(ModelChoiceError, match="agent 'legal-agent' uses the bedrock provider but neither"):
        agent_model("legal-agent", ModelSettings(provider="bedrock"), McpToolConfig())


def _bedrock_bundle(tmp_path: Path) -> BuiltBundle:
    agents = copy_agents(tmp_path / "agents")
    edit(
        agents / "manifests/manifest.instance-template.yaml",
        lambda d: d["spec"]["mcp"].update(
            model_provider="bedrock", bedrock_model_id=INSTANCE_MODEL, bedrock_region="us-east-1"
        ),
    )
    edit(agents / "specs/workers/pm-agent.yaml", lambda d: d["spec"]["model"].update(model_id=OWN_MODEL))
    (built,) = write_bundles(agents, tmp_path / "bundle", "default-org/default-domain/dev")
    assert bedrock_model_ids(built.instance.specs.values(), built.instance.manifest.spec.mcp) == sorted(
        [INSTANCE_MODEL, OWN_MODEL]
    )
    return built


def _converse_reply(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }


async def test_at_run_time_each_agent_calls_bedrock_with_its_own_model_id(tmp_path: Path) -> None:
    built = _bedrock_bundle(tmp_path)
    bundle = load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity())
    routes = providers_for(bundle, offline=OfflineModelSettings(), region=None)
    assert routes["pm-agent"].model.model_id == OWN_MODEL
    assert routes["ticket-agent"].model.model_id == INSTANCE_MODEL
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stubbed = BedrockProvider(client=client, default_model_id=INSTANCE_MODEL)
    memory = ThreadMemory(PrunableMemorySaver(), keep=20, ttl_seconds=3600.0)
    server = build_backend_server(
        bundle=bundle,
        providers={agent: AgentModelRoute(stubbed, route.model) for agent, route in routes.items()},
        memory=lambda: memory,
        secrets=Secrets({}),
    )
    with Stubber(client) as stub:
        for agent, model in (("pm-agent", OWN_MODEL), ("ticket-agent", INSTANCE_MODEL)):
            spec = bundle.specs[agent].spec
            stub.add_response(
                "converse",
                _converse_reply(f"{agent} answered"),
                expected_params={
                    "modelId": model,
                    "system": [{"text": "s"}],
                    "messages": [{"role": "user", "content": [{"text": "p"}]}],
                    "inferenceConfig": {"maxTokens": spec.model.max_tokens, "temperature": spec.model.temperature},
                },
            )
        async with Client(server) as mcp:
            for agent, model in (("pm-agent", OWN_MODEL), ("ticket-agent", INSTANCE_MODEL)):
                result = await mcp.call_tool("model_generate", {"agent_id": agent, "system": "s", "prompt": "p"})
                assert not result.is_error, result.content
                assert result.structured_content is not None
                assert result.structured_content["model"] == model
        stub.assert_no_pending_responses()
