"""The environment's network: a VPC created here, or an existing one imported by ids (no look-ups at synth).

The construct reads its settings through `NetworkSettings`, a protocol of its own: the platform settings model
(foundry.manifests.platform_settings.VpcSettings) fits it as is, and constructs/ imports nothing of the control plane.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_cdk import Acknowledgment, Annotations, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ssm as ssm

from constructs import Construct
from constructs.af_platform_contract import NetworkParameters


class NetworkSettings(Protocol):
    """Create a VPC (`cidr`) or import one (`vpc_id` with its subnets and zones): exactly one of the two is set."""

    @property
    def vpc_id(self) -> str | None: ...
    @property
    def cidr(self) -> str | None: ...
    @property
    def max_azs(self) -> int: ...
    @property
    def nat_gateways(self) -> int: ...
    @property
    def availability_zones(self) -> Sequence[str]: ...
    @property
    def private_subnet_ids(self) -> Sequence[str]: ...
    @property
    def public_subnet_ids(self) -> Sequence[str]: ...


def availability_zones(settings: NetworkSettings, region: str) -> list[str]:
    """The AZs to use: those in the settings, else the region's first `max_azs` letters (a, b, c), so that synth
    needs no AWS look-up. Name them in the settings where an account lacks one of those zones."""
    if settings.availability_zones:
        return list(settings.availability_zones)
    return [f"{region}{letter}" for letter in "abc"[: settings.max_azs]]


class AfNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: NetworkSettings,
        region: str,
        parameters: NetworkParameters,
    ) -> None:
        super().__init__(scope, id_)
        zones = availability_zones(settings, region)
        self.client_cidr: str | None
        if settings.cidr is not None:
            vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(settings.cidr),
                availability_zones=zones,
                nat_gateways=settings.nat_gateways,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=22),
                    ec2.SubnetConfiguration(
                        name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                    ),
                ],
                flow_logs={"FlowLogs": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.REJECT)},
            )
            Validations.of(vpc).acknowledge(
                Acknowledgment(
                    id="CloudFormation-Validate::W3010",
                    reason="the zones are named in agents/platform.yaml (or derived from the region) so that synth "
                    "needs no AWS look-up; a subnet must name its zone",
                )
            )
            self.vpc: ec2.IVpc = vpc
            self.client_cidr = settings.cidr
        else:
            assert settings.vpc_id is not None  # the settings model guarantees one of cidr / vpc_id
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=settings.vpc_id,
                availability_zones=zones,
                private_subnet_ids=list(settings.private_subnet_ids),
                public_subnet_ids=list(settings.public_subnet_ids) or None,
            )
            self.client_cidr = None
            Annotations.of(self).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "instances and load balancers only place ENIs in these subnets; no route table is ever read",
            )
        self.private_subnet_ids = [s.subnet_id for s in self.vpc.private_subnets]
        ssm.StringParameter(self, "VpcIdParameter", parameter_name=parameters.vpc_id, string_value=self.vpc.vpc_id)
        ssm.StringListParameter(
            self,
            "PrivateSubnetIdsParameter",
            parameter_name=parameters.private_subnet_ids,
            string_list_value=self.private_subnet_ids,
        )
