"""One InstanceStack per (environment, organization, domain, instance): its secrets, bundle, routing and runtime.

It reads its environment's platform through SSM parameter types (resolved by CloudFormation at deploy time), so
the platform stack never exports anything and each instance deploys, changes and is deleted on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, CfnParameter, Environment, Stack

from constructs import Construct
from constructs import af_platform_contract as contract
from constructs.af_instance_bundle import AfInstanceBundle
from constructs.af_instance_routing import AfInstanceRouting, ShardRef
from constructs.af_instance_secrets import AfInstanceSecrets
from constructs.af_instance_service import (
    CONTAINER_PORT,
    MCP_PATH,
    READY_PATH,
    AfInstanceService,
    InstanceIdentityVars,
    NetworkRef,
    RuntimeImage,
)
from constructs.af_tokens import partition
from foundry import naming
from foundry.placement import Slot
from foundry.resolve import ResolvedInstance
from foundry.schema import EnvironmentSettings


@dataclass(frozen=True)
class BundleFile:
    """The instance's bundle as written by the app: the archive on disk and its content hash."""

    path: str
    content_hash: str


class InstanceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        instance: ResolvedInstance,
        settings: EnvironmentSettings,
        slot: Slot,
        image: RuntimeImage,
        bundle: BundleFile,
    ) -> None:
        env_name = instance.environment
        key = instance.key
        spec = instance.manifest.spec
        super().__init__(
            scope,
            id_,
            env=Environment(account=settings.account, region=settings.region),
            description=f"Agent Foundry instance {env_name}/{key.selector} ({spec.hostname})",
            # Stack tags: CloudFormation puts them on the stack and every taggable resource in it.
            tags=instance_tags(env_name, key.organization_id, key.domain_id, key.instance_id, bundle.content_hash),
        )
        network_names = contract.network_parameters(env_name)
        shard_names = contract.shard_parameters(env_name, slot.shard)
        shard = ShardRef(
            listener_arn=self._ssm("ShardListenerArn", shard_names.listener_arn),
            load_balancer_arn=self._ssm("ShardLoadBalancerArn", shard_names.load_balancer_arn),
            security_group_id=self._ssm("ShardSecurityGroupId", shard_names.security_group_id),
            dns_name=self._ssm("ShardDnsName", shard_names.dns_name),
            canonical_hosted_zone_id=self._ssm("ShardCanonicalZoneId", shard_names.canonical_hosted_zone_id),
        )
        vpc_id = self._ssm("VpcId", network_names.vpc_id)
        subnet_ids = CfnParameter(
            self,
            "PrivateSubnetIds",
            type="AWS::SSM::Parameter::Value<List<String>>",
            default=network_names.private_subnet_ids,
            description="SSM parameter written by the platform stack",
        ).value_as_list
        zone_id = self._ssm("HostedZoneId", network_names.hosted_zone_id)

        secrets = AfInstanceSecrets(
            self,
            "Secrets",
            physical_names={name: naming.secret_name(env_name, key, name) for name in spec.secrets},
            description=f"Agent Foundry {env_name}/{key.selector}",
        )
        archive = AfInstanceBundle(self, "Bundle", archive_path=bundle.path, content_hash=bundle.content_hash)
        routing = AfInstanceRouting(
            self,
            "Routing",
            hostname=spec.hostname,
            vpc_id=vpc_id,
            hosted_zone_id=zone_id,
            shard=shard,
            listener_priority=slot.priority,
            container_port=CONTAINER_PORT,
            health_path=READY_PATH,
        )
        cluster_name = contract.cluster_name(env_name)
        runtime = AfInstanceService(
            self,
            "Runtime",
            identity=InstanceIdentityVars(
                organization_id=key.organization_id,
                domain_id=key.domain_id,
                environment=env_name,
                instance_id=key.instance_id,
                hostname=spec.hostname,
            ),
            deploy=spec.deploy,
            image=image,
            cluster_name=cluster_name,
            network=NetworkRef(
                vpc_id=vpc_id, private_subnet_ids=subnet_ids, load_balancer_security_group_id=shard.security_group_id
            ),
            target_group_arn=routing.target_group_arn,
            bundle_uri=archive.uri,
            bundle_hash=bundle.content_hash,
            bundle_object_arn=archive.object_arn,
            secret_arns=secrets.arns,
            log_retention_days=settings.log_retention_days,
            bedrock_model_arn=_bedrock_model_arn(instance, settings.region),
            family=spec.stack_name,
            region=settings.region,
        )
        # ECS only accepts a target group that a listener already forwards to.
        runtime.service.add_resource_dependency(routing.listener_rule)

        scheme = "http" if settings.load_balancer.plain_http else "https"
        outputs = {
            "Hostname": spec.hostname,
            "ServiceName": runtime.service_name,
            "ClusterName": cluster_name,
            "TargetGroupArn": routing.target_group_arn,
            "LoadBalancerArn": shard.load_balancer_arn,
            "BundleHash": bundle.content_hash,
            "BundleUri": archive.uri,
            "LogGroupName": runtime.log_group_name,
            "InstanceEndpoint": f"{scheme}://{spec.hostname}{MCP_PATH}",
        }
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value)

    def _ssm(self, id_: str, parameter_name: str) -> str:
        return CfnParameter(
            self,
            id_,
            type="AWS::SSM::Parameter::Value<String>",
            default=parameter_name,
            description="SSM parameter written by the platform stack",
        ).value_as_string


def instance_tags(environment: str, organization: str, domain: str, instance: str, bundle_hash: str) -> dict[str, str]:
    return {
        "agentfoundry:organization": organization,
        "agentfoundry:domain": domain,
        "agentfoundry:environment": environment,
        "agentfoundry:instance": instance,
        "agentfoundry:bundle-hash": bundle_hash,
    }


def _bedrock_model_arn(instance: ResolvedInstance, region: str) -> str | None:
    mcp = instance.manifest.spec.mcp
    if mcp.model_provider != "bedrock" or mcp.bedrock_model_id is None:
        return None
    return f"arn:{partition()}:bedrock:{mcp.bedrock_region or region}::foundation-model/{mcp.bedrock_model_id}"
