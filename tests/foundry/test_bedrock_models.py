"""The set of Bedrock foundation models an instance's task role may invoke, computed from the resolved instance."""

from __future__ import annotations

import pytest

from foundry.manifests.bedrock_models import BedrockModel, bedrock_models
from foundry.manifests.schema import ModelSettings
from tests.foundry.bedrock_instances import example_instance, with_agent_model, with_instance_model

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def test_an_offline_instance_invokes_no_model() -> None:
    assert bedrock_models(example_instance(), default_region="us-east-1") == ()


def test_an_instance_on_bedrock_invokes_its_model_in_the_stack_region_for_every_inheriting_agent() -> None:
    instance = with_instance_model(example_instance(), provider="bedrock", model_id=CLAUDE)
    assert bedrock_models(instance, default_region="us-east-1") == (BedrockModel("us-east-1", CLAUDE),)


def test_the_instance_bedrock_region_wins_over_the_stack_region() -> None:
    instance = with_instance_model(example_instance(), provider="bedrock", model_id=CLAUDE, region="eu-west-1")
    assert bedrock_models(instance, default_region="us-east-1") == (BedrockModel("eu-west-1", CLAUDE),)


def test_an_agent_with_its_own_bedrock_model_adds_it_to_the_instance_model() -> None:
    instance = with_instance_model(example_instance(), provider="bedrock", model_id=CLAUDE)
    instance = with_agent_model(instance, "pm-agent", ModelSettings(provider="bedrock", model_id=HAIKU))
    assert bedrock_models(instance, default_region="us-east-1") == (
        BedrockModel("us-east-1", CLAUDE),
        BedrockModel("us-east-1", HAIKU),
    )


def test_an_agent_on_bedrock_in_an_offline_instance_gets_only_its_own_model() -> None:
    instance = with_agent_model(example_instance(), "pm-agent", ModelSettings(provider="bedrock", model_id=HAIKU))
    assert bedrock_models(instance, default_region="us-east-1") == (BedrockModel("us-east-1", HAIKU),)


def test_an_inheriting_agent_naming_a_model_uses_it_when_the_instance_is_on_bedrock() -> None:
    instance = with_instance_model(example_instance(), provider="bedrock", model_id=CLAUDE)
    for agent in [a.agent_id for a in instance.manifest.spec.agents]:
        instance = with_agent_model(instance, agent, ModelSettings(provider="inherit", model_id=HAIKU))
    assert bedrock_models(instance, default_region="us-east-1") == (BedrockModel("us-east-1", HAIKU),)


def test_an_agent_on_bedrock_without_any_model_id_is_an_error_naming_its_spec() -> None:
    instance = with_agent_model(example_instance(), "pm-agent", ModelSettings(provider="bedrock"))
    with pytest.raises(ValueError, match=r"specs/.*pm-agent.*model_id.*mcp.bedrock_model_id"):
        bedrock_models(instance, default_region="us-east-1")


def test_the_arn_names_the_foundation_model_in_its_region() -> None:
    assert BedrockModel("eu-west-1", HAIKU).arn("aws") == f"arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}"
