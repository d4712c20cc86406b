"""What an environment's platform stack publishes for its instance stacks, and under which names.

Instance stacks never use `Fn::ImportValue` (an export locks the exporting stack: the platform could not change a
load balancer while any instance imports it). Instead the platform writes SSM parameters with the deterministic
names below and instance stacks read them as CloudFormation SSM parameter types, resolved at deploy time. Values
known at synth (the cluster name) are shared as plain strings. Pure names only: no CDK here.
"""

from __future__ import annotations

from dataclasses import dataclass

OFFBOARDING_BUCKET_OUTPUT = "OffboardingBucketName"
"""The platform stack's output naming the bucket offboarding exports instances' data to (foundry/deploy/offboard.py
reads it by this name)."""


def parameter_prefix(environment: str) -> str:
    return f"/agentfoundry/{environment}/platform"


def cluster_name(environment: str) -> str:
    """The ECS cluster's physical name: known at synth, so instances need no parameter for it."""
    return f"af-{environment}"


def alarm_topic_name(environment: str) -> str:
    """The environment's alarm topic (SNS): known at synth, so instances build its ARN without a parameter."""
    return f"af-{environment}-alarms"


def dashboard_name(environment: str) -> str:
    return f"AgentFoundry-{environment}"


@dataclass(frozen=True)
class NetworkParameters:
    vpc_id: str
    private_subnet_ids: str
    """A StringList parameter."""
    hosted_zone_id: str


@dataclass(frozen=True)
class ShardParameters:
    """One ALB shard: the listener instances attach their rule to, and what their alias record points at."""

    listener_arn: str
    load_balancer_arn: str
    security_group_id: str
    dns_name: str
    canonical_hosted_zone_id: str


def network_parameters(environment: str) -> NetworkParameters:
    prefix = parameter_prefix(environment)
    return NetworkParameters(
        vpc_id=f"{prefix}/vpc-id",
        private_subnet_ids=f"{prefix}/private-subnet-ids",
        hosted_zone_id=f"{prefix}/hosted-zone-id",
    )


def shard_parameters(environment: str, shard: int) -> ShardParameters:
    prefix = f"{parameter_prefix(environment)}/shards/{shard}"
    return ShardParameters(
        listener_arn=f"{prefix}/listener-arn",
        load_balancer_arn=f"{prefix}/load-balancer-arn",
        security_group_id=f"{prefix}/security-group-id",
        dns_name=f"{prefix}/dns-name",
        canonical_hosted_zone_id=f"{prefix}/canonical-hosted-zone-id",
    )


@dataclass(frozen=True)
class IdentityParameters:
    """The environment's Amazon Cognito user pool, when its settings name no token issuer."""

    issuer_url: str
    """The pool's issuer (https://cognito-idp.<region>.amazonaws.com/<pool id>): the instances' AUTH_ISSUER."""
    token_endpoint: str
    """Where callers get tokens (client credentials grant)."""
    organizations_prefix: str

    def client_id(self, organization_id: str) -> str:
        """The organization's app client id: its tokens' `client_id`, the AUTH_AUDIENCE of that organization's
        instances (and what the pre-token-generation trigger maps to the organization claim)."""
        return f"{self.organizations_prefix}/{organization_id}/client-id"


def identity_parameters(environment: str) -> IdentityParameters:
    prefix = f"{parameter_prefix(environment)}/identity"
    return IdentityParameters(
        issuer_url=f"{prefix}/issuer-url",
        token_endpoint=f"{prefix}/token-endpoint",
        organizations_prefix=f"{prefix}/organizations",
    )


def deploy_state_parameter(environment: str) -> str:
    """The name of the environment's deploy-state table (rollout records and deploy locks): the Foundry's
    `FOUNDRY_STATE_URL=dynamodb://` reads it (foundry/state/locations.py keeps the same name)."""
    return f"{parameter_prefix(environment)}/deploy-state-table"
