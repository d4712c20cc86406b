"""The `AfAgentRuntime` construct on its own: built in a bare `aws_cdk.Stack` from hand-made props (no manifest,
nothing of `foundry`), so each test shows one behaviour of the construct and the values that cause it."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from constructs.af_agent_runtime import CONTAINER_PORT, AfAgentRuntime
from constructs.af_agent_runtime_props import (
    AgentRuntimeProps,
    AlarmThresholds,
    BedrockFoundationModel,
    ImageFromUri,
    RuntimeIdentity,
    RuntimePlatform,
    ShardAttributes,
    TaskSizing,
    TelemetryCollector,
)
from constructs.af_agent_runtime_telemetry import ADOT_COLLECTOR_IMAGE, COLLECTOR_CONFIG_FILE
from instance_contract.mcp_sessions import SESSION_COOKIE, SESSION_IDLE_SECONDS
from tests.conftest import REPO_ROOT

HAIKU = BedrockFoundationModel(region="us-east-1", model_id="anthropic.claude-3-haiku-20240307-v1:0")
SONNET = BedrockFoundationModel(region="eu-west-1", model_id="anthropic.claude-3-5-sonnet-20240620-v1:0")
SIZING = TaskSizing(cpu=512, memory_mib=2048, min_tasks=2, max_tasks=7, cpu_target_percent=55)
COLLECTOR_CONFIG = COLLECTOR_CONFIG_FILE.read_text()
ALARMS = AlarmThresholds(
    target_5xx_percent=2.5, p95_response_seconds=20, unhealthy_hosts=1, error_rate_percent=4, evaluation_minutes=3
)
ALARM_TOPIC_ARN = "arn:aws:sns:us-east-1:111111111111:af-test-alarms"
SECRETS = {
    "ticket-api-token": "agentfoundry/test/acme/retail/dev/ticket-api-token",
    "api-key": "agentfoundry/test/acme/retail/dev/api-key",
}


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    path.write_bytes(b"not a real bundle: the construct only publishes it as an asset")
    return str(path)


ISSUER_AUTH = {"AUTH_ISSUER": "https://login.example.com/oauth2/default", "AUTH_ORG_CLAIM": "org"}
OMIT = object()
"""A change that leaves the prop out altogether."""


def make_props(bundle_path: str, **changes: Any) -> AgentRuntimeProps:
    values: dict[str, Any] = dict(
        identity=RuntimeIdentity(
            organization_id="acme",
            domain_id="retail",
            environment="test",
            instance_id="dev",
            hostname="acme-retail-dev.instances.example.com",
        ),
        platform=RuntimePlatform(
            cluster_name="af-test",
            vpc_id="vpc-0123456789abcdef0",
            availability_zones=["us-east-1a", "us-east-1b"],
            private_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            hosted_zone_id="Z0123456789",
            zone_name="instances.example.com",
            shard=ShardAttributes(
                listener_arn="arn:aws:elasticloadbalancing:us-east-1:111111111111:listener/app/af-test-0/abc/def",
                load_balancer_arn="arn:aws:elasticloadbalancing:us-east-1:111111111111:loadbalancer/app/af-test-0/abc",
                security_group_id="sg-0123456789abcdef0",
                dns_name="af-test-0-123.us-east-1.elb.amazonaws.com",
                canonical_hosted_zone_id="Z35SXDOTRQ7X7K",
            ),
        ),
        image=ImageFromUri(uri="111111111111.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"),
        sizing=SIZING,
        bundle_path=bundle_path,
        bundle_hash="sha256:" + "0" * 64,
        secrets=SECRETS,
        listener_priority=17,
        log_retention_days=30,
        bedrock_models=[HAIKU, SONNET],
        family="af-test-acme-retail-dev",
        region="us-east-1",
        auth_environment=ISSUER_AUTH,
        telemetry=TelemetryCollector(image=ADOT_COLLECTOR_IMAGE, config_yaml=COLLECTOR_CONFIG),
        alarms=ALARMS,
        alarm_topic_arn=ALARM_TOPIC_ARN,
    )
    values.update(changes)
    return AgentRuntimeProps(**{name: value for name, value in values.items() if value is not OMIT})


def build(bundle_path: str, **changes: Any) -> tuple[cdk.Stack, AfAgentRuntime]:
    """A bare stack holding only the construct. Without CDK's CloudFormation validation, which the example app's
    synth tests run on the real stacks: here it would triple the time and check nothing of the construct's own."""
    app = cdk.App(builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "RuntimeTest", env=cdk.Environment(account="111111111111", region="us-east-1"))
    return stack, AfAgentRuntime(stack, "Runtime", props=make_props(bundle_path, **changes))


@pytest.fixture(scope="module")
def built(bundle_file: str) -> tuple[cdk.Stack, AfAgentRuntime, Template]:
    stack, runtime = build(bundle_file)
    return stack, runtime, Template.from_stack(stack)


@pytest.fixture(scope="module")
def template(built: tuple[cdk.Stack, AfAgentRuntime, Template]) -> Template:
    return built[2]


def logical_id(stack: cdk.Stack, construct: Any) -> str:
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return stack.get_logical_id(child)


def grantee(stack: cdk.Stack, id_: str = "Reader") -> iam.Role:
    return iam.Role(stack, id_, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))


def statements_of(template: Template, stack: cdk.Stack, role: iam.Role) -> list[dict[str, Any]]:
    attached = {"Properties": {"Roles": [{"Ref": logical_id(stack, role)}]}}
    policies = template.find_resources("AWS::IAM::Policy", attached)
    return [s for policy in policies.values() for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_the_task_definition_and_service_have_the_given_sizing_and_scaling(template: Template) -> None:
    template.resource_count_is("AWS::ECS::TaskDefinition", 1)
    template.resource_count_is("AWS::ECS::Service", 1)
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {"Cpu": "512", "Memory": "2048", "Family": "af-test-acme-retail-dev", "RequiresCompatibilities": ["FARGATE"]},
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 7}
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {"TargetTrackingScalingPolicyConfiguration": Match.object_like({"TargetValue": 55})},
    )


def test_the_service_sets_no_desired_count_so_autoscaling_owns_it(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ECS::Service", {"DesiredCount": Match.absent(), "LaunchType": "FARGATE", "Cluster": "af-test"}
    )


def test_each_secret_becomes_a_secret_resource_and_a_container_secret(
    built: tuple[cdk.Stack, AfAgentRuntime, Template],
) -> None:
    stack, runtime, template = built
    template.resource_count_is("AWS::SecretsManager::Secret", 2)
    template.has_resource_properties("AWS::SecretsManager::Secret", {"Name": SECRETS["api-key"]})
    container_secrets = [
        {"Name": "SECRET_API_KEY", "ValueFrom": {"Ref": logical_id(stack, runtime.secrets["api-key"])}},
        {
            "Name": "SECRET_TICKET_API_TOKEN",
            "ValueFrom": {"Ref": logical_id(stack, runtime.secrets["ticket-api-token"])},
        },
    ]
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {"ContainerDefinitions": Match.array_with([Match.object_like({"Secrets": container_secrets})])},
    )
    assert "agentfoundry/test" not in json.dumps(template.find_resources("AWS::ECS::TaskDefinition")), (
        "a secret's value or name must not be a container variable"
    )


def test_the_container_carries_the_identity_and_listens_on_its_port(template: Template) -> None:
    environment = [
        {"Name": "ALLOWED_HOSTS", "Value": "acme-retail-dev.instances.example.com"},
        {"Name": "DOMAIN_ID", "Value": "retail"},
        {"Name": "ENVIRONMENT", "Value": "test"},
        {"Name": "INSTANCE_ID", "Value": "dev"},
        {"Name": "ORG_ID", "Value": "acme"},
    ]
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Environment": Match.array_with(environment),
                            "PortMappings": [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}],
                            "ReadonlyRootFilesystem": True,
                        }
                    )
                ]
            )
        },
    )


def container_environment(template: Template) -> dict[str, Any]:
    (task_definition,) = template.find_resources("AWS::ECS::TaskDefinition").values()
    return {e["Name"]: e["Value"] for e in task_definition["Properties"]["ContainerDefinitions"][0]["Environment"]}


def test_the_runtime_gets_the_auth_variables_it_is_given(template: Template) -> None:
    variables = container_environment(template)
    assert {k: v for k, v in variables.items() if k.startswith("AUTH_")} == ISSUER_AUTH


def test_a_runtime_without_an_auth_choice_is_refused_at_synth(bundle_file: str) -> None:
    """No silent AUTH_MODE=none: leaving the prop out is an error, and so is a set that names neither an issuer
    nor mode none (or both)."""
    with pytest.raises(TypeError, match="auth_environment"):
        build(bundle_file, auth_environment=OMIT)
    for chosen, message in (
        ({}, "instance acme/retail/dev: auth_environment chooses no caller authentication"),
        ({"AUTH_ORG_CLAIM": "org"}, "chooses no caller authentication"),
        ({"AUTH_MODE": "jwt"}, "chooses no caller authentication"),
        ({"AUTH_MODE": "none", "AUTH_ISSUER": "https://login.example.com"}, "exclude each other"),
        ({"AUTH_MODE": "off"}, "AUTH_MODE must be 'jwt' or 'none', got 'off'"),
    ):
        with pytest.raises(ValueError, match=message):
            build(bundle_file, auth_environment=chosen)


def test_auth_off_is_possible_when_said_explicitly(bundle_file: str) -> None:
    stack, _ = build(bundle_file, auth_environment={"AUTH_MODE": "none"})
    variables = container_environment(Template.from_stack(stack))
    assert variables["AUTH_MODE"] == "none" and "AUTH_ISSUER" not in variables


def test_the_listener_rule_matches_the_hostname_at_the_given_priority(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Priority": 17,
            "Conditions": Match.array_with(
                [{"Field": "host-header", "HostHeaderConfig": {"Values": ["acme-retail-dev.instances.example.com"]}}]
            ),
        },
    )


def test_the_target_group_sticks_a_client_to_a_task_only_by_the_runtimes_session_cookie(template: Template) -> None:
    """Application-cookie stickiness: the load balancer pins a client only once the runtime set its MCP session
    cookie, for as long as the session may idle; every other request is balanced across the tasks."""
    (group,) = template.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    attributes = {a["Key"]: a["Value"] for a in group["Properties"]["TargetGroupAttributes"]}
    assert attributes["stickiness.enabled"] == "true"
    assert attributes["stickiness.type"] == "app_cookie"
    assert attributes["stickiness.app_cookie.cookie_name"] == SESSION_COOKIE
    assert attributes["stickiness.app_cookie.duration_seconds"] == str(SESSION_IDLE_SECONDS)


def test_the_task_role_may_invoke_exactly_the_given_bedrock_models(
    built: tuple[cdk.Stack, AfAgentRuntime, Template],
) -> None:
    stack, runtime, template = built
    statements = statements_of(template, stack, runtime.task_role)
    (statement,) = [s for s in statements if "bedrock:InvokeModel" in s["Action"]]
    resources = json.dumps(statement["Resource"])
    assert len(statement["Resource"]) == 2
    assert ":bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in resources
    assert ":bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0" in resources


def test_without_bedrock_models_the_task_role_may_invoke_none(bundle_file: str) -> None:
    stack, _ = build(bundle_file, bedrock_models=())
    assert "bedrock:" not in json.dumps(Template.from_stack(stack).find_resources("AWS::IAM::Policy"))


def test_grant_read_state_lets_a_role_read_the_thread_state_table_and_not_write_it(bundle_file: str) -> None:
    stack, runtime = build(bundle_file)
    reader = grantee(stack)
    runtime.grant_read_state(reader)
    template = Template.from_stack(stack)
    statements = statements_of(template, stack, reader)
    actions = {action for s in statements for action in s["Action"]}
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"} <= actions
    assert not [action for action in actions if "Put" in action or "Update" in action or "Delete" in action]
    table_arn = {"Fn::GetAtt": [logical_id(stack, runtime.state.table), "Arn"]}
    assert all(s["Resource"] == [table_arn] for s in statements)


def test_grant_read_secrets_lets_a_role_read_each_secret_of_the_runtime(bundle_file: str) -> None:
    stack, runtime = build(bundle_file)
    reader = grantee(stack)
    runtime.grant_read_secrets(reader)
    statements = statements_of(Template.from_stack(stack), stack, reader)
    read = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    granted = {json.dumps(s["Resource"]) for s in statements if set(read) <= set(s["Action"])}
    for secret in runtime.secrets.values():
        assert json.dumps({"Ref": logical_id(stack, secret)}) in granted


def test_grant_read_secrets_of_a_runtime_without_secrets_grants_nothing(bundle_file: str) -> None:
    stack, runtime = build(bundle_file, secrets={})
    reader = grantee(stack)
    grant = runtime.grant_read_secrets(reader)
    assert statements_of(Template.from_stack(stack), stack, reader) == []
    assert not grant.success


def test_connections_let_another_security_group_reach_the_container_port(bundle_file: str) -> None:
    stack, runtime = build(bundle_file)
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "OtherVpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["us-east-1a"]
    )
    monitor = ec2.SecurityGroup(stack, "Monitor", vpc=vpc)
    runtime.connections.allow_default_port_from(monitor)
    Template.from_stack(stack).has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "IpProtocol": "tcp",
            "FromPort": CONTAINER_PORT,
            "ToPort": CONTAINER_PORT,
            "GroupId": {"Fn::GetAtt": [logical_id(stack, runtime.security_group), "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [logical_id(stack, monitor), "GroupId"]},
        },
    )


def test_the_runtime_is_a_connectable_other_constructs_open_a_way_to(bundle_file: str) -> None:
    stack, runtime = build(bundle_file)
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "OtherVpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["us-east-1a"]
    )
    caller = ec2.SecurityGroup(stack, "Caller", vpc=vpc, allow_all_outbound=False)
    caller.connections.allow_to_default_port(runtime)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "FromPort": CONTAINER_PORT,
            "GroupId": {"Fn::GetAtt": [logical_id(stack, runtime.security_group), "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [logical_id(stack, caller), "GroupId"]},
        },
    )


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_no_module_of_the_constructs_folder_imports_the_control_plane() -> None:
    for path in sorted((REPO_ROOT / "constructs").glob("*.py")):
        assert not [m for m in imported_modules(path) if m.split(".")[0] == "foundry"], path.name
