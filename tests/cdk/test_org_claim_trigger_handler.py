"""The pre-token-generation trigger's function (constructs/functions/org_claim/org_claim.py), fed the V3_0 events
Amazon Cognito sends: the client credentials grant (machine) and a user's sign-in. It maps the app client to its
organization through the SSM parameters the platform stack writes (read from moto's server)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from constructs.functions.org_claim import org_claim
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server

ACME_CLIENT, GLOBEX_CLIENT = "5ab0cd1ef2gh3ij4kl5mn6op7q", "7pq8rs9tu0vw1xy2za3bc4de5f"
PATH = "/agentfoundry/staging/platform/identity/organizations"
PARAMETERS = {"acme": f"{PATH}/acme/client-id", "globex": f"{PATH}/globex/client-id"}
# The V3_0 event of the client credentials grant, as Cognito's developer guide shows it: no user attributes, no ID
# token, the scopes asked for
CLIENT_CREDENTIALS_EVENT: dict[str, Any] = {
    "version": "3",
    "triggerSource": "TokenGeneration_ClientCredentials",
    "region": "us-east-1",
    "userPoolId": "us-east-1_aBcDeFgHi",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": ACME_CLIENT},
    "request": {
        "userAttributes": {},
        "groupConfiguration": None,
        "scopes": ["agentfoundry/invoke", "agentfoundry/read"],
    },
    "response": {"claimsAndScopeOverrideDetails": None},
}
# The V3_0 event of a user's sign-in through an app client (access and ID tokens): the V2/V3 shape that AWS Lambda
# Powertools' parser tests use, with version 3
USER_EVENT: dict[str, Any] = {
    "version": "3",
    "triggerSource": "TokenGeneration_Authentication",
    "region": "us-east-1",
    "userPoolId": "us-east-1_aBcDeFgHi",
    "userName": "alice",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": GLOBEX_CLIENT},
    "request": {
        "userAttributes": {
            "sub": "a1b2c3d4-0000-4000-8000-000000000001",
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "alice@globex.example",
        },
        "groupConfiguration": {"groupsToOverride": [], "iamRolesToOverride": [], "preferredRole": None},
        "scopes": ["openid", "aws.cognito.signin.user.admin"],
    },
    "response": {"claimsAndScopeOverrideDetails": None},
}


class _Ssm:
    """The parameters as SSM holds them, counting reads by path."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.reads = 0

    def __call__(self, path: str) -> dict[str, str]:
        self.reads += 1
        return {n: v for n, v in self.values.items() if n.startswith(path + "/")}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _directory(ssm: _Ssm, clock: _Clock | None = None) -> org_claim.ClientDirectory:
    return org_claim.ClientDirectory(PATH, ssm, clock=clock or _Clock(), refresh_seconds=60)


def _event(template: dict[str, Any]) -> dict[str, Any]:
    """As Lambda hands it over: parsed from JSON."""
    return dict(json.loads(json.dumps(copy.deepcopy(template))))


def _answer(event: dict[str, Any], directory: org_claim.ClientDirectory) -> dict[str, Any]:
    organization = directory.organization(org_claim.client_id_of(event))
    answer = org_claim.with_org_claim(event, organization, "org")
    return dict(json.loads(json.dumps(answer)))  # what Lambda sends back to Cognito


SSM_VALUES = {
    PARAMETERS["acme"]: ACME_CLIENT,
    PARAMETERS["globex"]: GLOBEX_CLIENT,
    # neighbours that are no client id of an organization: never mapped
    f"{PATH}/initech/secret": "0unknownclient0000000000000",
    f"{PATH}-old/umbrella/client-id": "0unknownclient0000000000000",
    "/agentfoundry/staging/platform/identity/issuer-url": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
}


def test_a_client_credentials_token_gets_its_clients_organization_in_the_access_token() -> None:
    answer = _answer(_event(CLIENT_CREDENTIALS_EVENT), _directory(_Ssm(SSM_VALUES)))
    assert answer["response"]["claimsAndScopeOverrideDetails"] == {
        "accessTokenGeneration": {"claimsToAddOrOverride": {"org": "acme"}}
    }
    assert {k: v for k, v in answer.items() if k != "response"} == {
        k: v for k, v in CLIENT_CREDENTIALS_EVENT.items() if k != "response"
    }, "nothing else of the event changes"


def test_a_users_sign_in_gets_the_organization_in_the_access_and_id_tokens() -> None:
    answer = _answer(_event(USER_EVENT), _directory(_Ssm(SSM_VALUES)))
    details = answer["response"]["claimsAndScopeOverrideDetails"]
    assert details["accessTokenGeneration"] == {"claimsToAddOrOverride": {"org": "globex"}}
    assert details["idTokenGeneration"] == {"claimsToAddOrOverride": {"org": "globex"}}


def test_a_client_of_no_organization_gets_no_token() -> None:
    event = _event(CLIENT_CREDENTIALS_EVENT)
    event["callerContext"]["clientId"] = "0unknownclient0000000000000"
    with pytest.raises(org_claim.OrgClaimError, match=r"'0unknownclient0000000000000' belongs to no organization"):
        _answer(event, _directory(_Ssm(SSM_VALUES)))
    with pytest.raises(org_claim.OrgClaimError, match=r"organizations: acme, globex, from the parameters under /agent"):
        _answer(event, _directory(_Ssm(SSM_VALUES)))


def test_parameters_are_read_once_and_again_only_when_an_unknown_client_asks_after_the_refresh_interval() -> None:
    ssm, clock = _Ssm({PARAMETERS["acme"]: ACME_CLIENT}), _Clock()
    directory = _directory(ssm, clock)
    assert directory.organization(ACME_CLIENT) == "acme"
    assert directory.organization(ACME_CLIENT) == "acme"
    assert ssm.reads == 1
    ssm.values[PARAMETERS["globex"]] = GLOBEX_CLIENT  # globex's client is created after the function first ran
    for _ in range(5):
        with pytest.raises(org_claim.OrgClaimError):
            directory.organization(GLOBEX_CLIENT)
    assert ssm.reads == 1, "unknown clients within the interval do not make it read SSM again"
    clock.now += 60
    assert directory.organization(GLOBEX_CLIENT) == "globex"
    assert ssm.reads == 2


def test_an_event_version_that_cannot_change_the_access_token_is_refused() -> None:
    event = _event({**CLIENT_CREDENTIALS_EVENT, "version": "1"})
    with pytest.raises(org_claim.OrgClaimError, match=r"version '1'.*V3_0"):
        _answer(event, _directory(_Ssm(SSM_VALUES)))


def test_an_event_without_a_client_is_refused() -> None:
    event = _event(CLIENT_CREDENTIALS_EVENT)
    del event["callerContext"]
    with pytest.raises(org_claim.OrgClaimError, match=r"callerContext\.clientId"):
        org_claim.client_id_of(event)


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


def test_the_lambda_entry_point_reads_the_parameters_the_platform_stack_writes(
    moto: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm = moto.client("ssm")
    for index in range(25):  # more than one page of GetParametersByPath (10)
        ssm.put_parameter(Name=f"{PATH}/org{index:02d}/client-id", Value=f"client{index:02d}", Type="String")
    for name, value in SSM_VALUES.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    for variable, value in moto.env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv(org_claim.PATH_VARIABLE, PATH)
    monkeypatch.setenv(org_claim.CLAIM_VARIABLE, "org")
    monkeypatch.setattr(org_claim, "_directory", None)
    for event, organization in ((CLIENT_CREDENTIALS_EVENT, "acme"), (USER_EVENT, "globex")):
        answer = org_claim.handler(_event(event), None)
        claims = answer["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
        assert claims == {"org": organization}
    event = _event(CLIENT_CREDENTIALS_EVENT)
    event["callerContext"]["clientId"] = "client24"
    assert org_claim.handler(event, None)["response"]["claimsAndScopeOverrideDetails"] == {
        "accessTokenGeneration": {"claimsToAddOrOverride": {"org": "org24"}}
    }
