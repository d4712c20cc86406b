"""The AgentInstance construct in an InstanceStack built directly from an (edited) resolved instance: what the
manifest's model settings grant, and how a user extends an instance with the CDK's own tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsii
import pytest
from aws_cdk import App, Aspects, IAspect, RemovalPolicies, Tags
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from constructs import IConstruct
from constructs.af_agent_runtime_props import ImageFromUri, log_retention
from foundry.bundles.archive import build_bundle
from foundry.fleet import placement
from foundry.fleet.load import load_fleet
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import ModelSettings
from stacks.fleet_app import REPO_ROOT
from stacks.instance_stack import BundleFile, InstanceStack
from tests.cdk.cdk_harness import PREBUILT_IMAGE
from tests.foundry.bedrock_instances import REPO_AGENTS, example_instance, with_agent_model, with_instance_model

CDK_CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def instance_stack(instance: ResolvedInstance, tmp_path: Path) -> InstanceStack:
    app = App(outdir=str(tmp_path / "cdk.out"), context=CDK_CONTEXT)
    bundle = build_bundle(instance)
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(bundle.archive)
    settings = load_fleet(REPO_AGENTS).tree.platform.model.spec.environments[instance.environment]
    return InstanceStack(
        app,
        instance.manifest.spec.stack_name,
        instance=instance,
        settings=settings,
        slot=placement.load_placement(REPO_AGENTS, instance.environment)[instance.key.selector],
        image=ImageFromUri(uri=PREBUILT_IMAGE),
        bundle=BundleFile(path=str(archive), content_hash=bundle.content_hash),
    )


def bedrock_statement(template: Template) -> dict[str, Any]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": "RuntimeTaskRoleAB7E1F72"}]}}
    )
    (policy,) = policies.values()
    (statement,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "bedrock:InvokeModel" in s["Action"]
    ]
    found: dict[str, Any] = statement
    return found


def test_an_agent_level_bedrock_model_is_invocable_by_the_task_role(tmp_path: Path) -> None:
    instance = with_instance_model(example_instance(), provider="bedrock", model_id=CLAUDE)
    instance = with_agent_model(instance, "pm-agent", ModelSettings(provider="bedrock", model_id=HAIKU))
    template = Template.from_stack(instance_stack(instance, tmp_path))
    statement = bedrock_statement(template)
    assert statement["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    resources = json.dumps(statement["Resource"])
    assert f":bedrock:us-east-1::foundation-model/{CLAUDE}" in resources
    assert f":bedrock:us-east-1::foundation-model/{HAIKU}" in resources
    assert len(statement["Resource"]) == 2


def test_an_offline_instance_task_role_may_invoke_no_model(tmp_path: Path) -> None:
    template = Template.from_stack(instance_stack(example_instance(), tmp_path))
    assert "bedrock:" not in json.dumps(template.find_resources("AWS::IAM::Policy"))


@jsii.implements(IAspect)
class EnableExecuteCommand:
    """A user's own Aspect: it reaches the instance's L1 resources, as in any CDK app."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, ecs.CfnService):
            node.enable_execute_command = True


def test_users_extend_an_instance_with_tags_aspects_removal_policies_grants_and_escape_hatches(
    tmp_path: Path,
) -> None:
    stack = instance_stack(example_instance(), tmp_path)
    instance = stack.instance
    Tags.of(instance).add("cost-center", "cc-42")
    RemovalPolicies.of(instance).retain()
    Aspects.of(instance).add(EnableExecuteCommand())
    instance.task_role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=["arn:aws:sqs:x"]))
    instance.container.add_environment("FEATURE_X", "on")
    service = instance.service.node.default_child
    assert isinstance(service, ecs.CfnService)
    service.add_property_override("HealthCheckGracePeriodSeconds", 120)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "EnableExecuteCommand": True,
            "HealthCheckGracePeriodSeconds": 120,
            "Tags": Match.array_with([{"Key": "cost-center", "Value": "cc-42"}]),
        },
    )
    template.has_resource("AWS::SecretsManager::Secret", {"DeletionPolicy": "Retain"})
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [Match.object_like({"Environment": Match.array_with([{"Name": "FEATURE_X", "Value": "on"}])})]
            )
        },
    )
    assert "sqs:SendMessage" in json.dumps(template.find_resources("AWS::IAM::Policy"))


@pytest.mark.parametrize("days", [2, 10])
def test_a_log_retention_cloudwatch_does_not_offer_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match=f"{days} days"):
        log_retention(days)
