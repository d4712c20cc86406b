"""Pausing, the off-hours schedule and Fargate Spot on the `AfAgentRuntime` construct (issue 24): real templates
from hand-made props, as in test_cdk_agent_runtime_construct."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from constructs.af_agent_runtime import AfAgentRuntime
from constructs.af_agent_runtime_props import Lifecycle, OffHours
from foundry.fleet.load import load_fleet
from foundry.manifests.schema import DEFAULT_DEPLOY
from stacks.instance_stack import runtime_lifecycle
from tests.cdk.cdk_harness import synth
from tests.cdk.test_cdk_agent_runtime_construct import SIZING, build, bundle_file, logical_id
from tests.cdk.test_cdk_deploy_state import AGENTS, platform_template
from tests.foundry.manifest_edits import edit

__all__ = ["bundle_file"]  # the module-scoped fixture, shared

HOSTNAME = "acme-retail-dev.instances.example.com"
OFF_HOURS = OffHours(
    stop=appscaling.CronOptions(minute="0", hour="20", week_day="MON-FRI"),
    start=appscaling.CronOptions(minute="30", hour="6", week_day="MON-FRI"),
    time_zone="Europe/Berlin",
)


def built(bundle_path: str, lifecycle: Lifecycle) -> tuple[cdk.Stack, AfAgentRuntime, Template]:
    stack, runtime = build(bundle_path, lifecycle=lifecycle)
    return stack, runtime, Template.from_stack(stack)


def stateful_ids(stack: cdk.Stack, runtime: AfAgentRuntime) -> dict[str, str]:
    ids = {
        "state": logical_id(stack, runtime.state.table),
        "logs": logical_id(stack, runtime.log_group),
        "record": logical_id(stack, runtime.record),
        "service": logical_id(stack, runtime.service),
        "rule": logical_id(stack, runtime.listener_rule),
        "target group": logical_id(stack, runtime.target_group),
    }
    ids.update({f"secret {name}": logical_id(stack, secret) for name, secret in runtime.secrets.items()})
    return ids


@pytest.fixture(scope="module")
def paused(bundle_file: str) -> tuple[cdk.Stack, AfAgentRuntime, Template]:
    return built(bundle_file, Lifecycle(paused=True, off_hours=OFF_HOURS))


@pytest.fixture(scope="module")
def active(bundle_file: str) -> tuple[cdk.Stack, AfAgentRuntime, Template]:
    return built(bundle_file, Lifecycle(off_hours=OFF_HOURS))


def test_a_paused_instance_runs_no_task_and_nothing_can_scale_it_up(paused: Any) -> None:
    template: Template = paused[2]
    template.has_resource_properties("AWS::ECS::Service", {"DesiredCount": 0})
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert [(t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"]) for t in targets.values()] == [(0, 0)]
    # No scheduled action could raise the range again (the schedule is kept in the manifest, not in the template).
    assert all("ScheduledActions" not in t["Properties"] for t in targets.values())


def test_a_paused_service_is_detached_from_its_target_group_which_no_rule_forwards_to(paused: Any) -> None:
    """ECS accepts only a target group that a listener forwards to; the target group itself stays (same id)."""
    service = next(iter(paused[2].find_resources("AWS::ECS::Service").values()))["Properties"]
    assert "LoadBalancers" not in service and "HealthCheckGracePeriodSeconds" not in service
    paused[2].resource_count_is("AWS::ElasticLoadBalancingV2::TargetGroup", 1)


def test_a_paused_instance_answers_503_with_a_json_body_on_its_host_rule(paused: Any) -> None:
    template: Template = paused[2]
    rules = template.find_resources("AWS::ElasticLoadBalancingV2::ListenerRule")
    assert len(rules) == 1
    (rule,) = rules.values()
    (action,) = rule["Properties"]["Actions"]
    assert action["Type"] == "fixed-response"
    response = action["FixedResponseConfig"]
    assert response["StatusCode"] == "503"
    assert response["ContentType"] == "application/json"
    body = json.loads(response["MessageBody"])
    assert body == {"error": "instance_paused", "instance": HOSTNAME, "message": body["message"]}
    assert "paused" in body["message"]
    assert len(response["MessageBody"]) <= 1024  # ALB's limit for a fixed response
    hosts = [c for c in rule["Properties"]["Conditions"] if c["Field"] == "host-header"]
    assert hosts[0]["HostHeaderConfig"]["Values"] == [HOSTNAME]


def test_an_active_instance_forwards_to_its_tasks_and_has_no_fixed_desired_count(active: Any) -> None:
    template: Template = active[2]
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {"Actions": [{"Type": "forward", "TargetGroupArn": Match.any_value()}]},
    )
    service = next(iter(template.find_resources("AWS::ECS::Service").values()))
    assert "DesiredCount" not in service["Properties"]
    assert service["Properties"]["LoadBalancers"][0]["ContainerPort"] == 8080
    assert service["Properties"]["HealthCheckGracePeriodSeconds"] == 60


def test_pausing_keeps_the_logical_ids_of_data_secrets_logs_and_the_record(paused: Any, active: Any) -> None:
    assert stateful_ids(*paused[:2]) == stateful_ids(*active[:2])
    paused_template, active_template = paused[2].to_json()["Resources"], active[2].to_json()["Resources"]
    for name in stateful_ids(*paused[:2]).values():
        assert paused_template[name]["Type"] == active_template[name]["Type"]
        if paused_template[name]["Type"] in ("AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::Route53::RecordSet"):
            assert paused_template[name] == active_template[name]


def test_the_off_hours_schedule_adds_stop_and_start_actions_in_its_time_zone(active: Any) -> None:
    template: Template = active[2]
    target = next(iter(template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()))
    actions = {a["ScheduledActionName"]: a for a in target["Properties"]["ScheduledActions"]}
    assert sorted(actions) == ["Start", "Stop"]
    assert actions["Stop"]["Schedule"] == "cron(0 20 ? * MON-FRI *)"
    assert actions["Stop"]["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 0}
    assert actions["Start"]["Schedule"] == "cron(30 6 ? * MON-FRI *)"
    assert actions["Start"]["ScalableTargetAction"] == {
        "MinCapacity": SIZING.min_tasks,
        "MaxCapacity": SIZING.max_tasks,
    }
    assert {a["Timezone"] for a in actions.values()} == {"Europe/Berlin"}


def test_spot_runs_every_task_on_fargate_spot(bundle_file: str) -> None:
    template = built(bundle_file, Lifecycle(capacity="spot"))[2]
    service = next(iter(template.find_resources("AWS::ECS::Service").values()))["Properties"]
    assert service["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    assert "LaunchType" not in service


def test_spot_with_fallback_keeps_the_first_task_on_demand(bundle_file: str) -> None:
    template = built(bundle_file, Lifecycle(capacity="spot_with_fallback"))[2]
    service = next(iter(template.find_resources("AWS::ECS::Service").values()))["Properties"]
    assert service["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
        {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
    ]


def test_on_demand_is_the_fargate_launch_type(active: Any) -> None:
    service = next(iter(active[2].find_resources("AWS::ECS::Service").values()))["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert "CapacityProviderStrategy" not in service


def test_a_spot_environment_s_cluster_has_the_fargate_capacity_providers_and_prod_s_has_none() -> None:
    platform_template("dev").has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": ["FARGATE", "FARGATE_SPOT"]},
    )
    platform_template("prod").resource_count_is("AWS::ECS::ClusterCapacityProviderAssociations", 0)


def test_the_instance_stack_passes_state_schedule_and_capacity_to_the_construct() -> None:
    tree = load_fleet(AGENTS).tree
    dev, prod = (tree.platform.model.spec.environments[env] for env in ("dev", "prod"))
    schedule = {"stop": "15 19 * * MON-FRI", "start": "45 6 1 * *", "time_zone": "America/New_York"}
    deploy = DEFAULT_DEPLOY.model_validate({**DEFAULT_DEPLOY.model_dump(), "state": "paused", "schedule": schedule})
    lifecycle = runtime_lifecycle(deploy, dev)
    assert (lifecycle.paused, lifecycle.capacity) == (True, "spot")
    assert lifecycle.off_hours is not None and lifecycle.off_hours.time_zone == "America/New_York"
    stop, start = lifecycle.off_hours.stop, lifecycle.off_hours.start
    assert (stop.minute, stop.hour, stop.day, stop.week_day) == ("15", "19", None, "MON-FRI")
    assert (start.minute, start.hour, start.day, start.week_day) == ("45", "6", "1", None)
    assert runtime_lifecycle(DEFAULT_DEPLOY, prod) == Lifecycle()


def test_a_paused_instance_stack_of_the_example_app_passes_cdk_nag_cfn_lint_and_keeps_its_deployed_ids(
    agents_copy: Path, tmp_path: Path
) -> None:
    """The real app (cdk-nag as in every synth, CDK's CloudFormation validation) with prod's acme instance paused:
    its stack differs from the active one only in the service, its scaling range, the rule's action and the
    bundle, never in a stateful resource."""
    stack = "af-prod-acme-retail-us-east-1"
    active = synth(tmp_path / "active" / "cdk.out", agents_dir=agents_copy, validation=True, environment="prod")
    edit(
        agents_copy / "manifests/manifest.instance-template.yaml",
        lambda doc: doc["spec"]["deploy"]["overrides"].append(
            {"environment": "prod", "organization_id": "acme", "state": "paused"}
        ),
    )
    paused = synth(tmp_path / "paused" / "cdk.out", agents_dir=agents_copy, validation=True, environment="prod")
    reports = json.loads((paused.outdir / "validation-report.json").read_text())["pluginReports"]
    assert {r["pluginName"]: r["violations"] for r in reports if r["violations"]} == {}
    text = (paused.outdir / f"{stack}.template.json").read_text()
    assert [str(m) for m in lint(text, config=ManualArgs(regions=["us-east-1"])) if m.rule.id.startswith("E")] == []
    before, after = active.templates[stack]["Resources"], paused.templates[stack]["Resources"]
    changed = sorted({*before, *after} - {k for k in before.keys() & after.keys() if before[k] == after[k]})
    kinds = {(before.get(k) or after[k])["Type"] for k in changed}
    assert kinds <= {
        "AWS::ECS::Service",
        "AWS::ECS::TaskDefinition",  # the bundle (its manifest says paused) has a new hash, and so has
        "AWS::IAM::Policy",  # the task role's read of that bundle object
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
    }, changed
    for kept in ("RuntimeLogs040130CF", "RoutingAlias1109FB39", "RoutingTargetGroup2EF40F3D"):
        assert before[kept] == after[kept]
    tables = [k for k, v in after.items() if v["Type"] == "AWS::DynamoDB::Table"]
    assert tables and all(before[k] == after[k] for k in tables)
