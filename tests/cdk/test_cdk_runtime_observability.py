"""What an instance shows of itself in AWS (issue 22): the OpenTelemetry collector beside the runtime and its
permissions, the instance's CloudWatch alarms, and the ECS deployment alarms. The construct on its own, from
hand-made props (tests/cdk/test_cdk_agent_runtime_construct.py builds it)."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Match, Template

from constructs.af_agent_runtime import AfAgentRuntime
from constructs.af_agent_runtime_props import ALARM_KINDS
from constructs.af_agent_runtime_telemetry import ADOT_COLLECTOR_IMAGE, COLLECTOR_CONFIG_FILE
from tests.cdk.test_cdk_agent_runtime_construct import ALARM_TOPIC_ARN, ALARMS, build, logical_id

FAMILY = "af-test-acme-retail-dev"
DIMENSIONS = [
    {"Name": "domain", "Value": "retail"},
    {"Name": "environment", "Value": "test"},
    {"Name": "instance", "Value": "dev"},
    {"Name": "organization", "Value": "acme"},
]


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    path.write_bytes(b"not a real bundle")
    return str(path)


@pytest.fixture(scope="module")
def built(bundle_file: str) -> tuple[cdk.Stack, AfAgentRuntime, dict[str, Any]]:
    stack, runtime = build(bundle_file)
    return stack, runtime, dict(Template.from_stack(stack).to_json())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [task] = resources(template, "AWS::ECS::TaskDefinition").values()
    return {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}


def variables(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def statements(template: dict[str, Any], stack: cdk.Stack, runtime: AfAgentRuntime) -> list[dict[str, Any]]:
    role = {"Ref": logical_id(stack, runtime.task_role)}
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def alarms_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def test_each_task_runs_the_pinned_collector_as_a_non_essential_container(built) -> None:
    _, _, template = built
    found = containers(template)
    assert sorted(found) == ["otel-collector", "runtime"]
    collector, runtime = found["otel-collector"], found["runtime"]
    assert collector["Image"] == ADOT_COLLECTOR_IMAGE and ADOT_COLLECTOR_IMAGE.rsplit(":", 1)[1].startswith("v")
    assert collector["Essential"] is False, "a collector crash must never stop the runtime"
    assert runtime["Essential"] is True
    assert collector["Memory"] == 128 and collector["ReadonlyRootFilesystem"] is True
    assert "DependsOn" not in runtime, "the runtime must not wait for the collector"


def test_the_collector_gets_the_repository_config_and_the_instance_identity(built) -> None:
    _, _, template = built
    collector = variables(containers(template)["otel-collector"])
    assert collector["AOT_CONFIG_CONTENT"] == COLLECTOR_CONFIG_FILE.read_text()
    assert collector["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"environment=test,organization=acme,domain=retail,instance=dev,aws.ecs.task.family={FAMILY}"
    )
    assert collector["AWS_REGION"] == "us-east-1"


def test_the_runtime_exports_otlp_over_http_protobuf_to_the_collector_on_localhost(built) -> None:
    _, _, template = built
    runtime = variables(containers(template)["runtime"])
    assert runtime["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    assert runtime["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert runtime["OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"] == "base2_exponential_bucket_histogram"


def test_the_collector_config_takes_otlp_on_localhost_and_sends_traces_to_xray_and_metrics_as_emf() -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG_FILE.read_text())
    assert {p: config["receivers"]["otlp"]["protocols"][p]["endpoint"] for p in ("http", "grpc")} == {
        "http": "127.0.0.1:4318",
        "grpc": "127.0.0.1:4317",
    }
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["awsxray"] and pipelines["metrics"]["exporters"] == ["awsemf"]
    for pipeline in pipelines.values():
        assert pipeline["processors"][0] == "memory_limiter", "the memory limiter must come first"
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), f"{part} used but not defined"
    emf = config["exporters"]["awsemf"]
    assert emf["namespace"] == "AgentFoundry"
    assert emf["log_group_name"] == "/agentfoundry/metrics/{TaskDefinitionFamily}"
    [declaration] = emf["metric_declarations"]
    assert declaration["dimensions"] == [["environment", "organization", "domain", "instance"], ["environment"]]
    assert emf["resource_to_telemetry_conversion"] == {"enabled": True}
    assert config["processors"]["resourcedetection/instance"] == {"detectors": ["env"], "override": True}


def test_the_task_role_may_write_xray_traces_and_only_the_metrics_log_group(built) -> None:
    stack, runtime, template = built
    found = statements(template, stack, runtime)
    xray = [s for s in found if "xray:" in json.dumps(s["Action"])]
    assert xray == [
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Effect": "Allow", "Resource": "*"}
    ]
    metrics_group = logical_id(stack, runtime.collector.metrics_log_group)
    logs = [s for s in found if "logs:" in json.dumps(s["Action"])]
    assert logs == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [metrics_group, "Arn"]},
        }
    ]
    actions = json.dumps([s["Action"] for s in found])
    assert "cloudwatch:" not in actions and "logs:*" not in actions and "xray:*" not in actions
    group = template["Resources"][metrics_group]
    assert group["Properties"]["LogGroupName"] == f"/agentfoundry/metrics/{FAMILY}"


def test_the_instance_has_its_four_alarms_named_after_its_stack_with_the_given_thresholds(built) -> None:
    _, _, template = built
    alarms = alarms_by_name(template)
    assert sorted(alarms) == sorted(f"{FAMILY}-{kind}" for kind in ALARM_KINDS)
    five_xx = alarms[f"{FAMILY}-target-5xx-rate"]
    assert five_xx["Threshold"] == ALARMS.target_5xx_percent
    assert five_xx["EvaluationPeriods"] == five_xx["DatapointsToAlarm"] == ALARMS.evaluation_minutes
    assert {m["Id"]: m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in five_xx["Metrics"]} == {
        "expr_1": None,
        "errors": "HTTPCode_Target_5XX_Count",
        "requests": "RequestCount",
    }
    p95 = alarms[f"{FAMILY}-target-p95-response-time"]
    assert (p95["MetricName"], p95["ExtendedStatistic"], p95["Threshold"]) == ("TargetResponseTime", "p95", 20)
    assert p95["Dimensions"][0] == {"Name": "LoadBalancer", "Value": "app/af-test-0/abc"}
    unhealthy = alarms[f"{FAMILY}-unhealthy-hosts"]
    assert (unhealthy["MetricName"], unhealthy["ComparisonOperator"]) == (
        "UnHealthyHostCount",
        "GreaterThanOrEqualToThreshold",
    )
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "notBreaching", "no traffic is no breach"


def test_the_runtime_error_rate_alarm_divides_errors_by_requests_of_this_instance(built) -> None:
    _, _, template = built
    alarm = alarms_by_name(template)[f"{FAMILY}-runtime-error-rate"]
    assert alarm["Threshold"] == ALARMS.error_rate_percent
    queries = {m["Id"]: m for m in alarm["Metrics"]}
    assert queries["expr_1"]["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    for query_id, name in (("errors", "agentfoundry.errors"), ("requests", "agentfoundry.requests")):
        assert queries[query_id]["MetricStat"] == {
            "Metric": {"Namespace": "AgentFoundry", "MetricName": name, "Dimensions": DIMENSIONS},
            "Period": 60,
            "Stat": "Sum",
        }


def test_every_alarm_notifies_the_environment_topic_on_alarm_and_on_ok(built) -> None:
    _, _, template = built
    for alarm in alarms_by_name(template).values():
        assert alarm["AlarmActions"] == [ALARM_TOPIC_ARN] and alarm["OKActions"] == [ALARM_TOPIC_ARN]


def test_without_a_topic_the_alarms_notify_no_one(bundle_file: str) -> None:
    stack, _ = build(bundle_file, alarm_topic_arn=None)
    Template.from_stack(stack).has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmActions": Match.absent(), "OKActions": Match.absent()}
    )


def test_the_service_rolls_a_deployment_back_when_an_error_alarm_fires(built) -> None:
    stack, runtime, template = built
    [service] = resources(template, "AWS::ECS::Service").values()
    assert service["Properties"]["DeploymentConfiguration"]["Alarms"] == {
        "AlarmNames": [f"{FAMILY}-target-5xx-rate", f"{FAMILY}-runtime-error-rate"],
        "Enable": True,
        "Rollback": True,
    }
    alarm_ids = {logical_id(stack, runtime.alarms[kind]) for kind in ("target-5xx-rate", "runtime-error-rate")}
    assert alarm_ids <= set(service["DependsOn"]), "the service is created after the alarms it watches"
    assert service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
