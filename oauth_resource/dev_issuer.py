"""A local token issuer for development and tests: real keys on disk, its JWKS and discovery documents served over
HTTP on 127.0.0.1, and development tokens signed with the current key.

    keys/<kid>.pem   private keys (0600); every key is published, the one named in `current` signs
    current          the signing key's id
    issuer           the issuer URL, written when the HTTP server starts (the `token` command reads it)

Rotating adds a new key and makes it current; the old key stays published so tokens it signed keep working until
they expire, or until it is removed (`remove_key`: verifiers refuse its tokens once their key set is
refreshed). It is not an authorization server for anything but loopback development: no token endpoint, no clients.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

KeyAlgorithm = Literal["ES256", "RS256"]
DEFAULT_TTL_SECONDS = 3600


class DevIssuerError(Exception):
    """The key folder is missing or unusable; the message names the file."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: KeyAlgorithm
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            jwk = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        else:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def generate_key(algorithm: KeyAlgorithm = "ES256") -> SigningKey:
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid=f"dev-{secrets.token_hex(6)}", algorithm=algorithm, private_key=private)


class DevIssuer:
    """The key folder of a local issuer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def _keys_dir(self) -> Path:
        return self.folder / "keys"

    def ensure_key(self, algorithm: KeyAlgorithm = "ES256") -> SigningKey:
        """The current key, creating the folder and a first key if there is none."""
        if (self.folder / "current").exists():
            return self.current_key()
        return self.rotate(algorithm)

    def rotate(self, algorithm: KeyAlgorithm = "ES256") -> SigningKey:
        key = generate_key(algorithm)
        self.add_key(key)
        _write(self.folder / "current", key.kid)
        return key

    def add_key(self, key: SigningKey) -> None:
        """Publish a key without making it current."""
        self._keys_dir.mkdir(parents=True, exist_ok=True)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self._keys_dir / f"{key.kid}.{key.algorithm}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    def remove_key(self, kid: str) -> None:
        """Unpublish a key (a retired or compromised one): tokens it signed stop being accepted once a verifier's
        key set is refreshed. The current key cannot be removed; rotate first."""
        current = self.folder / "current"
        if current.exists() and current.read_text().strip() == kid:
            raise DevIssuerError(f"{kid} is the current signing key: rotate before removing it")
        found = [p for p in self._keys_dir.glob("*.pem") if p.name.rsplit(".", 2)[0] == kid]
        if not found:
            raise DevIssuerError(f"no key {kid!r} in {self._keys_dir}")
        for path in found:
            path.unlink()

    def keys(self) -> list[SigningKey]:
        found = []
        for path in sorted(self._keys_dir.glob("*.pem")):
            kid, algorithm, _ = path.name.rsplit(".", 2)
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if algorithm not in ("ES256", "RS256") or not isinstance(
                private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
            ):
                raise DevIssuerError(f"{path}: not an ES256 or RS256 private key")
            found.append(SigningKey(kid=kid, algorithm=algorithm, private_key=private))  # type: ignore[arg-type]
        return found

    def current_key(self) -> SigningKey:
        current = self.folder / "current"
        if not current.exists():
            raise DevIssuerError(f"{current}: no signing key yet; start `python -m runtime dev-issuer` first")
        kid = current.read_text().strip()
        for key in self.keys():
            if key.kid == kid:
                return key
        raise DevIssuerError(f"{current}: names key {kid!r}, which is not in {self._keys_dir}")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys()]}

    @property
    def issuer(self) -> str:
        path = self.folder / "issuer"
        if not path.exists():
            raise DevIssuerError(f"{path}: no issuer URL yet; start `python -m runtime dev-issuer` first")
        return path.read_text().strip()

    def mint(
        self,
        *,
        subject: str,
        organization: str,
        audience: str,
        scopes: list[str],
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        org_claim: str = "org",
        issuer: str | None = None,
        extra: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
    ) -> str:
        """A signed access token (RFC 9068 shape) for a runtime that trusts this issuer."""
        signing = key or self.current_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(8),
            "client_id": subject,
            "scope": " ".join(scopes),
            org_claim: organization,
            **(extra or {}),
        }
        return jwt.encode(
            claims, signing.private_key, algorithm=signing.algorithm, headers={"kid": signing.kid, "typ": "at+jwt"}
        )


def metadata(issuer: str) -> dict[str, Any]:
    """The discovery document: OpenID Connect's and RFC 8414's share these fields."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "token_endpoint": f"{issuer}/token-not-supported",
        "response_types_supported": [],
        "grant_types_supported": [],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "subject_types_supported": ["public"],
    }


class _Handler(BaseHTTPRequestHandler):
    issuer_state: DevIssuer
    requests_seen: list[str]

    def do_GET(self) -> None:
        issuer = self.issuer_state.issuer
        self.requests_seen.append(self.path)
        if self.path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            self._json(metadata(issuer))
        elif self.path == "/jwks.json":
            self._json(self.issuer_state.jwks())
        else:
            self._json({"error": "not_found"}, status=404)

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class RunningIssuer:
    issuer: DevIssuer
    server: ThreadingHTTPServer
    requests: list[str]
    """Every path the issuer was asked for (tests count JWKS fetches with it)."""

    @property
    def url(self) -> str:
        return self.issuer.issuer


@contextmanager
def serve_issuer(folder: Path, *, port: int = 0, algorithm: KeyAlgorithm = "ES256") -> Iterator[RunningIssuer]:
    """Serves discovery and JWKS on 127.0.0.1 in a background thread, for as long as the block runs."""
    issuer = DevIssuer(folder)
    issuer.ensure_key(algorithm)
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"issuer_state": issuer, "requests_seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    _write(folder / "issuer", f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="dev-issuer", daemon=True)
    thread.start()
    try:
        yield RunningIssuer(issuer, server, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)
