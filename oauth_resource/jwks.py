"""The issuer's signing keys, fetched over HTTP and cached by key id.

Keys are read once and kept for `max_age`, the refresh interval: a key that left the issuer's set is dropped at the
next refresh, and the verifier then refuses even the tokens it had accepted with it. A token that names a key id we
do not hold makes us fetch again (so a rotated key is picked up without a restart), but at most once per
`min_refetch_interval`: a stream of forged key ids cannot turn us into a load generator against the issuer. If the
issuer cannot be reached the keys we hold keep working and the failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from oauth_resource.urls import check_fetch_url

log = logging.getLogger("oauth_resource.jwks")

ALLOWED_ALGORITHMS = ("RS256", "ES256")
"""Asymmetric only: never `none`, never an HMAC algorithm (whose key would be the public key everyone has)."""
KEY_TYPE_ALGORITHM = {"RSA": "RS256", "EC": "ES256"}
DEFAULT_MAX_AGE = 3600.0
DEFAULT_MIN_REFETCH_INTERVAL = 30.0
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 256 * 1024


class JwksError(Exception):
    """The issuer's discovery document or key set could not be read; the message says which URL and why."""


def discovery_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata lives: OpenID Connect discovery, then RFC 8414 (well-known before the path)."""
    base = issuer.rstrip("/")
    parts = urlsplit(base)
    rfc8414 = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    return [f"{base}/.well-known/openid-configuration", rfc8414]


def parse_key_set(document: Mapping[str, Any], *, source: str) -> dict[str, PyJWK]:
    """Signing keys by kid; keys we cannot use (no kid, encryption keys, symmetric or unknown types, an algorithm
    outside RS256/ES256) are skipped with a log line rather than failing the whole set."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise JwksError(f"{source}: not a JWK set (no 'keys' list)")
    usable: dict[str, PyJWK] = {}
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            continue
        kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
        algorithm = alg if alg is not None else KEY_TYPE_ALGORITHM.get(str(kty))
        if not isinstance(kid, str) or jwk.get("use", "sig") != "sig" or algorithm not in ALLOWED_ALGORITHMS:
            log.info("%s: key #%d skipped (kid=%r kty=%r alg=%r use=%r)", source, index, kid, kty, alg, jwk.get("use"))
            continue
        if KEY_TYPE_ALGORITHM.get(str(kty)) != algorithm:
            log.info("%s: key #%d skipped: kty %r cannot sign %s", source, index, kty, algorithm)
            continue
        try:
            usable[kid] = PyJWK(jwk, algorithm=algorithm)
        except PyJWKError as exc:
            log.info("%s: key #%d (%s) skipped: %s", source, index, kid, exc)
    return usable


class KeySet:
    """The issuer's keys by kid, with discovery of the JWKS URL when none is configured."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_uri: str | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        min_refetch_interval: float = DEFAULT_MIN_REFETCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the key set was fetched (for tests and the status tool)."""

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self.max_age

    async def key(self, kid: str) -> PyJWK | None:
        """The key with this id, fetching the set again if it is unknown or stale (rate-limited)."""
        key = self._keys.get(kid)
        if key is not None and self._fresh(self._clock()):
            return key
        async with self._lock:
            now = self._clock()
            key = self._keys.get(kid)
            if key is not None and self._fresh(now):
                return key  # another request refreshed the set while we waited
            if self._fetched_at is not None and now - self._fetched_at < self.min_refetch_interval:
                return key  # asked too recently: an unknown kid stays unknown until the interval has passed
            try:
                await self.refresh()
            except JwksError as exc:
                self._fetched_at = now  # count the failed attempt against the interval too
                log.warning("signing keys not refreshed: %s", exc)
            return self._keys.get(kid)

    async def refresh(self) -> None:
        async with httpx2.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
            if self.jwks_uri is None:
                self.jwks_uri = await self._discover(http)
            document = await _get_json(http, self.jwks_uri)
        keys = parse_key_set(document, source=self.jwks_uri)
        self.fetches += 1
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("signing keys fetched from %s: %s", self.jwks_uri, ", ".join(sorted(keys)) or "none usable")

    async def _discover(self, http: httpx2.AsyncClient) -> str:
        problems = []
        for url in discovery_urls(self.issuer):
            try:
                metadata = await _get_json(http, url)
            except JwksError as exc:
                problems.append(str(exc))
                continue
            if metadata.get("issuer") != self.issuer:
                raise JwksError(f"{url}: names issuer {metadata.get('issuer')!r}, expected {self.issuer!r}")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise JwksError(f"{url}: has no jwks_uri")
            try:
                return check_fetch_url(jwks_uri, f"{url}: jwks_uri")
            except ValueError as exc:
                raise JwksError(str(exc)) from None
        raise JwksError("no discovery document: " + "; ".join(problems))


async def _get_json(http: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx2.HTTPError as exc:
        raise JwksError(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise JwksError(f"{url}: HTTP {response.status_code}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise JwksError(f"{url}: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = response.json()
    except ValueError:
        raise JwksError(f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise JwksError(f"{url}: not a JSON object")
    return document
