"""The example fleet in agents/ synthesized in-process: what each InstanceStack and platform stack contains."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from constructs.af_agent_runtime import FORWARDED_PATHS
from constructs.af_platform_network import availability_zones
from foundry.fleet import placement
from foundry.fleet.load import load_fleet
from foundry.manifests import naming
from foundry.manifests.problems import ManifestError
from foundry.manifests.schema import InstanceKey
from stacks import instance_stack
from tests.cdk.cdk_harness import PREBUILT_IMAGE, Synthesized, synth

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"
EXAMPLE = load_fleet(REPO_AGENTS)
INSTANCE_STACKS = sorted(i.manifest.spec.stack_name for i in EXAMPLE.instances)
BY_STACK = {i.manifest.spec.stack_name: i for i in EXAMPLE.instances}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(tmp_path_factory.mktemp("example") / "cdk.out")


def env_vars(app: Synthesized, stack: str) -> dict[str, Any]:
    container = app.only(stack, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"][0]
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_every_environment_gets_a_platform_stack_and_every_instance_its_own_stack(app: Synthesized) -> None:
    assert sorted(app.stacks.platforms) == ["af-dev-platform", "af-prod-platform", "af-staging-platform"]
    assert sorted(app.stacks.instances) == INSTANCE_STACKS
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        assert name == naming.instance_stack_name(instance.environment, instance.key)


def test_stacks_deploy_to_the_account_and_region_of_their_environment(app: Synthesized) -> None:
    settings = EXAMPLE.tree.platform.model.spec.environments
    for name, stack in app.stacks.instances.items():
        env = settings[BY_STACK[name].environment]
        assert app.manifest["artifacts"][name]["environment"] == f"aws://{env.account}/{env.region}"
        assert stack.region == env.region


def test_synth_needs_no_context_look_up(app: Synthesized) -> None:
    """A look-up needs AWS credentials; `cdk synth` must work offline."""
    assert "missing" not in app.manifest


def test_an_instance_stack_depends_on_its_platform_stack(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        platform = naming.platform_stack_name(BY_STACK[name].environment)
        assert platform in app.manifest["artifacts"][name]["dependencies"]


def test_no_stack_imports_another_stacks_exports(app: Synthesized) -> None:
    for name, template in app.templates.items():
        text = json.dumps(template)
        assert "Fn::ImportValue" not in text, name
        assert "Export" not in json.dumps(template.get("Outputs", {})), name


def test_every_manifest_secret_becomes_a_secret_under_the_instance_path_with_no_value(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        secrets = app.resources(name, "AWS::SecretsManager::Secret")
        expected = {naming.secret_name(instance.environment, instance.key, s) for s in instance.manifest.spec.secrets}
        assert {s["Properties"]["Name"] for s in secrets.values()} == expected
        for secret in secrets.values():
            assert "SecretString" not in secret["Properties"]
            assert "GenerateSecretString" in secret["Properties"]


DEPLOYED = json.loads((Path(__file__).parent / "deployed_logical_ids.json").read_text())["stacks"]


@pytest.mark.parametrize("stack", sorted(DEPLOYED))
def test_every_deployed_resource_keeps_its_logical_id_and_type(app: Synthesized, stack: str) -> None:
    """A changed logical id makes CloudFormation create a new resource and delete the old one: a secret would lose
    its value, a second listener rule or record would collide. The ids are those of main 9f1b9c6's templates."""
    resources = app.templates[stack]["Resources"]
    kept = {lid: resources[lid]["Type"] for lid in DEPLOYED[stack] if lid in resources}
    assert kept == DEPLOYED[stack]


def test_secrets_and_the_service_keep_their_logical_ids(app: Synthesized) -> None:
    """Renaming these replaces a live secret (losing its value) or the service: they are pinned on purpose."""
    for name in INSTANCE_STACKS:
        expected_secrets = ["SecretsTicketApiTokenD85066F6"] if BY_STACK[name].manifest.spec.secrets else []
        assert sorted(app.resources(name, "AWS::SecretsManager::Secret")) == expected_secrets
        assert list(app.resources(name, "AWS::ECS::Service")) == ["RuntimeService408BD8AA"]
        assert list(app.resources(name, "AWS::ECS::TaskDefinition")) == ["RuntimeTaskDefinitionBB2F76AB"]
        assert list(app.resources(name, "AWS::ElasticLoadBalancingV2::TargetGroup")) == ["RoutingTargetGroup2EF40F3D"]


def test_an_instance_construct_moved_in_the_tree_fails_the_synth_instead_of_losing_its_deployed_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed ids are kept by renaming CDK's ids of the `Instance` construct's resources; CDK refuses a rename
    whose id no longer exists, so moving the construct cannot silently give a live resource a new id."""
    monkeypatch.setattr(instance_stack, "INSTANCE_ID", "Moved")
    with pytest.raises(RuntimeError, match="InstanceService247DE1FC"):
        synth(tmp_path / "cdk.out", instance="default-org/default-domain/dev", runtimeImage=PREBUILT_IMAGE)


def test_the_task_runs_the_runtime_image_asset_with_the_contract_environment(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        key, spec = instance.key, instance.manifest.spec
        container = app.only(name, "AWS::ECS::TaskDefinition")["Properties"]["ContainerDefinitions"][0]
        assert "container-assets" in json.dumps(container["Image"])
        variables = env_vars(app, name)
        assert variables["ORG_ID"] == key.organization_id
        assert variables["DOMAIN_ID"] == key.domain_id
        assert variables["INSTANCE_ID"] == key.instance_id
        assert variables["ENVIRONMENT"] == instance.environment
        assert variables["PORT"] == "8080"
        assert variables["ALLOWED_HOSTS"] == spec.hostname
        assert variables["AWS_REGION"] == "us-east-1"
        assert variables["BUNDLE_HASH"].startswith("sha256:")
        assert "s3://" in json.dumps(variables["BUNDLE_URI"])
        assert not any(k.startswith("SECRET_") for k in variables), "secret values never travel as plain variables"
        injected = {s["Name"] for s in container.get("Secrets", [])}
        assert injected == {"SECRET_" + s.upper().replace("-", "_") for s in spec.secrets}
        options = container["LogConfiguration"]["Options"]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        assert options["awslogs-group"] == {"Ref": "RuntimeLogs040130CF"}


def test_the_task_is_sized_and_scaled_as_its_manifest_says(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        deploy = BY_STACK[name].manifest.spec.deploy
        task = app.only(name, "AWS::ECS::TaskDefinition")["Properties"]
        assert (task["Cpu"], task["Memory"]) == (str(deploy.cpu), str(deploy.memory))
        assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
        target = app.only(name, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
        assert (target["MinCapacity"], target["MaxCapacity"]) == (deploy.min_tasks, deploy.max_tasks)
        policy = app.only(name, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == deploy.cpu_target_percent
        assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_the_service_runs_privately_with_circuit_breaker_rollback_and_a_grace_period(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        service = app.only(name, "AWS::ECS::Service")
        props = service["Properties"]
        assert props["Cluster"] == f"af-{BY_STACK[name].environment}"
        settings = EXAMPLE.tree.platform.model.spec.environments[BY_STACK[name].environment]
        if settings.capacity == "on_demand":
            assert props["LaunchType"] == "FARGATE"
        else:  # Fargate Spot (dev): a capacity provider strategy instead of the launch type
            assert "LaunchType" not in props and props["CapacityProviderStrategy"]
        network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        zones = availability_zones(settings.vpc, settings.region)
        assert len(zones) == 2
        assert network["Subnets"] == [{"Fn::Select": [i, {"Ref": "PrivateSubnetIds"}]} for i in range(len(zones))]
        deployment = props["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (100, 200)
        assert props["HealthCheckGracePeriodSeconds"] == 60
        assert props["LoadBalancers"] == [
            {"ContainerName": "runtime", "ContainerPort": 8080, "TargetGroupArn": {"Ref": "RoutingTargetGroup2EF40F3D"}}
        ]
        assert "RoutingListenerRuleA90D739E" in service["DependsOn"]


def test_the_hostname_routes_through_its_shard_listener_at_its_placed_priority(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        slot = placement.load_placement(REPO_AGENTS, instance.environment)[instance.key.selector]
        rule = app.only(name, "AWS::ElasticLoadBalancingV2::ListenerRule")["Properties"]
        assert rule["Priority"] == slot.priority
        assert rule["ListenerArn"] == {"Ref": "ShardListenerArn"}
        assert rule["Conditions"] == [
            {"Field": "host-header", "HostHeaderConfig": {"Values": [instance.manifest.spec.hostname]}},
            {"Field": "path-pattern", "PathPatternConfig": {"Values": list(FORWARDED_PATHS)}},
        ]
        parameters = app.templates[name]["Parameters"]
        assert parameters["ShardListenerArn"]["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameters["ShardListenerArn"]["Default"] == (
            f"/agentfoundry/{instance.environment}/platform/shards/{slot.shard}/listener-arn"
        )
        group = app.only(name, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
        assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/readyz", 8080, "ip")
        record = app.only(name, "AWS::Route53::RecordSet")["Properties"]
        assert record["Name"] == instance.manifest.spec.hostname + "."
        assert record["Type"] == "A"
        assert record["AliasTarget"]["DNSName"] == {"Fn::Join": ["", ["dualstack.", {"Ref": "ShardDnsName"}]]}
        assert record["HostedZoneId"] == {"Ref": "HostedZoneId"}


def test_only_the_shard_load_balancer_reaches_the_tasks_on_the_container_port(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        (group_id,) = app.resources(name, "AWS::EC2::SecurityGroup")
        assert "SecurityGroupIngress" not in app.resources(name, "AWS::EC2::SecurityGroup")[group_id]["Properties"]
        ingress = [r["Properties"] for r in app.resources(name, "AWS::EC2::SecurityGroupIngress").values()]
        assert ingress == [
            {
                "Description": "Load balancer to target",
                "FromPort": 8080,
                "GroupId": {"Fn::GetAtt": [group_id, "GroupId"]},
                "IpProtocol": "tcp",
                "SourceSecurityGroupId": {"Ref": "ShardSecurityGroupId"},
                "ToPort": 8080,
            }
        ]


def test_logs_go_to_a_log_group_of_the_instance_with_the_environment_retention(app: Synthesized) -> None:
    settings = EXAMPLE.tree.platform.model.spec.environments
    for name in INSTANCE_STACKS:
        groups = [g["Properties"] for g in app.resources(name, "AWS::Logs::LogGroup").values()]
        assert len(groups) == 2, "the containers' logs and the collector's metrics (EMF) log group"
        for logs in groups:
            assert logs["RetentionInDays"] == settings[BY_STACK[name].environment].log_retention_days


def test_instance_stacks_carry_the_identity_and_bundle_hash_tags(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        tags = app.stack_tags(name)
        assert tags["agentfoundry:organization"] == instance.key.organization_id
        assert tags["agentfoundry:domain"] == instance.key.domain_id
        assert tags["agentfoundry:environment"] == instance.environment
        assert tags["agentfoundry:instance"] == instance.key.instance_id
        assert tags["agentfoundry:bundle-hash"] == env_vars(app, name)["BUNDLE_HASH"]


def test_instance_stacks_have_the_outputs_the_control_plane_reads(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        outputs = app.templates[name]["Outputs"]
        assert set(outputs) == naming.INSTANCE_STACK_OUTPUTS
        scheme = "http" if instance.environment == "dev" else "https"
        assert outputs["InstanceEndpoint"]["Value"] == f"{scheme}://{instance.manifest.spec.hostname}/mcp"
        assert outputs["Hostname"]["Value"] == instance.manifest.spec.hostname


def statements(app: Synthesized, stack: str, role: str | None = None) -> list[dict[str, Any]]:
    """Every statement granted to the stack's roles (or to `role`, a logical id): inline and attached policies."""
    found = []
    for role_id, body in app.resources(stack, "AWS::IAM::Role").items():
        if role in (None, role_id):
            for policy in body["Properties"].get("Policies", []):
                found.extend(policy["PolicyDocument"]["Statement"])
    for policy in app.resources(stack, "AWS::IAM::Policy").values():
        if role is None or {"Ref": role} in policy["Properties"]["Roles"]:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


def resources_of(statement: dict[str, Any]) -> list[Any]:
    value = statement["Resource"]
    return value if isinstance(value, list) else [value]


def test_the_task_role_reads_exactly_its_own_bundle_object_and_uses_only_its_own_thread_table(
    app: Synthesized,
) -> None:
    for name in INSTANCE_STACKS:
        granted = statements(app, name, "RuntimeTaskRoleAB7E1F72")
        # the other two: the collector's X-Ray writes and its metrics log group (test_cdk_runtime_observability.py)
        granted = [s for s in granted if not {"xray:PutTraceSegments", "logs:PutLogEvents"} & set(actions_of(s))]
        assert len(granted) == 2 and granted[0]["Action"] == "s3:GetObject"
        (table,) = app.resources(name, "AWS::DynamoDB::Table")
        state = granted[1]
        assert all(action.startswith("dynamodb:") for action in actions_of(state))
        assert not {"dynamodb:DeleteTable", "dynamodb:CreateTable", "dynamodb:*"} & set(actions_of(state))
        assert resources_of(state) == [{"Fn::GetAtt": [table, "Arn"]}], "its own table, never `*` or another's"
        arn = json.dumps(granted[0]["Resource"])
        uri = json.dumps(app.templates[name]["Outputs"]["BundleUri"]["Value"])
        object_keys = re.findall(r"/([0-9a-f]{64}\.gz)", arn)
        assert len(object_keys) == 1 and object_keys == re.findall(r"/([0-9a-f]{64}\.gz)", uri)


def test_the_execution_role_reads_only_its_own_secrets_by_arn(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        secret_ids = set(app.resources(name, "AWS::SecretsManager::Secret"))
        reads = [s for s in statements(app, name) if "secretsmanager:GetSecretValue" in actions_of(s)]
        assert all(s in statements(app, name, "RuntimeExecutionRole329B38D7") for s in reads)
        assert all(actions_of(s) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"] for s in reads)
        if not secret_ids:
            assert reads == []
            continue
        assert [r for s in reads for r in resources_of(s)] == [{"Ref": i} for i in sorted(secret_ids)]


def test_no_policy_grants_a_wildcard_on_secrets_or_buckets(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        for statement in statements(app, name):
            actions = actions_of(statement)
            if any(a.startswith(("s3:", "secretsmanager:")) for a in actions):
                assert "*" not in json.dumps(resources_of(statement)), (name, statement)
                assert not any(a.endswith("*") for a in actions), (name, statement)


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(INSTANCE_STACKS, 2)))
def test_no_instance_role_grants_access_to_another_instances_secrets_or_bundle(
    app: Synthesized, first: str, second: str
) -> None:
    granted = json.dumps([resources_of(s) for s in statements(app, first)])
    other = BY_STACK[second]
    other_secret_prefix = naming.secret_prefix(other.environment, other.key)
    other_bundle_key = re.findall(r"[0-9a-f]{64}", json.dumps(app.templates[second]["Outputs"]["BundleUri"]))[0]
    assert other_secret_prefix not in granted
    assert other_bundle_key not in granted
    # Secrets are granted by Ref, and a Ref resolves inside its own stack only.
    assert all(ref in app.templates[first]["Resources"] for ref in re.findall(r'"Ref": "([A-Za-z0-9]+)"', granted))


def test_the_platform_publishes_one_set_of_shard_parameters_per_shard_in_use(app: Synthesized) -> None:
    for env in ("dev", "staging", "prod"):
        stack = f"af-{env}-platform"
        names = {p["Properties"]["Name"] for p in app.resources(stack, "AWS::SSM::Parameter").values()}
        assert f"/agentfoundry/{env}/platform/shards/0/listener-arn" in names
        assert f"/agentfoundry/{env}/platform/private-subnet-ids" in names
        assert len(app.resources(stack, "AWS::ElasticLoadBalancingV2::LoadBalancer")) == 1
        cluster = app.only(stack, "AWS::ECS::Cluster")["Properties"]
        assert cluster["ClusterName"] == f"af-{env}"
        assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["ClusterSettings"] or {
            "Name": "containerInsights",
            "Value": "enabled",
        } in cluster["ClusterSettings"]


def test_https_environments_redirect_http_and_only_internal_dev_serves_plain_http(app: Synthesized) -> None:
    for env in ("staging", "prod"):
        listeners = app.resources(f"af-{env}-platform", "AWS::ElasticLoadBalancingV2::Listener").values()
        by_port = {item["Properties"]["Port"]: item["Properties"] for item in listeners}
        assert by_port[443]["Protocol"] == "HTTPS" and by_port[443]["Certificates"]
        assert by_port[80]["DefaultActions"][0]["Type"] == "redirect"
    dev_listeners = list(app.resources("af-dev-platform", "AWS::ElasticLoadBalancingV2::Listener").values())
    assert [item["Properties"]["Port"] for item in dev_listeners] == [80]
    balancer = app.only("af-dev-platform", "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Scheme"] == "internal"


def test_prod_imports_its_vpc_and_zone_and_creates_neither(app: Synthesized) -> None:
    assert app.resources("af-prod-platform", "AWS::EC2::VPC") == {}
    assert app.resources("af-prod-platform", "AWS::Route53::HostedZone") == {}
    balancer = app.only("af-prod-platform", "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Subnets"] == ["subnet-0c1d2e3f4a5b6c7d8", "subnet-0d2e3f4a5b6c7d8e9"]
    assert len(app.resources("af-dev-platform", "AWS::EC2::VPC")) == 1
    zone = app.only("af-dev-platform", "AWS::Route53::HostedZone")["Properties"]
    assert zone["Name"] == "dev.agentfoundry.internal." and "VPCs" in zone


def test_selecting_an_instance_builds_only_its_stack_and_its_platform(tmp_path: Path) -> None:
    selected = synth(tmp_path / "cdk.out", instance="globex/billing/eu-west-1", runtimeImage=PREBUILT_IMAGE)
    assert sorted(selected.templates) == ["af-prod-globex-billing-eu-west-1", "af-prod-platform"]
    container = selected.only("af-prod-globex-billing-eu-west-1", "AWS::ECS::TaskDefinition")["Properties"]
    assert container["ContainerDefinitions"][0]["Image"] == PREBUILT_IMAGE


def test_a_selected_instance_synthesizes_the_same_template_as_in_the_full_app(app: Synthesized, tmp_path: Path) -> None:
    selected = synth(tmp_path / "cdk.out", environment="staging")
    assert sorted(selected.templates) == sorted(n for n in app.templates if n.startswith("af-staging-"))
    for name, template in selected.templates.items():
        assert template == app.templates[name]


def test_synth_is_deterministic(app: Synthesized, tmp_path: Path) -> None:
    again = synth(tmp_path / "cdk.out")
    for name, template in app.templates.items():
        assert (again.outdir / f"{name}.template.json").read_bytes() == (
            app.outdir / f"{name}.template.json"
        ).read_bytes()
        assert template == again.templates[name]


def test_a_prebuilt_ecr_image_is_pulled_from_its_repository_only(tmp_path: Path) -> None:
    selected = synth(tmp_path / "cdk.out", instance="acme/retail/dev", runtimeImage=PREBUILT_IMAGE)
    reports = json.loads((selected.outdir / "validation-report.json").read_text())["pluginReports"]
    warnings = [r for r in reports if r["pluginName"] == "Construct Annotations"]
    assert all(r["violations"] == [] for r in warnings), "the pull grant is acknowledged where it is made"
    pulls = [s for s in statements(selected, "af-dev-acme-retail-dev") if "ecr:BatchGetImage" in s["Action"]]
    assert [s["Resource"] for s in pulls] == [
        {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, ":ecr:us-east-1:123456789012:repository/agent-foundry-runtime"],
            ]
        }
    ]


def test_an_unplaced_instance_fails_synth_naming_the_placement_file(agents_copy: Path, tmp_path: Path) -> None:
    (agents_copy / "placement" / "staging.yaml").unlink()
    with pytest.raises(ManifestError) as caught:
        synth(tmp_path / "cdk.out", agents_dir=agents_copy, environment="staging")
    message = str(caught.value)
    assert "staging.yaml" in message and "python -m foundry place --environment staging" in message
    assert not list((tmp_path / "cdk.out").glob("*.template.json")), "nothing half-done is left behind"


def test_an_unknown_instance_selector_fails_before_building(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown instance"):
        synth(tmp_path / "cdk.out", instance="acme/retail/nowhere")


def test_stack_names_derive_from_the_instance_key() -> None:
    assert naming.instance_stack_name("prod", InstanceKey("acme", "retail", "us-east-1")) == (
        "af-prod-acme-retail-us-east-1"
    )


def test_listed_instances_of_an_environment_build_only_their_stacks_and_the_platform(tmp_path: Path) -> None:
    """`-c environment=ENV -c instances=A,B`: what a pull request synthesizes from its change plan."""
    listed = synth(
        tmp_path / "cdk.out",
        environment="prod",
        instances="globex/billing/eu-west-1,acme/retail/us-east-1",
        runtimeImage=PREBUILT_IMAGE,
    )
    assert sorted(listed.templates) == [
        "af-prod-acme-retail-us-east-1",
        "af-prod-globex-billing-eu-west-1",
        "af-prod-platform",
    ]


def test_an_empty_instance_list_builds_only_the_platform(tmp_path: Path) -> None:
    listed = synth(tmp_path / "cdk.out", environment="staging", instances="")
    assert sorted(listed.templates) == ["af-staging-platform"]


def test_a_listed_instance_of_another_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown instance\(s\) 'acme/retail/dev' in environment 'prod'"):
        synth(tmp_path / "cdk.out", environment="prod", instances="acme/retail/dev")


def test_an_instance_list_needs_its_environment(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give -c environment=ENV"):
        synth(tmp_path / "cdk.out", instances="acme/retail/dev")


def test_instance_alarms_follow_the_resolved_thresholds_and_notify_their_environment_topic(app: Synthesized) -> None:
    for name in INSTANCE_STACKS:
        instance = BY_STACK[name]
        alarms = {
            a["Properties"]["AlarmName"]: a["Properties"]
            for a in app.resources(name, "AWS::CloudWatch::Alarm").values()
        }
        output = app.templates[name]["Outputs"]["AlarmNames"]["Value"]
        assert sorted(output.split(",")) == sorted(alarms), "the gate finds the alarms by this output"
        error_rate = alarms[f"{name}-runtime-error-rate"]
        assert error_rate["Threshold"] == instance.alarms.error_rate_percent
        assert error_rate["EvaluationPeriods"] == instance.alarms.evaluation_minutes
        topic = json.dumps(error_rate["AlarmActions"])
        assert f":af-{instance.environment}-alarms" in topic and ":sns:" in topic
    prod = next(n for n in INSTANCE_STACKS if BY_STACK[n].environment == "prod")
    dev = next(n for n in INSTANCE_STACKS if BY_STACK[n].environment == "dev")
    assert BY_STACK[prod].alarms.error_rate_percent < BY_STACK[dev].alarms.error_rate_percent
