"""Reading the local AWS back: every instance of the environment checked with boto3 (its ECS service, listener
rule, DNS record, bundle object and thread-state table), and every stack's resources that moto did not model.

Honesty: moto's CloudFormation silently skips resource types it does not implement (a Ref to one resolves to
nothing), and it models services as records, not running things. The read-back therefore compares every deployed
stack's template with the resources moto really created and lists the rest as "not modelled"; the real templates
are never changed for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from foundry.aws.clients import boto3_clients
from foundry.aws.cloudformation import read_deployed_template, stack_outputs
from foundry.bundles.archive import BundleError, read_bundle
from foundry.fleet.load import load_fleet
from foundry.local.server import ServerState
from foundry.manifests.naming import platform_stack_name
from foundry.manifests.resolve import ResolvedInstance

INERT_BY_DESIGN = (
    "ECS: services and task definitions are records; no task or container ever runs",
    "Elastic Load Balancing: listeners, rules and target groups are records; nothing listens or routes traffic",
    "Route 53: records are stored; no DNS server answers for the zone",
    "IAM: roles and policies are stored; no request is authorised against them",
)
READ_SERVICES = ("cloudformation", "ecs", "elbv2", "route53", "s3", "dynamodb")
DeployedStack = tuple[dict[str, Any], list[dict[str, Any]]]
"""(template, resources moto created for it)."""


def unmodelled_resources(template: Mapping[str, Any], created: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Template resources that moto did not create (its list_stack_resources lacks their logical id)."""
    made = {r.get("LogicalResourceId") for r in created if r.get("LogicalResourceId")}
    return [
        {"logical_id": logical_id, "type": str(resource.get("Type"))}
        for logical_id, resource in sorted((template.get("Resources") or {}).items())
        if logical_id not in made
    ]


def read_back(agents_dir: Path, state: ServerState) -> dict[str, Any]:
    """Reads every instance of the server's environment back with boto3, and every stack's unmodelled resources.
    boto3 finds the local AWS through the environment (`using_aws_environment`)."""
    fleet = load_fleet(agents_dir, environment=state.environment)
    zone_name = fleet.tree.platform.model.spec.environments[state.environment].zone.name
    stacks = [platform_stack_name(state.environment)] + [i.manifest.spec.stack_name for i in fleet.instances]
    clients = {service: boto3_clients(service, state.region) for service in READ_SERVICES}
    deployed = _deployed_stacks(clients["cloudformation"], stacks)
    records = _zone_records(clients["route53"], zone_name)
    instances = [_read_instance(instance, clients, deployed, records, zone_name) for instance in fleet.instances]
    return {
        "endpoint": state.endpoint,
        "environment": state.environment,
        "account": state.account,
        "region": state.region,
        "ok": bool(instances) and all(i["ok"] for i in instances),
        "instances": instances,
        "not_modelled": {stack: unmodelled_resources(*found) for stack, found in deployed.items()},
        "inert_by_design": list(INERT_BY_DESIGN),
    }


def _deployed_stacks(cloudformation: Any, stacks: Sequence[str]) -> dict[str, DeployedStack]:
    """Each stack that can be read: its deployed template and the resources moto created."""
    deployed: dict[str, DeployedStack] = {}
    for stack in stacks:
        try:
            template = read_deployed_template(cloudformation, stack)
            created = cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        except ClientError:
            continue
        deployed[stack] = (template, created)
    return deployed


def _zone_records(route53: Any, zone_name: str) -> list[dict[str, Any]]:
    zone_id = None
    for zone in route53.list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"]:
        if zone["Name"].rstrip(".") == zone_name:
            zone_id = zone["Id"]
    if not zone_id:
        return []
    records: list[dict[str, Any]] = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return records


def _read_instance(
    instance: ResolvedInstance,
    clients: Mapping[str, Any],
    deployed: Mapping[str, DeployedStack],
    records: Sequence[Mapping[str, Any]],
    zone_name: str,
) -> dict[str, Any]:
    """One instance's checks: its stack's outputs lead to the service, listener rule, record, bundle and table."""
    stack, hostname = instance.manifest.spec.stack_name, instance.manifest.spec.hostname
    try:
        found = clients["cloudformation"].describe_stacks(StackName=stack)["Stacks"][0]
        outputs = stack_outputs(found)
    except ClientError as exc:
        missing = Check("stack", False, f"not deployed: {exc.response['Error'].get('Message', exc)}")
        return {"instance": instance.key.selector, "stack": stack, "ok": False, "checks": [asdict(missing)]}
    template, created = deployed.get(stack, ({}, []))
    checks = [
        _check_service(clients["ecs"], outputs),
        _check_listener_rule(clients["elbv2"], outputs, hostname),
        _check_record(records, hostname, zone_name),
        _check_bundle(clients["s3"], outputs),
        *state_table_checks(clients["dynamodb"], template, created),
    ]
    return {
        "instance": instance.key.selector,
        "stack": stack,
        "hostname": hostname,
        "ok": all(c.ok for c in checks),
        "checks": [asdict(c) for c in checks],
    }


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _check_service(ecs: Any, outputs: Mapping[str, str]) -> Check:
    cluster, name = outputs.get("ClusterName"), outputs.get("ServiceName")
    if not cluster or not name:
        return Check("ecs_service", False, "stack outputs lack ClusterName/ServiceName")
    found = ecs.describe_services(cluster=cluster, services=[name])["services"]
    if not found:
        return Check("ecs_service", False, f"no ECS service {name} in cluster {cluster}")
    service = found[0]
    detail = f"{service['serviceName']} in {cluster}: {service['status']}, desired {service['desiredCount']} task(s)"
    return Check("ecs_service", service["status"] == "ACTIVE", detail, {"task_definition": service["taskDefinition"]})


def _check_listener_rule(elbv2: Any, outputs: Mapping[str, str], hostname: str) -> Check:
    target_group, balancer = outputs.get("TargetGroupArn"), outputs.get("LoadBalancerArn")
    if not target_group or not balancer:
        return Check("listener_rule", False, "stack outputs lack TargetGroupArn/LoadBalancerArn")
    for listener in elbv2.describe_listeners(LoadBalancerArn=balancer)["Listeners"]:
        for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
            forwards = {a.get("TargetGroupArn") for a in rule.get("Actions", [])}
            forwards |= {
                t.get("TargetGroupArn")
                for a in rule.get("Actions", [])
                for t in (a.get("ForwardConfig") or {}).get("TargetGroups", [])
            }
            hosts = {
                v
                for c in rule.get("Conditions", [])
                if c.get("Field") == "host-header"
                for v in [*c.get("Values", []), *(c.get("HostHeaderConfig") or {}).get("Values", [])]
            }
            if target_group in forwards and hostname in hosts:
                detail = f"priority {rule['Priority']} on port {listener['Port']}: host {hostname} -> target group"
                return Check("listener_rule", True, detail, {"rule_arn": rule["RuleArn"]})
    return Check("listener_rule", False, f"no listener rule routes host {hostname} to {target_group}")


def _check_record(records: Sequence[Mapping[str, Any]], hostname: str, zone: str) -> Check:
    for record in records:
        if record["Name"].rstrip(".") == hostname and record["Type"] in ("A", "AAAA", "CNAME"):
            target = (record.get("AliasTarget") or {}).get("DNSName") or record.get("ResourceRecords")
            return Check("route53_record", True, f"{record['Type']} {hostname} -> {target}")
    return Check("route53_record", False, f"no record {hostname} in zone {zone}")


def _check_bundle(s3: Any, outputs: Mapping[str, str]) -> Check:
    uri, expected = outputs.get("BundleUri", ""), outputs.get("BundleHash")
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        return Check("bundle_object", False, f"BundleUri output is {uri!r}, not s3://...")
    body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    try:
        index, _ = read_bundle(body, uri, expected_hash=expected)
    except BundleError as exc:
        return Check("bundle_object", False, str(exc))
    return Check("bundle_object", True, f"{uri}: {len(body)} bytes, content hash {index['content_hash']} verified")


def state_table_checks(dynamodb: Any, template: Mapping[str, Any], created: Sequence[Mapping[str, Any]]) -> list[Check]:
    """One check per DynamoDB table in the stack's template (the instance's thread state), read back with boto3.
    It fails when the table is missing, not ACTIVE, or its keys or billing differ from the template; template
    settings moto does not apply (its CloudFormation ignores TimeToLiveSpecification and point-in-time recovery)
    are named in the detail instead of pretended. A stack whose template has no table gets no check."""
    physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in created}
    checks = []
    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        name = physical.get(logical_id)
        if not name:
            checks.append(Check("state_table", False, f"{logical_id}: in the template, but no table was created"))
            continue
        checks.append(_check_state_table(dynamodb, str(name), resource.get("Properties") or {}))
    return checks


def _check_state_table(dynamodb: Any, name: str, wanted: Mapping[str, Any]) -> Check:
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        tags = {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]}
    except ClientError as exc:
        return Check("state_table", False, f"{name}: {exc.response['Error'].get('Code', exc)}")
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    keys = [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in table["KeySchema"]]
    problems = [
        *([] if table["TableStatus"] == "ACTIVE" else [f"status {table['TableStatus']}"]),
        *([] if billing == wanted.get("BillingMode", "PROVISIONED") else [f"billing {billing}"]),
        *([] if keys == wanted.get("KeySchema") else [f"keys {keys}"]),
    ]
    ttl_wanted = wanted.get("TimeToLiveSpecification") or {}
    ttl_on = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == ttl_wanted.get(
        "AttributeName"
    )
    pitr_wanted = bool((wanted.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"))
    pitr_on = (backups.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    not_applied = [
        *([f"TTL on {ttl_wanted.get('AttributeName')}"] if ttl_wanted.get("Enabled") and not ttl_on else []),
        *(["point-in-time recovery"] if pitr_wanted and not pitr_on else []),
    ]
    detail = (
        f"{name}: {table['TableStatus']}, {billing}, {table.get('ItemCount', 0)} item(s), "
        f"TTL {ttl.get('AttributeName', '-')} {ttl.get('TimeToLiveStatus', 'DISABLED')}, "
        f"point-in-time recovery {'on' if pitr_on else 'off'}"
        + (f"; in the template but not applied by moto: {', '.join(not_applied)}" if not_applied else "")
        + (f"; problems: {', '.join(problems)}" if problems else "")
    )
    data = {"table": name, "state_url": f"dynamodb://{name}", "tags": tags, "not_applied_by_moto": not_applied}
    return Check("state_table", not problems, detail, data)
