"""How requests for the instance's hostname reach its tasks: a target group, a host-header rule on its ALB
shard's listener (at the priority from the placement file), and an alias record in the environment's zone.
Rendered as a CloudFormation fragment (pure data)."""

from __future__ import annotations

from dataclasses import dataclass

from constructs.af_cfn import Fragment, Json, logical_id, ref, resource

SCOPE = "Routing"
TARGET_GROUP_ID = logical_id(SCOPE, "TargetGroup")
LISTENER_RULE_ID = logical_id(SCOPE, "ListenerRule")
ALIAS_ID = logical_id(SCOPE, "Alias")


@dataclass(frozen=True)
class ShardRef:
    """The instance's ALB shard as seen from the instance stack (SSM-resolved values: Refs of parameters)."""

    listener_arn: Json
    load_balancer_arn: Json
    security_group_id: Json
    dns_name: Json
    canonical_hosted_zone_id: Json


def target_group_arn() -> Json:
    return ref(TARGET_GROUP_ID)


def routing_fragment(
    *,
    hostname: str,
    vpc_id: Json,
    hosted_zone_id: Json,
    shard: ShardRef,
    listener_priority: int,
    container_port: int,
    health_path: str,
) -> Fragment:
    fragment = Fragment()
    fragment.resources[TARGET_GROUP_ID] = resource(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "VpcId": vpc_id,
            "TargetType": "ip",
            "Protocol": "HTTP",
            "Port": container_port,
            "HealthCheckEnabled": True,
            "HealthCheckProtocol": "HTTP",
            "HealthCheckPath": health_path,
            "HealthCheckIntervalSeconds": 15,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 3,
            "Matcher": {"HttpCode": "200"},
            "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
        },
    )
    fragment.resources[LISTENER_RULE_ID] = resource(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "ListenerArn": shard.listener_arn,
            "Priority": listener_priority,
            "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": [hostname]}}],
            "Actions": [{"Type": "forward", "TargetGroupArn": target_group_arn()}],
        },
    )
    fragment.resources[ALIAS_ID] = resource(
        "AWS::Route53::RecordSet",
        {
            "HostedZoneId": hosted_zone_id,
            "Name": f"{hostname}.",
            "Type": "A",
            "AliasTarget": {
                "DNSName": shard.dns_name,
                "HostedZoneId": shard.canonical_hosted_zone_id,
                "EvaluateTargetHealth": True,
            },
        },
    )
    return fragment
