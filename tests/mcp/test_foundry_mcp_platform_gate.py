"""`foundry.deploy_instance` deploys only the instance's stack; a missing or out-of-date platform stack is reported,
naming the platform stack to deploy first, and nothing is deployed.

The checks themselves are pure functions over templates; the refusals are shown with the real CDK CLI (synth) and
moto's server on 127.0.0.1 as the account of the dev environment, left un-bootstrapped here: a refused deploy never
gets as far as publishing assets, so nothing but the synth may run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from constructs.af_platform_contract import parameter_prefix
from foundry.deploy.platform_gate import (
    assess_platform,
    contract_parameters,
    contract_prefix,
    template_differences,
)
from tests.mcp.foundry_mcp_local_aws import LocalAws, local_deployer, local_foundry_server, local_runner, moto_server

IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/agent-runtime:1.0.0"
ACME = {"environment": "dev", "instance": "acme/retail/dev", "runtime_image": IMAGE}
PLATFORM = "af-dev-platform"

# --- pure --------------------------------------------------------------------------------------------------


def template(**resources: Any) -> dict[str, Any]:
    return {
        "Description": "platform",
        "Resources": {
            "CDKMetadata": {"Type": "AWS::CDK::Metadata", "Properties": {"Analytics": "v2:deflate64:old"}},
            **resources,
        },
        "Conditions": {"CDKMetadataAvailable": {"Fn::Equals": ["a", "a"]}},
    }


VPC = {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.10.0.0/16"}}
SHARD = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Scheme": "internal"}}


def test_the_same_template_is_up_to_date_whatever_the_cli_version_analytics_say() -> None:
    deployed = template(Vpc=VPC)
    synthesized = template(Vpc=VPC)
    synthesized["Resources"]["CDKMetadata"]["Properties"]["Analytics"] = "v2:deflate64:new"
    assert template_differences(deployed, synthesized) == []


def test_every_difference_is_named_by_section_and_logical_id() -> None:
    deployed = template(Vpc=VPC, OldThing=VPC)
    synthesized = template(Vpc={**VPC, "Properties": {"CidrBlock": "10.20.0.0/16"}}, Shard1=SHARD)
    synthesized["Outputs"] = {"Zone": {"Value": "z"}}
    assert template_differences(deployed, synthesized) == [
        "Outputs differs",
        "Resources.OldThing is deployed but no longer synthesized",
        "Resources.Shard1 is not deployed yet",
        "Resources.Vpc differs",
    ]


def test_the_contract_parameters_are_the_platform_ssm_parameters_the_instance_template_reads() -> None:
    instance_template = {
        "Parameters": {
            "VpcId": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/agentfoundry/dev/platform/vpc-id"},
            "Subnets": {
                "Type": "AWS::SSM::Parameter::Value<List<String>>",
                "Default": "/agentfoundry/dev/platform/private-subnet-ids",
            },
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            },
            "Plain": {"Type": "String", "Default": "/agentfoundry/dev/platform/not-ssm"},
        }
    }
    assert contract_parameters(instance_template, "dev") == [
        "/agentfoundry/dev/platform/private-subnet-ids",
        "/agentfoundry/dev/platform/vpc-id",
    ]


def test_the_gate_reads_the_prefix_the_platform_stack_writes() -> None:
    assert contract_prefix("dev") == parameter_prefix("dev")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "af-dev-platform is not deployed"),
        ("UPDATE_IN_PROGRESS", "af-dev-platform is UPDATE_IN_PROGRESS: it is being deployed right now"),
        ("ROLLBACK_COMPLETE", "af-dev-platform is ROLLBACK_COMPLETE: it holds no usable platform"),
    ],
)
def test_a_platform_stack_that_is_absent_busy_or_broken_is_not_ready(status: str | None, expected: str) -> None:
    check = assess_platform("dev", PLATFORM, status, [], [])
    assert not check.ready
    assert check.problems == [f"the platform stack {expected}"]
    assert check.deploy_command == "cdk deploy -c environment=dev af-dev-platform"


def test_an_updated_platform_that_rolled_back_to_a_matching_template_is_ready() -> None:
    assert assess_platform("dev", PLATFORM, "UPDATE_ROLLBACK_COMPLETE", [], []).ready


# --- against the local AWS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    with moto_server() as aws:
        yield aws


@pytest.fixture
def server(local_aws: LocalAws, tmp_path: Path) -> MCPServer:
    return local_foundry_server(local_aws, local_deployer(local_aws, local_runner(local_aws), tmp_path / "deploys"))


def stack_names(local_aws: LocalAws) -> list[str]:
    stacks = local_aws.client("cloudformation").describe_stacks()["Stacks"]
    return sorted(s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE")


@pytest.mark.slow
async def test_deploy_without_the_platform_stack_is_refused_naming_it_and_deploys_nothing(
    server: MCPServer, local_aws: LocalAws
) -> None:
    assert stack_names(local_aws) == []
    async with Client(server) as client:
        result = await client.call_tool("foundry.deploy_instance", ACME)
    out = result.structured_content
    assert out["outcome"] == "platform_not_ready", out
    assert [c[1] for c in out["commands"]] == ["synth"], "nothing but the synth ran"
    reason = out["failure"]["reason"]
    assert "the deploy of acme/retail/dev in dev was refused (nothing was deployed)" in reason
    assert "the platform stack af-dev-platform is not deployed" in reason
    assert reason.endswith("Deploy the platform stack af-dev-platform first (a deliberate act, never a side effect "
                           "of one instance's deploy): `cdk deploy -c environment=dev af-dev-platform`")  # fmt: skip
    assert out["failure"]["stack"] == PLATFORM
    assert out["platform"]["status"] is None
    assert "/agentfoundry/dev/platform/shards/0/listener-arn" in out["platform"]["problems"][1]
    assert stack_names(local_aws) == [], "neither the platform nor the instance stack was created"


@pytest.mark.slow
async def test_deploy_on_a_platform_stack_deployed_from_other_manifests_is_refused_listing_the_differences(
    server: MCPServer, local_aws: LocalAws
) -> None:
    # A platform stack of the same name, deployed from another revision: one SSM parameter and nothing else.
    old_platform = {
        "Description": "Agent Foundry platform of environment dev (an older revision)",
        "Resources": {
            "VpcIdParameter": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/agentfoundry/dev/platform/vpc-id", "Type": "String", "Value": "vpc-0123"},
            }
        },
    }
    cloudformation = local_aws.client("cloudformation")
    cloudformation.create_stack(StackName=PLATFORM, TemplateBody=json.dumps(old_platform))
    try:
        async with Client(server) as client:
            out = (await client.call_tool("foundry.deploy_instance", ACME)).structured_content
        names = stack_names(local_aws)
    finally:
        cloudformation.delete_stack(StackName=PLATFORM)
    assert out["outcome"] == "platform_not_ready", out
    assert out["platform"]["status"] == "CREATE_COMPLETE"
    problems = out["platform"]["problems"]
    assert problems[0].startswith(
        "the platform stack af-dev-platform is out of date: its deployed template differs from the one synthesized "
        "from the manifests: Resources.VpcIdParameter is deployed but no longer synthesized; Description differs; "
    ), "what changes or goes away is listed before what is only new"
    assert "Resources.Cluster" in problems[0] and " is not deployed yet" in problems[0]  # the first new ones shown
    assert problems[0].endswith("more)")
    assert problems[1].startswith("the platform's SSM parameters this instance reads are missing: ")
    assert "/agentfoundry/dev/platform/vpc-id" not in problems[1], "that one exists"
    assert "`cdk deploy -c environment=dev af-dev-platform`" in out["failure"]["reason"]
    assert names == [PLATFORM], "the instance stack was not created and the platform was not touched"
