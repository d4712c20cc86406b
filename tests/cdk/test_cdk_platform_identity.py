"""The platform's Cognito token issuer (constructs/af_platform_identity.py) on the smallest stack that holds it, with
cdk-nag's AwsSolutions pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from constructs.af_platform_contract import identity_parameters
from constructs.af_platform_identity import AfPlatformIdentity

PARAMETERS = identity_parameters("test")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    outdir = tmp_path_factory.mktemp("identity")
    app = App(outdir=str(outdir))
    stack = Stack(app, "IdentityStack", env=Environment(account="111111111111", region="us-east-1"))
    AfPlatformIdentity(
        stack, "Identity", pool_name="af-test-callers", domain_prefix="agentfoundry-test-111111111111",
        parameters=PARAMETERS,
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


def test_the_resource_server_is_agentfoundry_with_invoke_and_read(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Cognito::UserPoolResourceServer",
        {
            "Identifier": "agentfoundry",
            "Scopes": [
                {"ScopeName": "invoke", "ScopeDescription": Match.any_value()},
                {"ScopeName": "read", "ScopeDescription": Match.any_value()},
            ],
        },
    )


def test_the_machine_client_uses_client_credentials_for_both_scopes_only(template: Template) -> None:
    template.resource_count_is("AWS::Cognito::UserPoolClient", 1)
    template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "GenerateSecret": True,
            "AllowedOAuthFlows": ["client_credentials"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "EnableTokenRevocation": True,
        },
    )
    (client,) = template.find_resources("AWS::Cognito::UserPoolClient").values()
    (server_id,) = template.find_resources("AWS::Cognito::UserPoolResourceServer")
    scopes = client["Properties"]["AllowedOAuthScopes"]
    # "<resource server identifier>/<scope>", the identifier referenced from the resource server: agentfoundry/...
    assert scopes == [{"Fn::Join": ["", [{"Ref": server_id}, f"/{name}"]]} for name in ("invoke", "read")]


def test_the_issuer_client_and_token_endpoint_are_published_for_instances(template: Template) -> None:
    names = {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in template.find_resources("AWS::SSM::Parameter").values()
    }
    assert sorted(names) == sorted([PARAMETERS.issuer_url, PARAMETERS.client_id, PARAMETERS.token_endpoint])
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    assert names[PARAMETERS.issuer_url] == {
        "Fn::Join": ["", ["https://cognito-idp.us-east-1.", {"Ref": "AWS::URLSuffix"}, "/", {"Ref": pool_id}]]
    }
    assert "/oauth2/token" in json.dumps(names[PARAMETERS.token_endpoint])
    template.has_resource_properties("AWS::Cognito::UserPoolDomain", {"Domain": "agentfoundry-test-111111111111"})


def test_cdk_nag_finds_nothing_unacknowledged(synthesized: tuple[Template, Path]) -> None:
    reports = json.loads((synthesized[1] / "validation-report.json").read_text())["pluginReports"]
    nag = next(r for r in reports if r["pluginName"] == "AwsSolutions")
    assert nag["violations"] == []
    assert {v["ruleName"] for v in nag["suppressedViolations"]} == {"AwsSolutions-COG2", "AwsSolutions-COG8"}
