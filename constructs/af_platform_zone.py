"""The hosted zone holding every instance hostname of an environment: created here, or imported by id.

The construct reads its settings through `HostedZoneSettings`, a protocol of its own: the platform settings model
(foundry.manifests.platform_settings.ZoneSettings) fits it as is, and constructs/ imports nothing of the control plane.
"""

from __future__ import annotations

from typing import Protocol

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_ssm as ssm

from constructs import Construct


class HostedZoneSettings(Protocol):
    """The zone's name; `hosted_zone_id` imports an existing zone, else one is created (private in the VPC or
    public)."""

    @property
    def name(self) -> str: ...
    @property
    def private(self) -> bool: ...
    @property
    def hosted_zone_id(self) -> str | None: ...


class AfZone(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: HostedZoneSettings,
        vpc: ec2.IVpc,
        zone_id_parameter: str,
    ) -> None:
        super().__init__(scope, id_)
        self.zone: route53.IHostedZone
        if settings.hosted_zone_id is not None:
            self.zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=settings.hosted_zone_id, zone_name=settings.name
            )
        elif settings.private:
            self.zone = route53.PrivateHostedZone(self, "Zone", zone_name=settings.name, vpc=vpc)
        else:
            self.zone = route53.PublicHostedZone(self, "Zone", zone_name=settings.name)
        ssm.StringParameter(
            self, "ZoneIdParameter", parameter_name=zone_id_parameter, string_value=self.zone.hosted_zone_id
        )
