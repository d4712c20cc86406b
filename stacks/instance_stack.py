"""One InstanceStack per (environment, organization, domain, instance): the `AfAgentRuntime` construct, fed with
its platform's SSM parameters (resolved by CloudFormation at deploy time), plus the outputs the control plane reads.

The platform stack never exports anything, so each instance deploys, changes and is deleted on its own. This is
where the control plane's values (the resolved manifest, the environment's settings, the placement slot) become
the construct's own plain props: the construct knows nothing of `foundry`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache

from aws_cdk import ArnFormat, CfnOutput, CfnParameter, CfnResource, Environment, Fn, Stack
from aws_cdk import aws_applicationautoscaling as appscaling

from constructs import Construct, IConstruct
from constructs import af_platform_contract as contract
from constructs.af_agent_runtime import MCP_PATH, AfAgentRuntime
from constructs.af_agent_runtime_props import (
    ALARM_KINDS,
    AgentRuntimeProps,
    AlarmThresholds,
    BedrockFoundationModel,
    InstanceKey,
    Lifecycle,
    OffHours,
    RuntimeIdentity,
    RuntimeImage,
    RuntimePlatform,
    ShardAttributes,
    TaskSizing,
    TelemetryCollector,
    alarm_name,
    secret_construct_id,
)
from constructs.af_agent_runtime_telemetry import ADOT_COLLECTOR_IMAGE, COLLECTOR_CONFIG_FILE
from constructs.af_platform_network import availability_zones
from foundry.fleet.placement import Slot
from foundry.manifests import naming
from foundry.manifests.bedrock_models import bedrock_models
from foundry.manifests.instance_auth import PLATFORM_ISSUER, resolve_instance_auth
from foundry.manifests.platform_settings import EnvironmentSettings
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import DeploySettings
from instance_contract.off_hours import CronFields

INSTANCE_ID = "Instance"
"""The AfAgentRuntime's construct id: never change it (every id in DEPLOYED_LOGICAL_IDS is derived from it)."""
SSM_PARAMETER_DESCRIPTION = "SSM parameter written by the platform stack"

DEPLOYED_LOGICAL_IDS: dict[str, str] = {
    "InstanceLogs52A563C0": "RuntimeLogs040130CF",
    "InstanceExecutionRole320B63D9": "RuntimeExecutionRole329B38D7",
    "InstanceTaskRoleD6081E1B": "RuntimeTaskRoleAB7E1F72",
    "InstanceTaskDefinitionB341C80F": "RuntimeTaskDefinitionBB2F76AB",
    "InstanceSecurityGroupB4E5FA83": "RuntimeSecurityGroup3DBEE987",
    "InstanceService247DE1FC": "RuntimeService408BD8AA",
    "InstanceServiceTaskCountTarget8C724E19": "RuntimeScalableTarget5157159D",
    "InstanceServiceTaskCountTargetCpuScaling7AA54DAE": "RuntimeCpuScaling5B686642",
    "InstanceTargetGroupE138C9A1": "RoutingTargetGroup2EF40F3D",
    "InstanceListenerRuleBF3036FD": "RoutingListenerRuleA90D739E",
    "InstanceAlias3B11AB05": "RoutingAlias1109FB39",
}
"""The logical id CDK gives a resource of the `Instance` construct -> the id that resource had in deployed stacks
(before the construct existed). A new logical id makes CloudFormation create a new resource and delete the old one:
a secret would lose its value, the log group its logs, a second listener rule or record would collide with the
first, and a second scalable target would be deregistered by the old one's deletion. So every deployed resource
keeps its id, through `Stack.rename_logical_id`: one call per resource, and CDK fails the synth if a generated id
on the left no longer exists (a construct moved), so a rename can never silently stop applying."""

_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def deployed_secret_logical_id(name: str) -> str:
    """The logical id secret `name` had in deployed stacks: CDK's unique id of the path `Secrets/<Name>`
    (human part plus the first 8 hex digits of the path's md5). Never change it: a new id replaces the secret."""
    path = ["Secrets", secret_construct_id(name)]
    digest = hashlib.md5("/".join(path).encode(), usedforsecurity=False).hexdigest()[:8].upper()
    return "".join(_NON_ALPHANUMERIC.sub("", part) for part in path) + digest


def keep_deployed_logical_ids(stack: Stack, instance: AfAgentRuntime) -> None:
    for generated, deployed in DEPLOYED_LOGICAL_IDS.items():
        stack.rename_logical_id(generated, deployed)
    for name, secret in instance.secrets.items():
        _default_child(secret).override_logical_id(deployed_secret_logical_id(name))


def _default_child(construct: IConstruct) -> CfnResource:
    child = construct.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource as its default child")
    return child


@dataclass(frozen=True)
class BundleFile:
    """The instance's bundle as written by the app: the archive on disk and its content hash."""

    path: str
    content_hash: str


class InstanceStack(Stack):
    """`platform` and `instance` (the `AfAgentRuntime`) are public, for tests and for users who extend a stack."""

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
        self.platform = self._platform(settings, env_name, slot.shard)
        self.instance = AfAgentRuntime(
            self, INSTANCE_ID, props=self._runtime_props(instance, settings, slot, image=image, bundle=bundle)
        )
        keep_deployed_logical_ids(self, self.instance)
        scheme = "http" if settings.load_balancer.plain_http else "https"
        outputs = {
            "Hostname": spec.hostname,
            "ServiceName": self.instance.service.service_name,
            "ClusterName": self.platform.cluster_name,
            "TargetGroupArn": self.instance.target_group.target_group_arn,
            "LoadBalancerArn": self.platform.shard.load_balancer_arn,
            "BundleHash": bundle.content_hash,
            "BundleUri": self.instance.bundle_uri,
            "LogGroupName": self.instance.log_group.log_group_name,
            "AlarmNames": ",".join(alarm_name(spec.stack_name, kind) for kind in ALARM_KINDS),
            "InstanceEndpoint": f"{scheme}://{spec.hostname}{MCP_PATH}",
        }
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value)

    def _platform(self, settings: EnvironmentSettings, environment: str, shard_number: int) -> RuntimePlatform:
        """The platform's values: the cluster name is known at synth, the rest are SSM parameters."""
        network = contract.network_parameters(environment)
        shard = contract.shard_parameters(environment, shard_number)
        zones = availability_zones(settings.vpc, settings.region)
        private_subnets = self._ssm_list("PrivateSubnetIds", network.private_subnet_ids)
        return RuntimePlatform(
            cluster_name=contract.cluster_name(environment),
            vpc_id=self._ssm("VpcId", network.vpc_id),
            availability_zones=zones,
            private_subnet_ids=[Fn.select(index, private_subnets) for index in range(len(zones))],
            hosted_zone_id=self._ssm("HostedZoneId", network.hosted_zone_id),
            zone_name=settings.zone.name,
            shard=ShardAttributes(
                listener_arn=self._ssm("ShardListenerArn", shard.listener_arn),
                load_balancer_arn=self._ssm("ShardLoadBalancerArn", shard.load_balancer_arn),
                security_group_id=self._ssm("ShardSecurityGroupId", shard.security_group_id),
                dns_name=self._ssm("ShardDnsName", shard.dns_name),
                canonical_hosted_zone_id=self._ssm("ShardCanonicalZoneId", shard.canonical_hosted_zone_id),
            ),
        )

    def _runtime_props(
        self,
        instance: ResolvedInstance,
        settings: EnvironmentSettings,
        slot: Slot,
        *,
        image: RuntimeImage,
        bundle: BundleFile,
    ) -> AgentRuntimeProps:
        """The control plane's values as the construct's plain props."""
        env_name, key, spec = instance.environment, instance.key, instance.manifest.spec
        deploy = spec.deploy
        return AgentRuntimeProps(
            identity=RuntimeIdentity(
                organization_id=key.organization_id,
                domain_id=key.domain_id,
                environment=env_name,
                instance_id=key.instance_id,
                hostname=spec.hostname,
            ),
            platform=self.platform,
            image=image,
            sizing=TaskSizing(
                cpu=deploy.cpu,
                memory_mib=deploy.memory,
                min_tasks=deploy.min_tasks,
                max_tasks=deploy.max_tasks,
                cpu_target_percent=deploy.cpu_target_percent,
            ),
            bundle_path=bundle.path,
            bundle_hash=bundle.content_hash,
            secrets={name: naming.secret_name(env_name, key, name) for name in spec.secrets},
            listener_priority=slot.priority,
            log_retention_days=settings.log_retention_days,
            bedrock_models=[
                BedrockFoundationModel(region=model.region, model_id=model.model_id)
                for model in bedrock_models(instance, default_region=settings.region)
            ],
            family=spec.stack_name,
            region=settings.region,
            thread_state_point_in_time_recovery=settings.state_point_in_time_recovery,
            auth_environment=self._auth_environment(settings, env_name, key.organization_id, spec.hostname),
            telemetry=TelemetryCollector(image=ADOT_COLLECTOR_IMAGE, config_yaml=collector_config()),
            alarms=AlarmThresholds(**instance.alarms.model_dump()),
            alarm_topic_arn=self.format_arn(
                service="sns", resource=contract.alarm_topic_name(env_name), arn_format=ArnFormat.NO_RESOURCE_NAME
            ),
            lifecycle=runtime_lifecycle(deploy, settings),
            encryption_key=instance_key(settings),
        )

    def _auth_environment(
        self, settings: EnvironmentSettings, environment: str, organization_id: str, hostname: str
    ) -> dict[str, str]:
        """The runtime's AUTH_* variables; the platform's Cognito pool, when it is the issuer, is read from SSM."""
        auth = resolve_instance_auth(settings, organization_id=organization_id, hostname=hostname)
        if auth.issuer_source != PLATFORM_ISSUER:
            return auth.runtime_environment()
        identity = contract.identity_parameters(environment)
        return auth.runtime_environment(
            platform_issuer=self._ssm("IdentityIssuerUrl", identity.issuer_url),
            platform_client_id=self._ssm("IdentityClientId", identity.client_id(organization_id)),
        )

    def _ssm(self, id_: str, parameter_name: str) -> str:
        """A CloudFormation SSM parameter type: the value is read when the stack deploys, not at synth."""
        return CfnParameter(
            self,
            id_,
            type="AWS::SSM::Parameter::Value<String>",
            default=parameter_name,
            description=SSM_PARAMETER_DESCRIPTION,
        ).value_as_string

    def _ssm_list(self, id_: str, parameter_name: str) -> list[str]:
        return CfnParameter(
            self,
            id_,
            type="AWS::SSM::Parameter::Value<List<String>>",
            default=parameter_name,
            description=SSM_PARAMETER_DESCRIPTION,
        ).value_as_list


def runtime_lifecycle(deploy: DeploySettings, settings: EnvironmentSettings) -> Lifecycle:
    """The instance's `state` and `schedule`, and its environment's capacity, as the construct's props."""
    schedule = deploy.schedule
    off_hours = None
    if schedule is not None:
        off_hours = OffHours(
            stop=_cron_options(schedule.stop_cron),
            start=_cron_options(schedule.start_cron),
            time_zone=schedule.time_zone,
        )
    return Lifecycle(paused=deploy.state == "paused", off_hours=off_hours, capacity=settings.capacity)


def instance_key(settings: EnvironmentSettings) -> InstanceKey | None:
    """The environment's `encryption` as the construct's prop: a key of the instance's own, or None."""
    if settings.encryption != "per_instance_key":
        return None
    return InstanceKey(pending_window_days=settings.key_pending_window_days)


def _cron_options(cron: CronFields) -> appscaling.CronOptions:
    return appscaling.CronOptions(
        minute=cron.minute, hour=cron.hour, day=cron.day, month=cron.month, week_day=cron.week_day
    )


@cache
def collector_config() -> str:
    """The OpenTelemetry collector's configuration, read once per process."""
    return COLLECTOR_CONFIG_FILE.read_text(encoding="utf-8")


def instance_tags(environment: str, organization: str, domain: str, instance: str, bundle_hash: str) -> dict[str, str]:
    return {
        "agentfoundry:organization": organization,
        "agentfoundry:domain": domain,
        "agentfoundry:environment": environment,
        "agentfoundry:instance": instance,
        "agentfoundry:bundle-hash": bundle_hash,
    }
