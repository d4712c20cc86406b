"""The shared platform of one environment: network, ECS cluster, hosted zone, as many ALB shards as the
environment's placement file uses, the alarm topic and fleet dashboard, a Cognito token issuer when the settings
name none (one app client per organization of the environment's manifest that has no issuer of its own), the
deploy-state table (rollout records and deploy locks shared by every deployer), and the bucket offboarding exports
instances' data to (its name a stack output, read by the Foundry). Everything instances need is published as SSM
parameters (see constructs/af_platform_contract.py), never as CloudFormation exports."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_s3 as s3

from constructs import Construct
from constructs import af_platform_contract as contract
from constructs.af_agent_runtime_props import log_retention
from constructs.af_alb_shard import AfAlbShard, ShardListenerSettings
from constructs.af_deploy_state import AfDeployState
from constructs.af_nag import acknowledge
from constructs.af_platform_identity import AfPlatformIdentity
from constructs.af_platform_network import AfNetwork, availability_zones
from constructs.af_platform_observability import AfPlatformObservability, AlarmSubscription
from constructs.af_platform_zone import AfZone
from foundry.manifests.instance_auth import PLATFORM_ORG_CLAIM, platform_pool_organizations, uses_platform_pool
from foundry.manifests.platform_settings import EnvironmentSettings

OFFBOARDING_ACCESS_LOG_PREFIX = "offboarding-exports/"
"""Server access logs of the exports bucket (who read a departed tenant's data), beside the load balancers' logs."""


class PlatformStack(Stack):
    @property
    def availability_zones(self) -> list[str]:
        """The zones from the settings: without this override CDK looks them up in the account at synth."""
        return list(self._zones)

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        environment: str,
        settings: EnvironmentSettings,
        shards: Sequence[int],
        organizations: Sequence[str] = (),
    ) -> None:
        """`organizations`: every organization of the environment's manifest (whatever instances are selected)."""
        super().__init__(
            scope,
            id_,
            env=Environment(account=settings.account, region=settings.region),
            description=f"Agent Foundry platform of environment {environment}: network, cluster, zone, ALB shards",
        )
        self._zones = availability_zones(settings.vpc, settings.region)
        network = AfNetwork(
            self,
            "Network",
            settings=settings.vpc,
            region=settings.region,
            parameters=contract.network_parameters(environment),
        )
        ecs.Cluster(
            self,
            "Cluster",
            cluster_name=contract.cluster_name(environment),
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            # Spot capacity (agents/platform.yaml `capacity`) needs the FARGATE and FARGATE_SPOT providers.
            enable_fargate_capacity_providers=settings.capacity != "on_demand",
        )
        AfZone(
            self,
            "Dns",
            settings=settings.zone,
            vpc=network.vpc,
            zone_id_parameter=contract.network_parameters(environment).hosted_zone_id,
        )
        if uses_platform_pool(settings):
            # no issuer named for the environment: its instances trust this Cognito pool (organizations with their
            # own identity provider in settings.auth.organizations keep theirs, and get no client here)
            AfPlatformIdentity(
                self,
                "Identity",
                pool_name=f"af-{environment}-callers",
                domain_prefix=f"agentfoundry-{environment}-{settings.account}",
                parameters=contract.identity_parameters(environment),
                organizations=platform_pool_organizations(settings, organizations),
                org_claim=PLATFORM_ORG_CLAIM,
                log_retention=log_retention(settings.log_retention_days),
            )
        AfDeployState(self, "DeployState", parameter_name=contract.deploy_state_parameter(environment))
        AfPlatformObservability(
            self,
            "Observability",
            environment=environment,
            topic_name=contract.alarm_topic_name(environment),
            dashboard_name=contract.dashboard_name(environment),
            subscribers=[
                AlarmSubscription(protocol=s.protocol, endpoint=s.endpoint) for s in settings.alarms.subscribers
            ],
        )
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(settings.log_retention_days))],
        )
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "this bucket only receives the load balancers' access logs; logging access to it would log the logs",
        )
        self.offboarding_exports = self._offboarding_exports(access_logs)
        listener = ShardListenerSettings(
            internet_facing=settings.load_balancer.internet_facing,
            certificate_arn=settings.load_balancer.certificate_arn,
            plain_http=settings.load_balancer.plain_http,
            idle_timeout_seconds=settings.load_balancer.idle_timeout_seconds,
        )
        for shard in shards:
            AfAlbShard(
                self,
                f"Shard{shard}",
                shard=shard,
                vpc=network.vpc,
                client_cidr=network.client_cidr,
                listener=listener,
                access_logs=access_logs,
                parameters=contract.shard_parameters(environment, shard),
            )

    def _offboarding_exports(self, access_logs: s3.IBucket) -> s3.Bucket:
        """Where `python -m foundry offboard` exports an instance's table before deleting its stack: private,
        encrypted, TLS only, versioned (an export is never overwritten) and retained with the data of every tenant
        that left; its name is the stack output the Foundry reads."""
        bucket = s3.Bucket(
            self,
            "OffboardedData",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=OFFBOARDING_ACCESS_LOG_PREFIX,
        )
        CfnOutput(
            self,
            contract.OFFBOARDING_BUCKET_OUTPUT,
            value=bucket.bucket_name,
            description="Where offboarded instances' data is exported (python -m foundry offboard)",
        )
        return bucket
