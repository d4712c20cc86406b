"""Immutable aws-cdk-lib values that every instance in an app uses alike, each made once per process.

Every aws-cdk-lib call from Python is a round trip to the jsii Node process (about 0.3 ms with serialization on
both sides). A value such as `Duration.seconds(15)` or `Peer.any_ipv4()` holds no scope and no state, so one object
serves every stack; a 1,000-instance synth is spared tens of thousands of round trips. Only scope-free values
belong here: a construct, or anything bound to a stack, must never be shared.
"""

from __future__ import annotations

from functools import cache

import jsii
from aws_cdk import Aws, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53_targets as route53_targets


@cache
def seconds(amount: int) -> Duration:
    return Duration.seconds(amount)


@cache
def account_id() -> str:
    """`AWS::AccountId`, as a token that each stack resolves for itself."""
    return Aws.ACCOUNT_ID


@cache
def partition() -> str:
    """`AWS::Partition`, as a token that each stack resolves for itself."""
    return Aws.PARTITION


@cache
def service_principal(service: str) -> iam.ServicePrincipal:
    return iam.ServicePrincipal(service)


@cache
def any_ipv4() -> ec2.IPeer:
    return ec2.Peer.any_ipv4()


@cache
def tcp_port(port: int) -> ec2.Port:
    return ec2.Port.tcp(port)


@cache
def path_patterns(patterns: tuple[str, ...]) -> elbv2.ListenerCondition:
    return elbv2.ListenerCondition.path_patterns(list(patterns))


@cache
def registry_image(uri: str) -> ecs.ContainerImage:
    """An image by URI: binding it to a task definition reads it and changes nothing (ECR pulls are granted
    apart, per instance)."""
    return ecs.ContainerImage.from_registry(uri)


@cache
def linux_x86_64() -> ecs.RuntimePlatform:
    return ecs.RuntimePlatform(
        cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
    )


@jsii.implements(route53_targets.IAliasRecordTargetProps)
class _EvaluateTargetHealth:
    """The record follows the health of the load balancer's targets (Route 53 answers only while it has some)."""

    @property
    def evaluate_target_health(self) -> bool:
        return True

    @property
    def hosted_zone_id(self) -> str | None:
        return None


@cache
def evaluate_target_health() -> route53_targets.IAliasRecordTargetProps:
    return _EvaluateTargetHealth()
