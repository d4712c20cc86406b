"""The HTTP transport the backend reaches external MCP servers through, passed to the MCP SDK's client as its httpx
client's transport (the protocol stays the SDK's). It fences two things the SDK leaves open:

- Where it connects. Every request's host is resolved here, each address is checked against the egress rule
  (instance_contract.egress: no loopback, private or link-local targets, never the instance's own port), and the
  connection goes to the checked address (the TLS name stays the host's), so a name cannot resolve one way for the
  check and another for the connect.
- How much it reads. Every response body is cut off while it streams, once past the operation's byte limit: the SDK
  reads a JSON answer whole (`response.aread()`), so without this a 200-million-character answer is held in memory
  before any size check can run.

What the transport refused is noted on the operation's `Exchange`: the SDK turns these failures into generic
protocol errors, and the caller words the error for the operator from the note.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_address

import httpx2

from instance_contract.egress import IpAddress, address_refusal


@dataclass
class EgressPolicy:
    """The instance's egress setting (its environment's `egress` in agents/platform.yaml, via the bundle)."""

    allow_private_targets: bool = False
    own_ports: set[int] = field(default_factory=set)
    """Ports this process serves on (filled in when its HTTP server binds): a loopback target on one is refused."""


@dataclass
class Exchange:
    """What the transport saw during one operation (listing tools, or one call)."""

    limit: int
    """Largest response body, in bytes."""
    overflow: bool = False
    refusal: str | None = None
    statuses: list[int] = field(default_factory=list)


class EgressRefused(httpx2.ConnectError):
    """The target resolves to an address the egress rule refuses; nothing was sent to it."""


class BodyTooLarge(httpx2.StreamError):
    """A response body went past the operation's limit; the connection was closed."""


class _LimitedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, exchange: Exchange) -> None:
        self._stream = stream
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._stream:
            received += len(chunk)
            if received > self._exchange.limit:
                self._exchange.overflow = True
                raise BodyTooLarge(f"response body is over the limit of {self._exchange.limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class EgressTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport underneath (pooling, TLS), given only checked addresses; responses come back limited."""

    def __init__(self, policy: EgressPolicy, exchange: Exchange) -> None:
        self._policy = policy
        self._exchange = exchange
        # trust_env here reads only SSL_CERT_FILE / SSL_CERT_DIR (a CA bundle of the operator's); proxies come from
        # the client, which is made with trust_env=False: a proxy would connect to addresses this never checked.
        self._inner = httpx2.AsyncHTTPTransport(trust_env=True)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        host = url.raw_host.decode("ascii")  # IDNA-encoded: what DNS and the TLS name check expect
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._checked_address(host, port, request)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host  # certificate checked against the name, not the pinned address
        pinned = httpx2.Request(
            request.method,
            url.copy_with(host=str(address)),
            headers=request.headers,  # Host: the name, as written
            stream=request.stream,
            extensions=extensions,
        )
        response = await self._inner.handle_async_request(pinned)
        self._exchange.statuses.append(response.status_code)
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_LimitedStream(stream, self._exchange),
            extensions=response.extensions,
        )

    async def _checked_address(self, host: str, port: int, request: httpx2.Request) -> IpAddress:
        """The first address `host` resolves to, if the egress rule allows every one of them."""
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpx2.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        addresses = [ip_address(sockaddr[0]) for *_, sockaddr in found]
        own_ports = frozenset(self._policy.own_ports)
        for address in addresses:
            refusal = address_refusal(
                address, port, allow_private=self._policy.allow_private_targets, own_ports=own_ports
            )
            if refusal is not None:
                named = f"{host} resolves to {address} ({refusal})" if host != str(address) else refusal
                allowed = "" if self._policy.allow_private_targets else " (egress.allow_private_targets is off)"
                self._exchange.refusal = f"{named}; the instance's egress rule refuses it{allowed}"
                raise EgressRefused(self._exchange.refusal, request=request)
        if not addresses:
            raise httpx2.ConnectError(f"{host} resolves to no address", request=request)
        return addresses[0]

    async def aclose(self) -> None:
        await self._inner.aclose()
