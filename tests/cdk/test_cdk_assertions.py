"""Fine-grained `aws_cdk.assertions.Template` checks, one per resource kind of an InstanceStack and of the shared
platform, on stacks of the example app as every synth builds them. Expected values come from the manifests and
platform settings, not from the templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Capture, Match, Template

from foundry.fleet.load import load_fleet
from foundry.manifests import naming
from tests.cdk.cdk_harness import Synthesized, synth

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"
EXAMPLE = load_fleet(REPO_AGENTS)
SETTINGS = EXAMPLE.tree.platform.model.spec.environments
PROD = next(i for i in EXAMPLE.instances if i.manifest.spec.stack_name == "af-prod-acme-retail-us-east-1")
DEV = next(i for i in EXAMPLE.instances if i.manifest.spec.stack_name == "af-dev-acme-retail-dev")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(tmp_path_factory.mktemp("assertions") / "cdk.out")


@pytest.fixture(scope="module")
def prod(app: Synthesized) -> Template:
    return Template.from_stack(app.stacks.instances[PROD.manifest.spec.stack_name])


def test_from_stack_reads_the_template_the_app_wrote(app: Synthesized, prod: Template) -> None:
    assert prod.to_json() == app.templates[PROD.manifest.spec.stack_name]


def test_one_secret_per_manifest_secret_under_the_instance_path(prod: Template) -> None:
    spec, key = PROD.manifest.spec, PROD.key
    prod.resource_count_is("AWS::SecretsManager::Secret", len(spec.secrets))
    for name in spec.secrets:
        prod.has_resource_properties(
            "AWS::SecretsManager::Secret",
            {"Name": naming.secret_name(PROD.environment, key, name), "SecretString": Match.absent()},
        )


def test_the_task_definition_runs_the_runtime_with_identity_bundle_and_secrets(prod: Template) -> None:
    spec, key = PROD.manifest.spec, PROD.key
    prod.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Cpu": str(spec.deploy.cpu),
            "Memory": str(spec.deploy.memory),
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Environment": Match.array_with(
                                [
                                    {"Name": "DOMAIN_ID", "Value": key.domain_id},
                                    {"Name": "ENVIRONMENT", "Value": PROD.environment},
                                    {"Name": "INSTANCE_ID", "Value": key.instance_id},
                                    {"Name": "ORG_ID", "Value": key.organization_id},
                                ]
                            ),
                            "Secrets": [
                                {"Name": Match.string_like_regexp("^SECRET_"), "ValueFrom": {"Ref": Match.any_value()}}
                                for _ in spec.secrets
                            ],
                            "LogConfiguration": Match.object_like({"LogDriver": "awslogs"}),
                        }
                    )
                ]
            ),
        },
    )


def test_the_log_group_keeps_logs_for_the_environments_retention(prod: Template) -> None:
    prod.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": SETTINGS["prod"].log_retention_days})


def test_the_service_is_private_rolls_back_and_scales_as_the_manifest_says(prod: Template) -> None:
    deploy = PROD.manifest.spec.deploy
    prod.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like(
                    {
                        "AssignPublicIp": "DISABLED",
                        "Subnets": [{"Fn::Select": [i, {"Ref": "PrivateSubnetIds"}]} for i in range(2)],
                    }
                )
            },
            "DeploymentConfiguration": {
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200,
            },
            "HealthCheckGracePeriodSeconds": Match.any_value(),
        },
    )
    prod.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": deploy.min_tasks,
            "MaxCapacity": deploy.max_tasks,
            "ScalableDimension": "ecs:service:DesiredCount",
        },
    )
    prod.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {"TargetValue": deploy.cpu_target_percent, "PredefinedMetricSpecification": Match.any_value()}
            )
        },
    )


def test_the_service_keeps_its_scaled_task_count_across_deploys(prod: Template) -> None:
    """A DesiredCount in the template would reset the service to it on every update, undoing autoscaling."""
    prod.has_resource_properties("AWS::ECS::Service", {"DesiredCount": Match.absent()})
    prod.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"ResourceId": {"Fn::Join": ["", ["service/af-prod/", {"Fn::GetAtt": ["RuntimeService408BD8AA", "Name"]}]]}},
    )


def test_the_container_has_a_read_only_root_filesystem_with_only_tmp_writable(prod: Template) -> None:
    prod.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Volumes": [{"Name": "tmp"}],
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "ReadonlyRootFilesystem": True,
                            "MountPoints": [{"ContainerPath": "/tmp", "SourceVolume": "tmp", "ReadOnly": False}],
                        }
                    )
                ]
            ),
        },
    )


def test_the_container_checks_its_own_health_with_the_runtime_cli(prod: Template) -> None:
    prod.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "HealthCheck": {
                                "Command": ["CMD", "python", "-m", "runtime", "healthcheck"],
                                "Interval": 15,
                                "Timeout": 5,
                                "Retries": 3,
                                "StartPeriod": 30,
                            }
                        }
                    )
                ]
            )
        },
    )


def test_requests_for_the_hostname_reach_the_runtimes_health_checked_targets(prod: Template) -> None:
    hostname = PROD.manifest.spec.hostname
    target_group = Capture()
    prod.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Conditions": [
                {"Field": "host-header", "HostHeaderConfig": {"Values": [hostname]}},
                # only the MCP endpoint and its RFC 9728 metadata: /metrics, /healthz, /readyz stay in the VPC
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {
                        "Values": [
                            "/mcp",
                            "/.well-known/oauth-protected-resource",
                            "/.well-known/oauth-protected-resource/*",
                        ]
                    },
                },
            ],
            "Actions": [{"Type": "forward", "TargetGroupArn": {"Ref": target_group}}],
        },
    )
    assert (
        prod.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup")[target_group.as_string()]["Properties"][
            "HealthCheckPath"
        ]
        == "/readyz"
    )
    prod.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": f"{hostname}.", "Type": "A", "AliasTarget": Match.object_like({})}
    )


def test_the_tasks_admit_only_their_load_balancer_on_the_container_port(prod: Template) -> None:
    prod.resource_count_is("AWS::EC2::SecurityGroupIngress", 1)
    prod.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "FromPort": 8080,
            "ToPort": 8080,
            "SourceSecurityGroupId": {"Ref": "ShardSecurityGroupId"},
            "GroupId": {"Fn::GetAtt": ["RuntimeSecurityGroup3DBEE987", "GroupId"]},
        },
    )
    prod.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {"SecurityGroupIngress": Match.absent(), "SecurityGroupEgress": [Match.object_like({"FromPort": 443})]},
    )


def test_the_task_role_reads_only_its_own_bundle_object(app: Synthesized, prod: Template) -> None:
    bundle_uri = app.templates[PROD.manifest.spec.stack_name]["Outputs"]["BundleUri"]["Value"]
    bucket_and_key = bundle_uri.removeprefix("s3://")
    prod.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": "RuntimeTaskRoleAB7E1F72"}],
            "PolicyDocument": Match.object_like(
                {
                    "Statement": Match.array_with(
                        [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket_and_key}"}]
                    )
                }
            ),
        },
    )


def test_the_execution_role_reads_only_its_own_secrets(prod: Template) -> None:
    secrets = prod.find_resources("AWS::SecretsManager::Secret")
    assert len(secrets) == len(PROD.manifest.spec.secrets)
    prod.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": "RuntimeExecutionRole329B38D7"}],
            "PolicyDocument": Match.object_like(
                {
                    "Statement": Match.array_with(
                        [
                            {
                                "Effect": "Allow",
                                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                                "Resource": {"Ref": logical_id},
                            }
                            for logical_id in sorted(secrets)
                        ]
                    )
                }
            ),
        },
    )


def test_the_instance_reads_its_platform_from_ssm_not_from_exports(prod: Template) -> None:
    prod.has_parameter("VpcId", {"Type": "AWS::SSM::Parameter::Value<String>"})
    assert "Fn::ImportValue" not in str(prod.to_json())


def test_the_platform_has_a_cluster_with_container_insights_and_an_https_shard(app: Synthesized) -> None:
    platform = Template.from_stack(app.stacks.platforms["af-prod-platform"])
    platform.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterName": "af-prod", "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )
    platform.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Protocol": "HTTPS",
            "Port": 443,
            "Certificates": [{"CertificateArn": SETTINGS["prod"].load_balancer.certificate_arn}],
        },
    )
    platform.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Protocol": "HTTP", "Port": 80, "DefaultActions": [Match.object_like({"Type": "redirect"})]},
    )
    platform.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": "/agentfoundry/prod/platform/shards/0/listener-arn"}
    )


def test_the_internal_dev_platform_creates_its_vpc_and_private_zone_and_serves_plain_http(app: Synthesized) -> None:
    dev = SETTINGS[DEV.environment]
    assert dev.load_balancer.plain_http
    platform = Template.from_stack(app.stacks.platforms["af-dev-platform"])
    platform.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": dev.vpc.cidr})
    platform.has_resource_properties(
        "AWS::Route53::HostedZone", {"Name": f"{dev.zone.name}.", "VPCs": Match.any_value()}
    )
    platform.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"})
    platform.resource_properties_count_is("AWS::ElasticLoadBalancingV2::Listener", {"Protocol": "HTTPS"}, 0)


def test_each_instance_owns_one_retained_thread_state_table_that_its_tasks_find_by_state_url(
    app: Synthesized, prod: Template
) -> None:
    prod.resource_count_is("AWS::DynamoDB::Table", 1)
    prod.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BillingMode": "PAY_PER_REQUEST",
                    "SSESpecification": {"SSEEnabled": True},
                    "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
                    "PointInTimeRecoverySpecification": {
                        "PointInTimeRecoveryEnabled": SETTINGS["prod"].state_point_in_time_recovery
                    },
                    "Tags": Match.array_with([{"Key": "agentfoundry:instance", "Value": PROD.key.instance_id}]),
                }
            ),
        },
    )
    (table_id,) = prod.find_resources("AWS::DynamoDB::Table")
    prod.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Environment": Match.array_with(
                                [{"Name": "STATE_URL", "Value": {"Fn::Join": ["", ["dynamodb://", {"Ref": table_id}]]}}]
                            )
                        }
                    )
                ]
            )
        },
    )
    dev = Template.from_stack(app.stacks.instances[DEV.manifest.spec.stack_name])
    dev.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "PointInTimeRecoverySpecification": {
                "PointInTimeRecoveryEnabled": SETTINGS["dev"].state_point_in_time_recovery
            }
        },
    )


def test_callers_are_checked_against_the_environments_issuer(app: Synthesized, prod: Template) -> None:
    """prod names no issuer: its platform's Cognito pool issues the tokens, read from SSM at deploy time (Cognito
    access tokens carry the app client id, not `aud`). dev's internal load balancer allows auth mode none."""
    prod.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Environment": Match.array_with(
                                [
                                    {"Name": "AUTH_AUDIENCE", "Value": {"Ref": "IdentityClientId"}},
                                    {"Name": "AUTH_AUDIENCE_CLAIM", "Value": "client_id"},
                                    {"Name": "AUTH_ISSUER", "Value": {"Ref": "IdentityIssuerUrl"}},
                                    {"Name": "AUTH_ORG_CLAIM", "Value": "org"},
                                ]
                            )
                        }
                    )
                ]
            )
        },
    )
    parameters = app.templates[PROD.manifest.spec.stack_name]["Parameters"]
    assert parameters["IdentityIssuerUrl"]["Default"] == "/agentfoundry/prod/platform/identity/issuer-url"
    assert parameters["IdentityClientId"]["Default"] == (
        "/agentfoundry/prod/platform/identity/organizations/acme/client-id"
    ), "the instance's audience is its own organization's app client"
    dev = app.templates[DEV.manifest.spec.stack_name]
    (task_definition,) = (r for r in dev["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition")
    variables = {e["Name"]: e["Value"] for e in task_definition["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert variables["AUTH_MODE"] == "none" and "AUTH_ISSUER" not in variables


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_platform_pool_has_one_client_per_organization_and_its_v3_trigger(
    app: Synthesized, environment: str
) -> None:
    """Every organization of the environment's manifest gets an app client, whose id is published where that
    organization's instances read their audience; the V3_0 trigger knows each of those parameters."""
    platform = f"af-{environment}-platform"
    organizations = sorted({e.organization_id for e in EXAMPLE.tree.environments[environment].model.spec.entries})
    assert len(organizations) > 1
    clients = app.resources(platform, "AWS::Cognito::UserPoolClient")
    assert sorted(c["Properties"]["ClientName"] for c in clients.values()) == organizations
    client_of = {c["Properties"]["ClientName"]: logical for logical, c in clients.items()}
    published = {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in app.resources(platform, "AWS::SSM::Parameter").values()
    }
    for instance in (i for i in EXAMPLE.instances if i.environment == environment):
        parameter = app.templates[instance.manifest.spec.stack_name]["Parameters"]["IdentityClientId"]["Default"]
        assert published[parameter] == {"Ref": client_of[instance.key.organization_id]}, instance.key.selector
    pool = app.only(platform, "AWS::Cognito::UserPool")["Properties"]
    assert pool["UserPoolTier"] == "ESSENTIALS", "V3_0 access-token customization needs Essentials or Plus"
    assert pool["LambdaConfig"]["PreTokenGenerationConfig"]["LambdaVersion"] == "V3_0"
    (trigger,) = (
        f["Properties"]
        for f in app.resources(platform, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "org_claim.handler"
    )
    variables = trigger["Environment"]["Variables"]
    path = variables["ORG_CLIENT_ID_PATH"]
    assert sorted(n for n in published if n.startswith(f"{path}/")) == [
        f"{path}/{org}/client-id" for org in organizations
    ], "the trigger finds exactly the organizations' client id parameters under its path"
    assert variables["ORG_CLAIM"] == "org", "the claim the instances check (AUTH_ORG_CLAIM)"


def test_the_platform_stack_is_the_same_whatever_instance_is_selected(app: Synthesized, tmp_path: Path) -> None:
    """Its clients come from the whole manifest: deploying one instance never removes another organization's."""
    one = synth(tmp_path / "cdk.out", instance="acme/retail/us-east-1", environment="staging")
    assert one.templates["af-staging-platform"] == app.templates["af-staging-platform"]
