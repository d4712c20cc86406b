"""Where keys may be fetched from. Import-light on purpose: the runtime checks its settings before it loads anything
heavy."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def check_fetch_url(url: str, what: str) -> str:
    """https, or plain http on loopback only (the local development issuer): keys fetched in clear text over a
    network could be replaced on the way."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_url(url):
        return url
    raise ValueError(f"{what} must be an https:// URL (http:// only on 127.0.0.1/localhost), got {url!r}")
