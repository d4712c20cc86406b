"""Amazon Cognito pre-token-generation trigger (event version V3_0): puts the caller's organization into its tokens.

The platform's user pool has one app client per organization, and the instances refuse a token without the
organization claim (AUTH_ORG_CLAIM, `org`). Cognito runs this function before it issues a token, for the client
credentials grant too (V3_0); the function maps the app client (`callerContext.clientId`) to its organization and
adds the claim to the access token (and to the ID token of a user sign-in). A client that belongs to no
organization gets no token at all: the function fails, and Cognito refuses the request.

Where the mapping comes from: the platform stack writes one SSM parameter per organization of the manifest,
`<ORG_CLIENT_ID_PATH>/<organization>/client-id`, holding that organization's client id (the same parameter its
instances read as AUTH_AUDIENCE). Client ids exist only once the clients do, and the pool needs this function
before its clients exist, so the ids cannot be in the function's own configuration without a dependency circle
(nor would hundreds of organizations fit in Lambda's 4 KB of environment). The parameters under the path are read
on the first call and again (at most once a minute) when an unknown client asks.

Deployed by constructs/af_org_claim_trigger.py. The standard library and boto3 (which Lambda's Python runtime
ships) only, so the function's code is this one file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

PATH_VARIABLE = "ORG_CLIENT_ID_PATH"
CLIENT_ID_LEAF = "client-id"
CLAIM_VARIABLE = "ORG_CLAIM"
REFRESH_SECONDS = 60.0
CLIENT_CREDENTIALS = "TokenGeneration_ClientCredentials"
EVENT_VERSIONS = ("2", "3")
"""Versions whose response can change the access token (V3_0 also runs for the client credentials grant)."""

Fetch = Callable[[str], Mapping[str, str]]
"""An SSM path -> the name and value of every parameter under it."""


class OrgClaimError(Exception):
    """The token must not be issued: the message says why (Cognito logs it; the caller gets an error)."""


def ssm_fetch(path: str) -> dict[str, str]:
    import boto3  # in Lambda's runtime; imported here so the mapping logic runs without it

    pages = boto3.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


class ClientDirectory:
    """Which organization each app client id belongs to, read from the SSM parameters under `path` and refreshed
    on a miss."""

    def __init__(
        self,
        path: str,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._path = path.rstrip("/")
        self._fetch = fetch
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._organizations: dict[str, str] = {}
        self._loaded_at: float | None = None

    def _load(self) -> None:
        organizations: dict[str, str] = {}
        for name, value in sorted(self._fetch(self._path).items()):
            organization, slash, leaf = name.removeprefix(self._path + "/").partition("/")
            if name.startswith(self._path + "/") and slash and leaf == CLIENT_ID_LEAF and organization and value:
                organizations[value] = organization
        self._organizations = organizations
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
                f"{', '.join(sorted(set(self._organizations.values()))) or 'none'}, from the parameters under "
                f"{self._path}); no token is issued"
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
        _directory = ClientDirectory(os.environ[PATH_VARIABLE], ssm_fetch)
    return _directory


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda's entry point (`org_claim.handler`)."""
    organization = _configured_directory().organization(client_id_of(event))
    return with_org_claim(event, organization, os.environ.get(CLAIM_VARIABLE, "org"))
