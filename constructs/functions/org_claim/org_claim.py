"""Amazon Cognito pre-token-generation trigger (event version V3_0): puts the caller's organization into its tokens.

The platform's user pool has one app client per organization, and the instances refuse a token without the
organization claim (AUTH_ORG_CLAIM, `org`). Cognito runs this function before it issues a token, for the client
credentials grant too (V3_0); the function maps the app client (`callerContext.clientId`) to its organization and
adds the claim to the access token (and to the ID token of a user sign-in). A client that belongs to no
organization gets no token at all: the function fails, and Cognito refuses the request.

Where the mapping comes from: `ORG_CLIENT_ID_PARAMETERS`, a JSON object {organization: SSM parameter name}
synthesized from the manifests; each parameter holds that organization's client id (the same parameter its
instances read as AUTH_AUDIENCE). Client ids exist only once the clients do, and the pool needs this function
before its clients exist, so the ids cannot be in the function's own configuration without a dependency circle.
The parameters are read on the first call and again (at most once a minute) when an unknown client asks.

Deployed by constructs/af_org_claim_trigger.py. The standard library and boto3 (which Lambda's Python runtime
ships) only, so the function's code is this one file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PARAMETERS_VARIABLE = "ORG_CLIENT_ID_PARAMETERS"
CLAIM_VARIABLE = "ORG_CLAIM"
REFRESH_SECONDS = 60.0
CLIENT_CREDENTIALS = "TokenGeneration_ClientCredentials"
EVENT_VERSIONS = ("2", "3")
"""Versions whose response can change the access token (V3_0 also runs for the client credentials grant)."""
_GET_PARAMETERS_BATCH = 10

Fetch = Callable[[Sequence[str]], Mapping[str, str]]
"""SSM parameter names -> their values; names that do not exist (yet) are left out."""


class OrgClaimError(Exception):
    """The token must not be issued: the message says why (Cognito logs it; the caller gets an error)."""


def ssm_fetch(names: Sequence[str]) -> dict[str, str]:
    import boto3  # in Lambda's runtime; imported here so the mapping logic runs without it

    client = boto3.client("ssm")
    values: dict[str, str] = {}
    for start in range(0, len(names), _GET_PARAMETERS_BATCH):
        answer = client.get_parameters(Names=list(names[start : start + _GET_PARAMETERS_BATCH]))
        values.update({p["Name"]: p["Value"] for p in answer["Parameters"]})
    return values


class ClientDirectory:
    """Which organization each app client id belongs to, read from the SSM parameters and refreshed on a miss."""

    def __init__(
        self,
        parameters: Mapping[str, str],
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._parameters = dict(parameters)
        self._fetch = fetch
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._organizations: dict[str, str] = {}
        self._loaded_at: float | None = None

    def _load(self) -> None:
        values = self._fetch(sorted(self._parameters.values()))
        self._organizations = {
            values[name]: organization for organization, name in self._parameters.items() if values.get(name)
        }
        self._loaded_at = self._clock()

    def organization(self, client_id: str) -> str:
        if client_id not in self._organizations and (
            self._loaded_at is None or self._clock() - self._loaded_at >= self._refresh_seconds
        ):
            self._load()
        try:
            return self._organizations[client_id]
        except KeyError:
            raise OrgClaimError(
                f"app client {client_id!r} belongs to no organization of this user pool (its organizations: "
                f"{', '.join(sorted(self._parameters)) or 'none'}); no token is issued"
            ) from None


def with_org_claim(event: dict[str, Any], organization: str, claim: str) -> dict[str, Any]:
    """The event with its response asking Cognito to add `claim: organization` to the tokens it issues."""
    version = str(event.get("version", ""))
    if version not in EVENT_VERSIONS:
        raise OrgClaimError(
            f"pre-token-generation event version {version!r}: the user pool must send V3_0 (V2_0 at least) events, "
            "or the access token cannot carry the organization; set the trigger's lambda_version to V3_0"
        )
    add = {"claimsToAddOrOverride": {claim: organization}}
    details: dict[str, Any] = {"accessTokenGeneration": add}
    if event.get("triggerSource") != CLIENT_CREDENTIALS:  # a user sign-in also gets an ID token
        details["idTokenGeneration"] = add
    event.setdefault("response", {})["claimsAndScopeOverrideDetails"] = details
    return event


def client_id_of(event: Mapping[str, Any]) -> str:
    caller = event.get("callerContext")
    client_id = caller.get("clientId") if isinstance(caller, Mapping) else None
    if not isinstance(client_id, str) or not client_id:
        raise OrgClaimError("the event names no app client (callerContext.clientId); no token is issued")
    return client_id


_directory: ClientDirectory | None = None


def _configured_directory() -> ClientDirectory:
    global _directory
    if _directory is None:
        parameters = json.loads(os.environ[PARAMETERS_VARIABLE])
        _directory = ClientDirectory(parameters, ssm_fetch)
    return _directory


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda's entry point (`org_claim.handler`)."""
    organization = _configured_directory().organization(client_id_of(event))
    return with_org_claim(event, organization, os.environ.get(CLAIM_VARIABLE, "org"))
