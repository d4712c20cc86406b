"""The instance fragments rendered in pure Python (no CDK, no jsii): CDK's logical ids, the fragment rules, and
the least-privilege shape of every example instance's roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from constructs.af_cfn import Acknowledgement, Fragment, literal, logical_id
from constructs.af_instance_service import EXECUTION_ROLE_ID, ImageRef, ecr_repository_arn
from foundry import placement
from foundry.fleet import load_fleet
from stacks.instance_stack import instance_fragment

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("Secrets", "TicketApiToken"), "SecretsTicketApiTokenD85066F6"),
        (("Runtime", "TaskRole"), "RuntimeTaskRoleAB7E1F72"),
        (("Routing", "TargetGroup"), "RoutingTargetGroup2EF40F3D"),
        (("Runtime", "Service"), "RuntimeService408BD8AA"),
        (("HostedZoneId",), "HostedZoneId"),
    ],
)
def test_logical_ids_are_the_ones_cdk_gives_the_same_construct_path(path: tuple[str, ...], expected: str) -> None:
    assert logical_id(*path) == expected


def test_a_logical_id_defined_by_two_fragments_is_rejected() -> None:
    first = Fragment(resources={"A": {"Type": "AWS::Logs::LogGroup", "Properties": {}}})
    with pytest.raises(ValueError, match="defined twice"):
        first.add(Fragment(resources={"A": {"Type": "AWS::Logs::LogGroup", "Properties": {}}}))


def test_an_acknowledgement_without_a_real_reason_is_rejected() -> None:
    with pytest.raises(ValueError, match="real reason"):
        Acknowledgement("RuntimeTaskRoleAB7E1F72", "AwsSolutions-IAM5", "because")


def test_a_token_cannot_be_written_into_a_fragment() -> None:
    with pytest.raises(ValueError, match="not known at synth"):
        literal("${Token[TOKEN.123]}", "the bundle's bucket")


def example_fragments() -> dict[str, Fragment]:
    fleet = load_fleet(REPO_AGENTS)
    settings = fleet.tree.platform.model.spec.environments
    fragments = {}
    for instance in fleet.instances:
        slot = placement.load_placement(REPO_AGENTS, instance.environment)[instance.key.selector]
        fragments[instance.manifest.spec.stack_name] = instance_fragment(
            instance=instance,
            settings=settings[instance.environment],
            slot=slot,
            image=ImageRef(uri=IMAGE, repository_arn=ecr_repository_arn(IMAGE)),
            bundle_uri="s3://bucket/key.gz",
            bundle_object_arn={"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::bucket/key.gz"]]},
            bundle_hash="sha256:" + "0" * 64,
        )
    return fragments


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_the_only_wildcard_resource_is_the_ecr_token_of_the_execution_role() -> None:
    """The IAM5 acknowledgement is on the execution role; no other role of any instance may have a `*`."""
    for name, fragment in example_fragments().items():
        for role_id, role in fragment.resources.items():
            if role["Type"] != "AWS::IAM::Role":
                continue
            for statement in statements(role):
                if "*" in str(statement["Resource"]):
                    assert (role_id, statement["Action"]) == (EXECUTION_ROLE_ID, "ecr:GetAuthorizationToken"), name


def test_every_acknowledgement_names_a_resource_of_its_fragment() -> None:
    for name, fragment in example_fragments().items():
        assert fragment.acknowledgements, name
        for ack in fragment.acknowledgements:
            assert ack.logical_id in fragment.resources, (name, ack)


def test_each_secret_is_acknowledged_for_rotation_on_its_own() -> None:
    fragment = example_fragments()["af-dev-acme-retail-dev"]
    secrets = {k for k, v in fragment.resources.items() if v["Type"] == "AWS::SecretsManager::Secret"}
    assert secrets
    assert {a.logical_id for a in fragment.acknowledgements if a.rule == "AwsSolutions-SMG4"} == secrets
