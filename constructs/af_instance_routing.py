"""How requests for the instance's hostname reach its tasks: a target group, a host-header rule on its ALB
shard's listener (at the priority from the placement file), and an alias record in the environment's zone."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_route53 as route53

from constructs import Construct


@dataclass(frozen=True)
class ShardRef:
    """The instance's ALB shard as seen from the instance stack (SSM-resolved values, tokens at synth)."""

    listener_arn: str
    load_balancer_arn: str
    security_group_id: str
    dns_name: str
    canonical_hosted_zone_id: str


class AfInstanceRouting(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        hostname: str,
        vpc_id: str,
        hosted_zone_id: str,
        shard: ShardRef,
        listener_priority: int,
        container_port: int,
        health_path: str,
    ) -> None:
        super().__init__(scope, id_)
        self.target_group = elbv2.CfnTargetGroup(
            self,
            "TargetGroup",
            vpc_id=vpc_id,
            target_type="ip",
            protocol="HTTP",
            port=container_port,
            health_check_enabled=True,
            health_check_protocol="HTTP",
            health_check_path=health_path,
            health_check_interval_seconds=15,
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
            matcher=elbv2.CfnTargetGroup.MatcherProperty(http_code="200"),
            target_group_attributes=[
                elbv2.CfnTargetGroup.TargetGroupAttributeProperty(
                    key="deregistration_delay.timeout_seconds", value="30"
                ),
            ],
        )
        self.target_group_arn = self.target_group.ref
        """Read once: each token read is a round trip to the jsii Node process."""
        self.listener_rule = elbv2.CfnListenerRule(
            self,
            "ListenerRule",
            listener_arn=shard.listener_arn,
            priority=listener_priority,
            conditions=[
                elbv2.CfnListenerRule.RuleConditionProperty(
                    field="host-header",
                    host_header_config=elbv2.CfnListenerRule.HostHeaderConfigProperty(values=[hostname]),
                )
            ],
            actions=[elbv2.CfnListenerRule.ActionProperty(type="forward", target_group_arn=self.target_group_arn)],
        )
        route53.CfnRecordSet(
            self,
            "Alias",
            hosted_zone_id=hosted_zone_id,
            name=f"{hostname}.",
            type="A",
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=shard.dns_name,
                hosted_zone_id=shard.canonical_hosted_zone_id,
                evaluate_target_health=True,
            ),
        )
