"""Where moto differs from AWS for our templates (see foundry/local/moto.py): its CloudFormation lacks
`AWS::SecretsManager::Secret` and `AWS::CloudWatch::Alarm` (an instance's alarms, which the rollout gate reads) and
a target group's attributes (`TargetGroupFullName`, the alarms' dimension); it creates an `AWS::ECS::Service`
without `DesiredCount` with 0 tasks where CloudFormation uses 1; and its GetMetricData answers no percentile
statistic (p95), which `foundry.get_instance_status` reads; it keeps a template's `AWS::KMS::Key` policy as an
object, not text, so every DescribeKey of the key fails; and it could not update a deployed stack: UpdateStack's
`UsePreviousValue` failed for a parameter that had its default, a task definition's new revision had no image,
and the service kept the old revision. A module of its own: moto files every model class under
the second part of its module name, which a `python -m` entry point lacks."""

from __future__ import annotations

import json
import math
import secrets
from typing import Any, cast

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap, get_references_from_template, parse_and_update_resource
from moto.cloudwatch.models import (
    Dimension,
    Metric,
    MetricDataQuery,
    MetricDatum,
    MetricStat,
    Statistics,
    cloudwatch_backends,
)
from moto.core.common_models import CloudFormationModel
from moto.ecs.models import Service, TaskDefinition, ecs_backends
from moto.elbv2.models import FakeTargetGroup
from moto.kms.models import Key
from moto.secretsmanager.models import secretsmanager_backends

ECS_DEFAULT_DESIRED_COUNT = 1
"""AWS::ECS::Service: "For new services, if a desired count is not specified, a default value of 1 is used"."""


class CloudFormationSecret(CloudFormationModel):
    def __init__(self, *, arn: str, name: str, account_id: str, region_name: str) -> None:
        self.arn = arn
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        """A secret's Ref is its ARN."""
        return self.arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> CloudFormationSecret:
        properties = cloudformation_json.get("Properties", {})
        name = properties.get("Name") or resource_name
        created = secretsmanager_backends[account_id][region_name].create_secret(
            name=name,
            secret_string=properties.get("SecretString") or secrets.token_urlsafe(24),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(arn=json.loads(created)["ARN"], name=name, account_id=account_id, region_name=region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        name = cloudformation_json.get("Properties", {}).get("Name") or resource_name
        secretsmanager_backends[account_id][region_name].delete_secret(
            secret_id=name, recovery_window_in_days=None, force_delete_without_recovery=True
        )


_create_service = Service.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_service_with_cloudformation_default(
    cls: type[Service], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Service:
    properties = cloudformation_json["Properties"]
    if properties.get("DesiredCount") is None:
        cloudformation_json = {
            **cloudformation_json,
            "Properties": {**properties, "DesiredCount": ECS_DEFAULT_DESIRED_COUNT},
        }
    created: Service = _create_service(cls, resource_name, cloudformation_json, *args, **kwargs)
    return created


Service.create_from_cloudformation_json = classmethod(_create_service_with_cloudformation_default)  # type: ignore[method-assign,assignment]


def _update_task_definition_as_a_new_revision(
    cls: type[TaskDefinition],
    original_resource: TaskDefinition,
    new_resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> TaskDefinition:
    """AWS::ECS::TaskDefinition: a change registers a new revision (CloudFormation replaces the resource), made as
    moto makes the first one. moto's own update registered the template's container definitions without the key
    mapping its create applies (`Image` -> `image`), so the new revision had no image."""
    ecs_backends[account_id][region_name].deregister_task_definition(original_resource.arn)
    created: TaskDefinition = TaskDefinition.create_from_cloudformation_json(
        new_resource_name, cloudformation_json, account_id, region_name
    )
    return created


TaskDefinition.update_from_cloudformation_json = classmethod(_update_task_definition_as_a_new_revision)  # type: ignore[method-assign,assignment]


class CloudFormationAlarm(CloudFormationModel):
    """A metric alarm made by CloudFormation, created in moto's own CloudWatch (so DescribeAlarms and SetAlarmState
    see it). Its Ref is its name, as in AWS."""

    def __init__(self, *, name: str, arn: str) -> None:
        self.name = name
        self.arn = arn

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> CloudFormationAlarm:
        properties = cloudformation_json.get("Properties", {})
        name = properties.get("AlarmName") or resource_name
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            metric_data_queries=[_query(q) for q in properties.get("Metrics", [])] or None,
            comparison_operator=properties.get("ComparisonOperator"),
            evaluation_periods=int(properties.get("EvaluationPeriods", 1)),
            datapoints_to_alarm=properties.get("DatapointsToAlarm"),
            period=properties.get("Period"),
            threshold=float(properties.get("Threshold", 0)),
            statistic=properties.get("Statistic"),
            extended_statistic=properties.get("ExtendedStatistic"),
            description=properties.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in properties.get("Dimensions", [])],
            alarm_actions=list(properties.get("AlarmActions", [])),
            ok_actions=list(properties.get("OKActions", [])),
            insufficient_data_actions=list(properties.get("InsufficientDataActions", [])),
            unit=properties.get("Unit"),
            actions_enabled=properties.get("ActionsEnabled", True),
            treat_missing_data=properties.get("TreatMissingData"),
        )
        return cls(name=name, arn=alarm.alarm_arn)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CloudFormationAlarm,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> CloudFormationAlarm:
        cls.delete_from_cloudformation_json(original_resource.name, cloudformation_json, account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        name = cloudformation_json.get("Properties", {}).get("AlarmName") or resource_name
        cloudwatch_backends[account_id][region_name].delete_alarms([name])


def _query(query: dict[str, Any]) -> MetricDataQuery:
    stat = query.get("MetricStat")
    metric_stat = None
    if stat is not None:
        metric = stat["Metric"]
        metric_stat = MetricStat(
            metric=Metric(
                metric_name=metric["MetricName"],
                namespace=metric["Namespace"],
                dimensions=[Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])],
            ),
            period=stat.get("Period"),
            stat=stat.get("Stat"),
            unit=stat.get("Unit"),
        )
    return MetricDataQuery(
        query_id=query["Id"],
        label=cast(str, query.get("Label")),
        period=cast(str, query.get("Period")),
        return_data=cast(str, query.get("ReturnData", True)),
        expression=query.get("Expression"),
        metric_stat=metric_stat,
    )


_statistic = Statistics.get_statistics_for_type


def _statistic_with_percentiles(self: Statistics, stat: str) -> Any:
    """pNN over the single values put in the period (nearest rank), as CloudWatch answers for raw values."""
    if len(stat) > 1 and stat[0] == "p" and stat[1:].replace(".", "", 1).isdigit():
        values = sorted(m.value for m in self.metric_data if isinstance(m, MetricDatum))
        if not values:
            return None
        rank = max(1, math.ceil(float(stat[1:]) / 100 * len(values)))
        return values[min(rank, len(values)) - 1]
    return _statistic(self, stat)


Statistics.get_statistics_for_type = _statistic_with_percentiles  # type: ignore[method-assign]


def _target_group_attribute(self: FakeTargetGroup, attribute_name: str) -> Any:
    """AWS::ElasticLoadBalancingV2::TargetGroup's Fn::GetAtt values (moto's target group has none)."""
    full_name = self.arn.split(":", 5)[5]  # targetgroup/NAME/ID
    values = {
        "TargetGroupFullName": full_name,
        "TargetGroupName": self.name,
        "TargetGroupArn": self.arn,
        "LoadBalancerArns": list(self.load_balancer_arns),
    }
    if attribute_name not in values:
        raise NotImplementedError(f"Fn::GetAtt {attribute_name} of a target group is not modelled")
    return values[attribute_name]


FakeTargetGroup.get_cfn_attribute = _target_group_attribute  # type: ignore[attr-defined]


_create_key = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_key_with_policy_text(
    cls: type[Key], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Key:
    """AWS::KMS::Key's KeyPolicy is a JSON object in a template; KMS keeps a policy as text (moto keeps the object,
    and then fails every DescribeKey of the key)."""
    properties = cloudformation_json["Properties"]
    if isinstance(properties.get("KeyPolicy"), dict):
        cloudformation_json = {
            **cloudformation_json,
            "Properties": {**properties, "KeyPolicy": json.dumps(properties["KeyPolicy"])},
        }
    created: Key = _create_key(cls, resource_name, cloudformation_json, *args, **kwargs)
    return created


Key.create_from_cloudformation_json = classmethod(_create_key_with_policy_text)  # type: ignore[method-assign,assignment]


_resolve_update_parameters = CloudFormationBackend._resolve_update_parameters


def _resolve_update_parameters_as_aws(
    self: CloudFormationBackend, instance: Any, incoming_params: list[dict[str, Any]]
) -> dict[str, Any]:
    """UpdateStack's `UsePreviousValue`: the value the stack used. The CDK CLI passes it for every parameter of a
    deployed stack that it does not set, the platform's SSM parameter names among them, which were never given a
    value: they took their template's `Default`. moto looked for an explicit earlier value only, and failed every
    update of a stack deployed with defaults (a KeyError, answered as a 500). Such a parameter is left out here, so
    it takes its `Default` again, as before (our stacks never change a parameter's default), and moto does not see
    it as changed and replace every resource that refers to it."""
    if not isinstance(instance, Stack):
        return cast(dict[str, Any], _resolve_update_parameters(self, instance, incoming_params))
    declared = instance.template_dict.get("Parameters", {})
    resolved: dict[str, Any] = {}
    for parameter in incoming_params:
        key = parameter["ParameterKey"]
        if not parameter.get("UsePreviousValue", False):
            if "ParameterValue" in parameter:
                resolved[key] = parameter["ParameterValue"]
        elif key in instance.parameters:
            resolved[key] = instance.parameters[key]
        elif "Default" not in declared.get(key, {}):
            raise ValidationError(
                message=f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a "
                "parameter key not in the previous template"
            )
    return resolved


CloudFormationBackend._resolve_update_parameters = _resolve_update_parameters_as_aws  # type: ignore[method-assign]


_update_resource_map = ResourceMap.update


def _physical_id(resource: Any) -> str | None:
    found = getattr(resource, "physical_resource_id", None) if isinstance(resource, CloudFormationModel) else None
    return str(found) if found is not None else None


def _update_with_dependents(self: ResourceMap, template: dict[str, Any], parameters: Any = None) -> None:
    """A stack update, then every resource whose `Ref` names a resource the update replaced (a new physical id:
    a task definition's new revision). CloudFormation updates such a resource, since the value it refers to
    changed; moto updates only resources whose own JSON changed, so after a new runtime image the ECS service kept
    running the old task definition. A dependent moto cannot update (no update handler) is left as it was."""
    parsed: dict[str, Any] = self._parsed_resources
    before = {name: _physical_id(resource) for name, resource in parsed.items()}
    _update_resource_map(self, template, parameters)
    replaced = {name for name, old in before.items() if old is not None and _physical_id(parsed.get(name)) != old}
    updated: set[str] = set()
    while replaced:
        newly_replaced: set[str] = set()
        for name, resource_json in template["Resources"].items():
            if name in updated or name in replaced or not replaced & set(get_references_from_template(resource_json)):
                continue
            old_id = _physical_id(parsed.get(name))
            changed = parse_and_update_resource(
                name, resource_json, self, account_id=self._account_id, region_name=self._region_name
            )
            updated.add(name)
            if changed is None:
                continue
            parsed[name] = changed
            if old_id is not None and _physical_id(changed) != old_id:
                newly_replaced.add(name)
        replaced = newly_replaced


ResourceMap.update = _update_with_dependents  # type: ignore[method-assign]
