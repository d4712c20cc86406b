"""Names derived from an instance's identity. Changing any of these renames live resources: treat as API."""

from __future__ import annotations

import re

from foundry.manifests.schema import DNS_LABEL_PATTERN, InstanceKey

_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)

MAX_HOSTNAME_LABEL = 63
MAX_STACK_NAME = 128
MAX_HOSTNAME = 253

INSTANCE_STACK_OUTPUTS = frozenset(
    {
        "Hostname",
        "ServiceName",
        "ClusterName",
        "TargetGroupArn",
        "LoadBalancerArn",
        "BundleHash",
        "BundleUri",
        "LogGroupName",
        "InstanceEndpoint",
        "AlarmNames",
    }
)
"""CfnOutput ids of every InstanceStack: the Foundry MCP server and the local-AWS loop read these (AlarmNames: the
instance's CloudWatch alarms, comma-separated, which the rollout gate and get_instance_status read)."""


def hostname_label(key: InstanceKey) -> str:
    return f"{key.organization_id}-{key.domain_id}-{key.instance_id}"


def hostname(key: InstanceKey, zone_name: str) -> str:
    return f"{hostname_label(key)}.{zone_name}"


def instance_stack_name(environment: str, key: InstanceKey) -> str:
    return f"af-{environment}-{key.organization_id}-{key.domain_id}-{key.instance_id}"


def platform_stack_name(environment: str) -> str:
    return f"af-{environment}-platform"


def instance_name(key: InstanceKey) -> str:
    """`<org>.<domain>.instance-<id>`: the instance manifest's metadata.name."""
    return f"{key.organization_id}.{key.domain_id}.instance-{key.instance_id}"


def instance_manifest_file(key: InstanceKey) -> str:
    return f"manifest.{instance_name(key)}.yaml"


def bundle_file(key: InstanceKey) -> str:
    return f"{instance_name(key)}.bundle.tar.gz"


def secret_name(environment: str, key: InstanceKey, name: str) -> str:
    """Secrets Manager name; the per-instance prefix is what IAM policies scope to."""
    return f"{secret_prefix(environment, key)}/{name}"


def secret_prefix(environment: str, key: InstanceKey) -> str:
    return f"agentfoundry/{environment}/{key.organization_id}/{key.domain_id}/{key.instance_id}"


def parse_selector(selector: str) -> InstanceKey:
    """'ORG/DOMAIN/INSTANCE' -> InstanceKey; raises ValueError with what was expected."""
    parts = selector.split("/")
    if len(parts) != 3 or not all(_DNS_LABEL.match(part) for part in parts):
        raise ValueError(
            f"instance selector {selector!r} must be ORG/DOMAIN/INSTANCE, each a DNS-safe id "
            "(lowercase letters, digits and '-')"
        )
    return InstanceKey(parts[0], parts[1], parts[2])
