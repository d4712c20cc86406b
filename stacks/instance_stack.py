"""One InstanceStack per (environment, organization, domain, instance): its secrets, bundle, routing and runtime.

It reads its environment's platform through SSM parameter types (resolved by CloudFormation at deploy time), so
the platform stack never exports anything and each instance deploys, changes and is deleted on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Environment, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import cloudformation_include as cfn_include

from constructs import Construct
from constructs import af_platform_contract as contract
from constructs.af_cfn import PARTITION, Fragment, Json, join, ref, ssm_parameter
from constructs.af_instance_bundle import stage_bundle
from constructs.af_instance_routing import LISTENER_RULE_ID, ShardRef, routing_fragment, target_group_arn
from constructs.af_instance_secrets import secret_arns, secrets_fragment
from constructs.af_instance_service import (
    CONTAINER_PORT,
    MCP_PATH,
    READY_PATH,
    ImageFromAsset,
    ImageFromUri,
    ImageRef,
    InstanceIdentityVars,
    NetworkRef,
    RuntimeImage,
    ecr_repository_arn,
    log_group_name,
    service_fragment,
    service_name,
)
from constructs.af_nag import acknowledge
from foundry import naming
from foundry.placement import Slot
from foundry.resolve import ResolvedInstance
from foundry.schema import EnvironmentSettings
from stacks.template_synthesizer import FragmentStackSynthesizer

INCLUDE_ID = "Instance"
FragmentWriter = Callable[[Json], str]
"""Writes a fragment template (deterministically, content-addressed) and returns its path: the app's edge."""


@dataclass(frozen=True)
class BundleFile:
    """The instance's bundle as written by the app: the archive on disk and its content hash."""

    path: str
    content_hash: str


class InstanceStack(Stack):
    """Its resources, parameters and outputs are rendered in Python by the af_instance_* modules (plain data,
    unit-tested without CDK) and reach the template one of two ways, with the same bytes (tested):

    - by default through `FragmentStackSynthesizer`, which merges them into the template CDK writes: a handful of
      jsii round trips per stack instead of ~60, which is what keeps a 1,000-instance synth fast;
    - with `write_fragment` (construct mode, `-c instanceConstructs=true`), as ONE `CfnInclude` that builds the L1
      constructs (CfnRole, CfnService, ...) in Node, so construct-level tools see them: the test suite runs
      cdk-nag this way, and the fragment's acknowledgements are applied to exactly their resources.
    """

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
        write_fragment: FragmentWriter | None = None,
        path_metadata: bool = False,
    ) -> None:
        """`path_metadata`: write each resource's `aws:cdk:path` (neither way gets it from CDK)."""
        env_name = instance.environment
        key = instance.key
        spec = instance.manifest.spec
        synthesizer = FragmentStackSynthesizer() if write_fragment is None else None
        super().__init__(
            scope,
            id_,
            env=Environment(account=settings.account, region=settings.region),
            description=f"Agent Foundry instance {env_name}/{key.selector} ({spec.hostname})",
            # Stack tags: CloudFormation puts them on the stack and every taggable resource in it.
            tags=instance_tags(env_name, key.organization_id, key.domain_id, key.instance_id, bundle.content_hash),
            synthesizer=synthesizer,
        )
        archive = stage_bundle(self, "Bundle", archive_path=bundle.path)
        fragment = instance_fragment(
            instance=instance,
            settings=settings,
            slot=slot,
            image=self._image(image),
            bundle_uri=archive.uri,
            bundle_object_arn=archive.object_arn,
            bundle_hash=bundle.content_hash,
        )
        template = fragment.template(path_prefix=id_ if path_metadata else None)
        if synthesizer is not None:
            synthesizer.set_fragment(template)
            return
        assert write_fragment is not None
        include = cfn_include.CfnInclude(self, INCLUDE_ID, template_file=write_fragment(template))
        for ack in fragment.acknowledgements:
            acknowledge(include.get_resource(ack.logical_id), ack.rule, ack.reason)

    def _image(self, image: RuntimeImage) -> ImageRef:
        """A prebuilt URI is a literal; an image asset's URI and repository are tokens, resolved here to the
        CloudFormation expressions CDK would have written for them."""
        if isinstance(image, ImageFromUri):
            return ImageRef(uri=image.uri, repository_arn=ecr_repository_arn(image.uri))
        assert isinstance(image, ImageFromAsset)
        asset = ecr_assets.DockerImageAsset(
            self,
            "RuntimeImage",
            directory=image.directory,
            file=image.dockerfile,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        return ImageRef(uri=self.resolve(asset.image_uri), repository_arn=self.resolve(asset.repository.repository_arn))


def instance_fragment(
    *,
    instance: ResolvedInstance,
    settings: EnvironmentSettings,
    slot: Slot,
    image: ImageRef,
    bundle_uri: str,
    bundle_object_arn: Json,
    bundle_hash: str,
) -> Fragment:
    """Everything of an instance stack but its bundle asset, as one fragment. Pure: unit-testable without CDK."""
    env_name = instance.environment
    key = instance.key
    spec = instance.manifest.spec
    network_names = contract.network_parameters(env_name)
    shard_names = contract.shard_parameters(env_name, slot.shard)
    fragment = Fragment(
        parameters={
            "ShardListenerArn": ssm_parameter(shard_names.listener_arn),
            "ShardLoadBalancerArn": ssm_parameter(shard_names.load_balancer_arn),
            "ShardSecurityGroupId": ssm_parameter(shard_names.security_group_id),
            "ShardDnsName": ssm_parameter(shard_names.dns_name),
            "ShardCanonicalZoneId": ssm_parameter(shard_names.canonical_hosted_zone_id),
            "VpcId": ssm_parameter(network_names.vpc_id),
            "PrivateSubnetIds": ssm_parameter(network_names.private_subnet_ids, as_list=True),
            "HostedZoneId": ssm_parameter(network_names.hosted_zone_id),
        }
    )
    shard = ShardRef(
        listener_arn=ref("ShardListenerArn"),
        load_balancer_arn=ref("ShardLoadBalancerArn"),
        security_group_id=ref("ShardSecurityGroupId"),
        dns_name=ref("ShardDnsName"),
        canonical_hosted_zone_id=ref("ShardCanonicalZoneId"),
    )
    physical_names = {name: naming.secret_name(env_name, key, name) for name in spec.secrets}
    fragment.add(
        secrets_fragment(physical_names=physical_names, description=f"Agent Foundry {env_name}/{key.selector}")
    )
    fragment.add(
        routing_fragment(
            hostname=spec.hostname,
            vpc_id=ref("VpcId"),
            hosted_zone_id=ref("HostedZoneId"),
            shard=shard,
            listener_priority=slot.priority,
            container_port=CONTAINER_PORT,
            health_path=READY_PATH,
        )
    )
    cluster_name = contract.cluster_name(env_name)
    fragment.add(
        service_fragment(
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
                vpc_id=ref("VpcId"),
                private_subnet_ids=ref("PrivateSubnetIds"),
                load_balancer_security_group_id=shard.security_group_id,
            ),
            target_group_arn=target_group_arn(),
            listener_rule_id=LISTENER_RULE_ID,
            bundle_uri=bundle_uri,
            bundle_hash=bundle_hash,
            bundle_object_arn=bundle_object_arn,
            secret_arns=secret_arns(physical_names),
            log_retention_days=settings.log_retention_days,
            bedrock_model_arn=_bedrock_model_arn(instance, settings.region),
            family=spec.stack_name,
            region=settings.region,
        )
    )
    scheme = "http" if settings.load_balancer.plain_http else "https"
    outputs: dict[str, str | Json] = {
        "Hostname": spec.hostname,
        "ServiceName": service_name(),
        "ClusterName": cluster_name,
        "TargetGroupArn": target_group_arn(),
        "LoadBalancerArn": shard.load_balancer_arn,
        "BundleHash": bundle_hash,
        "BundleUri": bundle_uri,
        "LogGroupName": log_group_name(),
        "InstanceEndpoint": f"{scheme}://{spec.hostname}{MCP_PATH}",
    }
    fragment.outputs.update({output_id: {"Value": value} for output_id, value in outputs.items()})
    return fragment


def instance_tags(environment: str, organization: str, domain: str, instance: str, bundle_hash: str) -> dict[str, str]:
    return {
        "agentfoundry:organization": organization,
        "agentfoundry:domain": domain,
        "agentfoundry:environment": environment,
        "agentfoundry:instance": instance,
        "agentfoundry:bundle-hash": bundle_hash,
    }


def _bedrock_model_arn(instance: ResolvedInstance, region: str) -> Json | None:
    mcp = instance.manifest.spec.mcp
    if mcp.model_provider != "bedrock" or mcp.bedrock_model_id is None:
        return None
    return join("arn:", PARTITION, f":bedrock:{mcp.bedrock_region or region}::foundation-model/{mcp.bedrock_model_id}")
