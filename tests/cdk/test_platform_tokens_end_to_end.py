"""The platform's Cognito pool end to end, as far as it goes without AWS: staging's templates from the example app
(platform and instances); the client ids Cognito would create, in the SSM parameters the platform template writes
(moto's server); the org-claim function run with the environment its template gives it on a V3_0 client-credentials
event; a token shaped like Cognito's access token with the claims the function asked for, signed by a local issuer;
and each instance's own verifier, built by the runtime from its template's AUTH_* variables."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from constructs.functions.org_claim import org_claim
from oauth_resource.dev_issuer import RunningIssuer, serve_issuer
from runtime.auth import resource_server
from runtime.config import auth_from_env
from tests.cdk.cdk_harness import Synthesized, synth
from tests.cdk.test_org_claim_trigger_handler import CLIENT_CREDENTIALS_EVENT
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server

pytestmark = pytest.mark.slow

ENVIRONMENT = "staging"
PLATFORM = f"af-{ENVIRONMENT}-platform"
INSTANCES = {"acme": "af-staging-acme-retail-us-east-1", "globex": "af-staging-globex-support-us-east-1"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(tmp_path_factory.mktemp("tokens") / "cdk.out", environment=ENVIRONMENT)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    """Stands in for the pool's signing keys (Cognito signs RS256)."""
    with serve_issuer(tmp_path_factory.mktemp("issuer"), algorithm="RS256") as running:
        yield running


@pytest.fixture(scope="module")
def deployed(app: Synthesized, issuer: RunningIssuer) -> Iterator[tuple[LocalAws, dict[str, str]]]:
    """moto's SSM holding what the platform stack's parameters hold once deployed: the issuer URL and, per
    organization, the id Cognito gave its app client."""
    with moto_server() as local:
        ssm = local.client("ssm")
        client_ids: dict[str, str] = {}
        for parameter in app.resources(PLATFORM, "AWS::SSM::Parameter").values():
            name, value = parameter["Properties"]["Name"], parameter["Properties"]["Value"]
            if name.endswith("/issuer-url"):
                deployed_value = issuer.url
            elif name.endswith("/client-id"):
                client = next(iter(value.values()))  # {"Ref": <the organization's UserPoolClient>}
                org = app.templates[PLATFORM]["Resources"][client]["Properties"]["ClientName"]
                deployed_value = client_ids[org] = secrets.token_hex(13)[:26]
            else:
                deployed_value = "https://agentfoundry-staging.auth.us-east-1.amazoncognito.com/oauth2/token"
            ssm.put_parameter(Name=name, Value=deployed_value, Type="String")
        yield local, client_ids


def _claims_from_the_trigger(
    app: Synthesized, local: LocalAws, client_id: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    (function,) = (
        f["Properties"]
        for f in app.resources(PLATFORM, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "org_claim.handler"
    )
    for name, value in {**local.env, **function["Environment"]["Variables"]}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(org_claim, "_directory", None)
    event = json.loads(json.dumps(CLIENT_CREDENTIALS_EVENT))
    event["callerContext"]["clientId"] = client_id
    answer = org_claim.handler(event, None)
    claims: dict[str, Any] = answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"][
        "claimsToAddOrOverride"
    ]
    return claims


def _cognito_access_token(issuer: RunningIssuer, client_id: str, added: dict[str, Any]) -> str:
    """The shape of a Cognito client-credentials access token: no `aud`, the client as `sub` and `client_id`."""
    key = issuer.issuer.current_key()
    now = int(time.time())
    claims = {
        "sub": client_id, "token_use": "access", "scope": "agentfoundry/invoke agentfoundry/read", "auth_time": now,
        "iss": issuer.url, "exp": now + 3600, "iat": now, "version": 2, "jti": secrets.token_hex(8),
        "client_id": client_id, **added,
    }  # fmt: skip
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


async def _accepts(app: Synthesized, local: LocalAws, stack: str, token: str) -> str | None:
    """The organization of the caller the instance's runtime accepts, or None when it refuses the token."""
    template = app.templates[stack]
    (task,) = (r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition")
    ssm = local.client("ssm")
    env: dict[str, str] = {}
    for variable in task["Properties"]["ContainerDefinitions"][0]["Environment"]:
        value = variable["Value"]
        if not variable["Name"].startswith("AUTH_") and variable["Name"] not in ("ORG_ID", "ALLOWED_HOSTS"):
            continue
        if isinstance(value, dict):  # {"Ref": <an SSM parameter type>}: resolved at deploy time
            name = template["Parameters"][value["Ref"]]["Default"]
            value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        env[variable["Name"]] = value
    server = resource_server(auth_from_env(env), organization=env["ORG_ID"], hostname=env["ALLOWED_HOSTS"])
    accepted = await server.verifier.verify_token(token)
    return None if accepted is None else str((accepted.claims or {})["org"])


async def test_each_organizations_token_is_accepted_by_its_instances_and_refused_by_the_others(
    app: Synthesized,
    issuer: RunningIssuer,
    deployed: tuple[LocalAws, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local, client_ids = deployed
    assert sorted(client_ids) == sorted(INSTANCES)
    for org, stack in INSTANCES.items():
        added = _claims_from_the_trigger(app, local, client_ids[org], monkeypatch)
        assert added == {"org": org}
        token = _cognito_access_token(issuer, client_ids[org], added)
        assert await _accepts(app, local, stack, token) == org
        for other_org, other in INSTANCES.items():
            if other_org != org:
                assert await _accepts(app, local, other, token) is None, f"{org}'s token opened {other}"


async def test_without_the_trigger_the_pools_tokens_were_refused(
    app: Synthesized, issuer: RunningIssuer, deployed: tuple[LocalAws, dict[str, str]]
) -> None:
    """What the pool issued before it had the trigger: the instance refuses a token without the organization."""
    local, client_ids = deployed
    token = _cognito_access_token(issuer, client_ids["acme"], {})
    assert await _accepts(app, local, INSTANCES["acme"], token) is None


def test_the_example_staging_instances_are_the_ones_named_here(app: Synthesized) -> None:
    assert sorted(app.stacks.instances) == sorted(INSTANCES.values())
