"""Where an instance's backend may connect: external MCP servers are `https` to a public DNS name.

One rule, applied twice: `validate` checks the URL as written (IP literals, `localhost`, single-label and
special-use names are refused), and the runtime checks every address a name resolves to when it connects (a public
name can resolve to 127.0.0.1 or to the cloud's metadata service). An environment for local development may allow
private targets (`egress.allow_private_targets` in agents/platform.yaml), which also allows plain `http` on
loopback; link-local addresses and the instance's own port stay refused even then. Pure: no I/O.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

INSTANCE_PORT = 8080
"""The port the runtime serves on in its container: a loopback URL on it would call the instance itself."""

SPECIAL_USE_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa", "lan", "arpa", "invalid")
"""Names no public DNS answers for (RFC 6761/6762/8375 and common private zones)."""
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")

IpAddress = IPv4Address | IPv6Address

RULE = "an external MCP server must be https to a public DNS name"
HINT = (
    "for local development, the environment may allow it in agents/platform.yaml: egress: {allow_private_targets: true}"
)


def address_kind(address: IpAddress) -> str | None:
    """What makes `address` not a public one ('loopback', 'link-local', ...), or None for a public address."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, applies in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if applies:
            return kind
    return None if address.is_global else "private"


def address_refusal(address: IpAddress, port: int, *, allow_private: bool, own_ports: frozenset[int]) -> str | None:
    """Why the backend may not connect to `address`:`port`, or None. Link-local (the metadata service lives there),
    multicast, reserved and unspecified addresses are always refused; loopback and private ones unless the
    environment allows private targets; the instance's own port on loopback always."""
    kind = address_kind(address)
    if kind is None:
        return None
    if kind in ("loopback", "unspecified") and port in own_ports:
        return f"{address} port {port} is this instance's own port"
    if kind in ("loopback", "private") and allow_private:
        return None
    return f"{address} is a {kind} address"


def _is_public_name(host: str) -> bool:
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    if any(host == suffix or host.endswith(f".{suffix}") for suffix in SPECIAL_USE_SUFFIXES):
        return False
    return bool(_TLD.match(labels[-1]))


def url_refusal(url: str, *, allow_private: bool, own_ports: frozenset[int] = frozenset({INSTANCE_PORT})) -> str | None:
    """Why `url` may not name an external MCP server, or None. The sentence is written for the person who must fix
    the manifest."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{url!r} has an invalid port"
    try:
        address: IpAddress | None = ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        refusal = address_refusal(address, port, allow_private=allow_private, own_ports=own_ports)
        if refusal is None and address_kind(address) is None:
            refusal = f"{host} is an IP address"
        loopback = address_kind(address) == "loopback"
    elif host == "localhost" or host.endswith(".localhost"):
        loopback = True
        refusal = f"{host} is this machine (loopback)" if not allow_private else None
        if port in own_ports:
            refusal = f"{host} port {port} is this instance's own port"
    else:
        loopback = False
        refusal = None if allow_private or _is_public_name(host) else f"{host!r} is not a public DNS name"
    if refusal is None and parts.scheme != "https" and not (allow_private and loopback):
        refusal = "plain http is allowed only to loopback in an environment that allows private targets"
    if refusal is None:
        return None
    fixable = any(word in refusal for word in ("loopback", "private", "public DNS", "plain http"))
    hint = f" ({HINT})" if fixable and not allow_private else ""
    return f"{url!r}: {refusal}; {RULE}{hint}"
