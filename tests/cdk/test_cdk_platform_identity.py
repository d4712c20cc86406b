"""The platform's Cognito token issuer (constructs/af_platform_identity.py) on the smallest stack that holds it, with
cdk-nag's AwsSolutions pack: one app client per organization, and the V3_0 pre-token-generation trigger that maps
each client to its organization (constructs/af_org_claim_trigger.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from constructs.af_platform_contract import identity_parameters
from constructs.af_platform_identity import AfPlatformIdentity

PARAMETERS = identity_parameters("test")
ORGANIZATIONS = ["acme", "globex"]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    outdir = tmp_path_factory.mktemp("identity")
    app = App(outdir=str(outdir))
    stack = Stack(app, "IdentityStack", env=Environment(account="111111111111", region="us-east-1"))
    AfPlatformIdentity(
        stack, "Identity", pool_name="af-test-callers", domain_prefix="agentfoundry-test-111111111111",
        parameters=PARAMETERS, organizations=ORGANIZATIONS, org_claim="org",
    )  # fmt: skip
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return Template.from_stack(stack), outdir


@pytest.fixture(scope="module")
def template(synthesized: tuple[Template, Path]) -> Template:
    return synthesized[0]


def test_the_pool_admits_no_self_sign_up_and_is_kept_on_stack_deletion(template: Template) -> None:
    template.has_resource(
        "AWS::Cognito::UserPool",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "UserPoolName": "af-test-callers",
                    "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
                    "DeletionProtection": "ACTIVE",
                    "UserPoolTier": "ESSENTIALS",
                }
            ),
        },
    )


def test_the_resource_server_is_agentfoundry_with_invoke_read_and_approve(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Cognito::UserPoolResourceServer",
        {
            "Identifier": "agentfoundry",
            "Scopes": [
                {"ScopeName": "invoke", "ScopeDescription": Match.any_value()},
                {"ScopeName": "read", "ScopeDescription": Match.any_value()},
                {"ScopeName": "approve", "ScopeDescription": Match.any_value()},
            ],
        },
    )


def _clients(template: Template) -> dict[str, dict[str, Any]]:
    """Client name -> the client's properties."""
    return {
        c["Properties"]["ClientName"]: c["Properties"]
        for c in template.find_resources("AWS::Cognito::UserPoolClient").values()
    }


def test_each_organization_has_its_own_machine_client_with_client_credentials_for_the_three_scopes_only(
    template: Template,
) -> None:
    clients = _clients(template)
    assert sorted(clients) == ORGANIZATIONS
    (server_id,) = template.find_resources("AWS::Cognito::UserPoolResourceServer")
    for client in clients.values():
        assert client["GenerateSecret"] is True
        assert client["AllowedOAuthFlows"] == ["client_credentials"]
        assert client["AllowedOAuthFlowsUserPoolClient"] is True
        assert client["EnableTokenRevocation"] is True
        # "<resource server identifier>/<scope>", the identifier referenced from the resource server: agentfoundry/...
        assert client["AllowedOAuthScopes"] == [
            {"Fn::Join": ["", [{"Ref": server_id}, f"/{name}"]]} for name in ("invoke", "read", "approve")
        ]


def _parameters(template: Template) -> dict[str, Any]:
    return {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in template.find_resources("AWS::SSM::Parameter").values()
    }


def test_the_issuer_each_organizations_client_and_the_token_endpoint_are_published_for_instances(
    template: Template,
) -> None:
    names = _parameters(template)
    client_ids = [PARAMETERS.client_id(org) for org in ORGANIZATIONS]
    assert client_ids == [
        "/agentfoundry/test/platform/identity/organizations/acme/client-id",
        "/agentfoundry/test/platform/identity/organizations/globex/client-id",
    ]
    assert sorted(names) == sorted([PARAMETERS.issuer_url, PARAMETERS.token_endpoint, *client_ids])
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    assert names[PARAMETERS.issuer_url] == {
        "Fn::Join": ["", ["https://cognito-idp.us-east-1.", {"Ref": "AWS::URLSuffix"}, "/", {"Ref": pool_id}]]
    }
    assert "/oauth2/token" in json.dumps(names[PARAMETERS.token_endpoint])
    template.has_resource_properties("AWS::Cognito::UserPoolDomain", {"Domain": "agentfoundry-test-111111111111"})
    by_name = {c["Properties"]["ClientName"]: logical for logical, c in _client_resources(template).items()}
    for org in ORGANIZATIONS:
        assert names[PARAMETERS.client_id(org)] == {"Ref": by_name[org]}, f"{org}'s parameter holds its own client id"


def _client_resources(template: Template) -> dict[str, Any]:
    return dict(template.find_resources("AWS::Cognito::UserPoolClient"))


def test_the_pool_runs_the_org_claim_trigger_with_event_version_v3(template: Template) -> None:
    (pool,) = template.find_resources("AWS::Cognito::UserPool").values()
    config = pool["Properties"]["LambdaConfig"]["PreTokenGenerationConfig"]
    assert config["LambdaVersion"] == "V3_0", "V3_0: the trigger also runs for the client credentials grant"
    functions = template.find_resources("AWS::Lambda::Function")
    (function_id,) = (f for f, r in functions.items() if r["Properties"].get("Handler") == "org_claim.handler")
    assert config["LambdaArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "cognito-idp.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "SourceArn": {"Fn::GetAtt": [next(iter(template.find_resources("AWS::Cognito::UserPool"))), "Arn"]},
        },
    )


def test_the_trigger_knows_where_the_client_ids_are_and_the_claim(template: Template) -> None:
    (function,) = (
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "org_claim.handler"
    )
    variables = function["Environment"]["Variables"]
    assert variables["ORG_CLIENT_ID_PATH"] == "/agentfoundry/test/platform/identity/organizations"
    assert all(PARAMETERS.client_id(o).startswith(variables["ORG_CLIENT_ID_PATH"] + "/") for o in ORGANIZATIONS)
    assert variables["ORG_CLAIM"] == "org"
    assert "UserPoolClient" not in json.dumps(function), "no client id in the function: it would close a circle"


def test_the_trigger_may_read_the_parameters_under_that_path_and_nothing_else(template: Template) -> None:
    ssm_statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ssm:" in json.dumps(s["Action"])
    ]
    (statement,) = ssm_statements
    assert statement["Action"] == "ssm:GetParametersByPath"
    path = ":ssm:us-east-1:111111111111:parameter/agentfoundry/test/platform/identity/organizations"
    assert [r["Fn::Join"][1][-1] for r in statement["Resource"]] == [path, f"{path}/*"]


def test_the_template_deploys_in_an_order_cloudformation_can_follow(template: Template) -> None:
    """Pool -> trigger function, clients -> pool: a reference from the function to a client would be a circle."""
    resources = template.to_json()["Resources"]

    def references(value: Any) -> set[str]:
        text = json.dumps(value)
        return {logical for logical in resources if f'"Ref": "{logical}"' in text or f'["{logical}", ' in text}

    graph = {
        logical: references(r.get("Properties", {})) | set(r.get("DependsOn", [])) for logical, r in resources.items()
    }
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"dependency circle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for target in graph[node]:
            visit(target, (*path, node))
        done.add(node)

    for logical in graph:
        visit(logical, ())


def test_an_environment_without_organizations_gets_the_pool_and_no_trigger() -> None:
    app = App()
    stack = Stack(app, "Empty", env=Environment(account="111111111111", region="us-east-1"))
    AfPlatformIdentity(
        stack, "Identity", pool_name="p", domain_prefix="agentfoundry-empty", parameters=PARAMETERS, organizations=[],
        org_claim="org",
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Cognito::UserPoolClient", 0)
    template.resource_count_is("AWS::Lambda::Function", 0)


def test_cdk_nag_finds_nothing_unacknowledged(synthesized: tuple[Template, Path]) -> None:
    reports = json.loads((synthesized[1] / "validation-report.json").read_text())["pluginReports"]
    nag = next(r for r in reports if r["pluginName"] == "AwsSolutions")
    assert nag["violations"] == []
    assert {v["ruleName"] for v in nag["suppressedViolations"]} == {
        "AwsSolutions-COG2",
        "AwsSolutions-COG8",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:us-east-1:111111111111:parameter/agentfoundry/test/"
        "platform/identity/organizations/*]",
    }, "the only wildcard: the client id parameters under the trigger's path"
