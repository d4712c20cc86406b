"""One ALB shard: a load balancer serving up to 100 instances, one listener rule and target group each.

Instances attach to the shard's serving listener (HTTPS, or plain HTTP on an internal dev environment) through
SSM parameters the shard publishes; the listener itself answers 404 for any hostname no instance claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm

from constructs import Construct
from constructs.af_nag import acknowledge
from constructs.af_platform_contract import ShardParameters


@dataclass(frozen=True)
class ShardListenerSettings:
    internet_facing: bool
    certificate_arn: str | None
    plain_http: bool
    idle_timeout_seconds: int


class AfAlbShard(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        shard: int,
        vpc: ec2.IVpc,
        client_cidr: str | None,
        listener: ShardListenerSettings,
        access_logs: s3.IBucket,
        parameters: ShardParameters,
    ) -> None:
        super().__init__(scope, id_)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"ALB shard {shard}: clients in, instance tasks out",
            allow_all_outbound=True,
        )
        peer = ec2.Peer.ipv4(client_cidr) if client_cidr and not listener.internet_facing else ec2.Peer.any_ipv4()
        ports = [80] if listener.plain_http else [80, 443]
        for port in ports:
            self.security_group.add_ingress_rule(peer, ec2.Port.tcp(port), f"clients on port {port}")
        if peer.unique_id == ec2.Peer.any_ipv4().unique_id:
            acknowledge(
                self.security_group,
                "AwsSolutions-EC23",
                "the load balancer serves its instances' clients: from the internet when internet-facing; an internal "
                "load balancer in an imported VPC (whose CIDR the settings do not hold) is unreachable from outside",
            )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=listener.internet_facing,
            security_group=self.security_group,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC if listener.internet_facing else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
            idle_timeout=Duration.seconds(listener.idle_timeout_seconds),
            drop_invalid_header_fields=True,
        )
        self.load_balancer.log_access_logs(access_logs, prefix=f"shard-{shard}")
        not_found = elbv2.ListenerAction.fixed_response(404, content_type="text/plain", message_body="unknown host\n")
        if listener.plain_http:
            serving = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False, default_action=not_found
            )
        else:
            assert listener.certificate_arn is not None  # the settings model requires it unless plain_http
            serving = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                open=False,
                certificates=[elbv2.ListenerCertificate.from_arn(listener.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_action=not_found,
            )
            self.load_balancer.add_listener(
                "HttpRedirect",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                open=False,
                default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
            )
        self.listener = serving
        values = {
            "ListenerArnParameter": (parameters.listener_arn, serving.listener_arn),
            "LoadBalancerArnParameter": (parameters.load_balancer_arn, self.load_balancer.load_balancer_arn),
            "SecurityGroupIdParameter": (parameters.security_group_id, self.security_group.security_group_id),
            "DnsNameParameter": (parameters.dns_name, self.load_balancer.load_balancer_dns_name),
            "CanonicalZoneIdParameter": (
                parameters.canonical_hosted_zone_id,
                self.load_balancer.load_balancer_canonical_hosted_zone_id,
            ),
        }
        for construct_id, (name, value) in values.items():
            ssm.StringParameter(self, construct_id, parameter_name=name, string_value=value)
