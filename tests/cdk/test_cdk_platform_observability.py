"""An environment's alarm topic and fleet dashboard (constructs/af_platform_observability.py) on the smallest stack
that holds them, with cdk-nag's AwsSolutions pack; and the topic the example platform stacks build from
agents/platform.yaml."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from constructs.af_platform_observability import AfPlatformObservability, AlarmSubscription
from foundry.manifests.loader import load_tree
from stacks.platform_stack import PlatformStack
from tests.conftest import REPO_ROOT

QUEUE_ARN = "arn:aws:sqs:us-east-1:111111111111:pager-intake"
SUBSCRIBERS = [
    AlarmSubscription(protocol="email", endpoint="oncall@example.com"),
    AlarmSubscription(protocol="https", endpoint="https://events.pager.example/integration/abc"),
    AlarmSubscription(protocol="sqs", endpoint=QUEUE_ARN),
]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Mapping[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("observability")
    app = App(outdir=str(outdir))
    stack = Stack(app, "ObservabilityStack", env=Environment(account="111111111111", region="us-east-1"))
    AfPlatformObservability(
        stack,
        "Observability",
        environment="test",
        topic_name="af-test-alarms",
        dashboard_name="AgentFoundry-test",
        subscribers=SUBSCRIBERS,
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return Template.from_stack(stack).to_json(), outdir


def of_type(template: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def dashboard_body(template: Mapping[str, Any]) -> Any:
    [dashboard] = of_type(template, "AWS::CloudWatch::Dashboard")
    body = dashboard["DashboardBody"]
    text = (
        body
        if isinstance(body, str)
        else "".join(p if isinstance(p, str) else "us-east-1" for p in body["Fn::Join"][1])
    )
    return json.loads(text)


def test_the_environment_has_one_alarm_topic_that_refuses_plain_http(synthesized) -> None:
    template, _ = synthesized
    [topic] = of_type(template, "AWS::SNS::Topic")
    assert topic["TopicName"] == "af-test-alarms"
    [policy] = of_type(template, "AWS::SNS::TopicPolicy")
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_each_subscriber_of_the_settings_subscribes_to_the_topic(synthesized) -> None:
    template, _ = synthesized
    found = sorted((s["Protocol"], json.dumps(s["Endpoint"])) for s in of_type(template, "AWS::SNS::Subscription"))
    assert found == sorted(
        [
            ("email", '"oncall@example.com"'),
            ("https", '"https://events.pager.example/integration/abc"'),
            ("sqs", f'"{QUEUE_ARN}"'),
        ]
    )


def test_the_dashboard_shows_the_fleet_and_its_top_instances_for_requests_errors_latency_and_tokens(
    synthesized,
) -> None:
    template, _ = synthesized
    [dashboard] = of_type(template, "AWS::CloudWatch::Dashboard")
    assert dashboard["DashboardName"] == "AgentFoundry-test"
    widgets = dashboard_body(template)["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    assert titles == [
        "Requests (fleet)",
        "Requests: top 10 instances",
        "Errors (fleet)",
        "Errors: top 10 instances",
        "p95 turn duration (fleet)",
        "p95 turn duration: top 10 instances",
        "Tokens (fleet)",
        "Tokens: top 10 instances",
    ]
    fleet_requests = widgets[0]["properties"]["metrics"][0]
    assert fleet_requests[:4] == ["AgentFoundry", "agentfoundry.requests", "environment", "test"]
    top_latency = widgets[5]["properties"]["metrics"][0][0]["expression"]
    assert top_latency == (
        "SORT(SEARCH('{AgentFoundry,environment,organization,domain,instance} "
        'MetricName="agentfoundry.turn.duration" environment="test"\', \'p95\', 300), MAX, DESC, 10)'
    )
    top_tokens = widgets[7]["properties"]["metrics"][0][0]["expression"]
    assert 'MetricName="gen_ai.client.token.usage"' in top_tokens and "SUM, DESC, 10" in top_tokens


def test_cdk_nag_finds_nothing_unacknowledged(synthesized) -> None:
    _, outdir = synthesized
    reports = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    assert [v for r in reports for v in r["violations"]] == []


def test_the_platform_stack_subscribes_the_subscribers_named_in_platform_yaml() -> None:
    tree = load_tree(REPO_ROOT / "agents")
    settings = tree.platform.model.spec.environments["prod"]
    expected = [(s.protocol, s.endpoint) for s in settings.alarms.subscribers]
    assert expected, "the example prod environment names an on-call subscriber"
    app = App()
    stack = PlatformStack(app, "af-prod-platform", environment="prod", settings=settings, shards=[0])
    template = Template.from_stack(stack).to_json()
    assert of_type(template, "AWS::SNS::Topic")[0]["TopicName"] == "af-prod-alarms"
    assert sorted((s["Protocol"], s["Endpoint"]) for s in of_type(template, "AWS::SNS::Subscription")) == sorted(
        expected
    )
    assert of_type(template, "AWS::CloudWatch::Dashboard")[0]["DashboardName"] == "AgentFoundry-prod"
