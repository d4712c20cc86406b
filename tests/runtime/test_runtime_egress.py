"""The backend's egress to external MCP servers, against real servers over real HTTP: answers and listings are cut
off at their limits while they stream (a served runtime's peak memory stays flat under a 200-million-character
answer, and the turn goes on), and a name that resolves to a loopback address, or the instance's own port, is
refused before anything is sent."""

from __future__ import annotations

import asyncio
import datetime
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client

from instance_contract.schema import ExternalMcpServer
from runtime.backend.egress_http import EgressPolicy
from runtime.backend.external_mcp import ExternalServers, ExternalToolError
from runtime.bundle_source import load_bundle
from runtime.config import ExpectedIdentity, Secrets, config_from_env
from runtime.edge.server import DrainingServer, build_http_app
from runtime.instance import Instance
from tests.foundry.manifest_edits import Doc, allow_private_targets, edit
from tests.runtime.hostile_mcp_server import serve_hostile
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, copy_agents, serve, write_bundles

pytestmark = pytest.mark.slow

INSTANCE = "default-org/default-domain/dev"
REQUEST = "Please open a ticket: the checkout outage since noon"
TOKEN = "tck-token"
MB = 1024 * 1024


def _bundle(root: Path, url: str, *, max_response_bytes: int = 1000) -> BuiltBundle:
    agents = copy_agents(root / "agents")
    allow_private_targets(agents)  # a fixture tree: its servers listen on 127.0.0.1
    server: Doc = {
        "name": "ticketing",
        "url": url,
        "bearer_secret": "ticket-api-token",
        "timeout_seconds": 60,
        "max_response_bytes": max_response_bytes,
    }
    edit(agents / "manifests" / "manifest.instance-template.yaml", lambda d: d["spec"]["mcp"].update(servers=[server]))
    edit(agents / "specs/workers/ticket-agent.yaml", lambda d: d["spec"]["tools"].append("ticketing.create_ticket"))
    (built,) = write_bundles(agents, root / "bundle", INSTANCE)
    return built


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


async def _invoke(process: RuntimeProcess, message: str, thread: str) -> dict[str, Any]:
    async with Client(process.url) as client:
        result = await client.call_tool("invoke", {"message": message, "thread_id": thread})
    answer = result.structured_content
    assert isinstance(answer, dict), result  # an answer, failed or not: the turn ran to its end
    assert result.is_error == (not answer["ok"])
    return answer


async def test_a_200_million_character_answer_is_cut_off_and_the_served_turn_goes_on(
    tmp_path: Path, runtime_factory: list[RuntimeProcess]
) -> None:
    with serve_hostile(answer_chars=200_000_000) as hostile:
        built = _bundle(tmp_path, hostile.url)
        process = serve({**built.identity_env(), "SECRET_TICKET_API_TOKEN": TOKEN})
        runtime_factory.append(process)
        warm = await _invoke(process, "plan the roadmap for next quarter", "warm-up")
        assert warm["ok"], warm
        before = _peak_rss(process.process.pid)

        flooded = await _invoke(process, REQUEST, "flooded")
        grown = _peak_rss(process.process.pid) - before

        after = await _invoke(process, "plan the roadmap for next quarter", "after")
    assert grown < 50 * MB, f"peak RSS grew by {grown / MB:.1f} MB"
    assert not flooded["ok"]
    calls = [(c["server"], c["tool"], c["status"]) for c in flooded["tool_calls"]]
    assert calls == [("ticketing", "create_ticket", "error")]
    assert after["ok"], after  # the process serves on
    process.terminate()
    logs = process.stderr_text()
    assert "MCP server 'ticketing' answered calling create_ticket with more than" in logs
    assert "the limit is 1000 (max_response_bytes); the transfer was stopped" in logs


def _servers(
    url: str,
    *,
    allow_private: bool,
    own_ports: set[int] | None = None,
    max_listing_bytes: int = 1_000_000,
    max_response_bytes: int = 1_000_000,
) -> ExternalServers:
    server = ExternalMcpServer(
        name="ticketing",
        url=url,
        timeout_seconds=20.0,
        max_listing_bytes=max_listing_bytes,
        max_response_bytes=max_response_bytes,
    )
    policy = EgressPolicy(allow_private_targets=allow_private, own_ports=own_ports or set())
    return ExternalServers([server], Secrets({}), policy)


async def test_a_tool_listing_over_its_limit_is_refused_and_a_small_one_is_read() -> None:
    with serve_hostile(answer_chars=10, listing_chars=5_000_000) as hostile:
        with pytest.raises(ExternalToolError) as caught:
            await _servers(hostile.url, allow_private=True, max_listing_bytes=20_000).tools("ticketing")
        listed = await _servers(hostile.url, allow_private=True).all_tools()
    assert "answered listing tools with more than 20000 bytes" in str(caught.value)
    assert "the limit is 20000 (max_listing_bytes)" in str(caught.value)
    assert listed == []  # the default 1,000,000 is below 5,000,000 too: the server contributes no tools
    with serve_hostile(answer_chars=10) as small:
        tools = await _servers(small.url, allow_private=True).tools("ticketing")
    assert [t.name for t in tools] == ["ticketing.create_ticket"]


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
async def test_an_answer_within_a_large_limit_arrives_whole_and_one_past_it_is_cut(sse: bool) -> None:
    """Both the SDK's answer forms: plain JSON, and server-sent events (whose SDK default of 1 MiB per event would
    otherwise refuse a result the server's max_response_bytes allows)."""
    with serve_hostile(answer_chars=1_500_000, sse=sse) as hostile:
        result = await _servers(hostile.url, allow_private=True, max_response_bytes=2_000_000).call(
            "ticketing.create_ticket", {"summary": "x"}
        )
        with pytest.raises(ExternalToolError, match=r"the limit is 1000000 \(max_response_bytes\)"):
            await _servers(hostile.url, allow_private=True).call("ticketing.create_ticket", {"summary": "x"})
    assert len(result.text) == 1_500_000


@contextmanager
def _counting_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP listener on 127.0.0.1 that only counts the connections made to it."""
    accepted: list[socket.socket] = []
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.05)

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1], accepted
        finally:
            stop.set()
            thread.join(timeout=5)
            for conn in accepted:
                conn.close()


@pytest.mark.parametrize("name", ["localhost", "LocalHost"])  # names (resolved via /etc/hosts) of 127.0.0.1
async def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time(name: str) -> None:
    assert socket.gethostbyname(name) == "127.0.0.1"
    with _counting_listener() as (port, accepted):
        servers = _servers(f"https://{name}:{port}/mcp", allow_private=False)
        with pytest.raises(ExternalToolError) as caught:
            await servers.call("ticketing.create_ticket", {"summary": "x"})
        assert accepted == []  # nothing reached the port
    message = str(caught.value)
    assert "was not contacted" in message and "resolves to 127.0.0.1" in message and "loopback" in message
    assert "egress.allow_private_targets is off" in message


async def test_allowed_private_targets_still_refuse_the_instances_own_port() -> None:
    with _counting_listener() as (port, accepted):
        servers = _servers(f"http://127.0.0.1:{port}/mcp", allow_private=True, own_ports={port})
        with pytest.raises(ExternalToolError, match=r"this instance's own port"):
            await servers.call("ticketing.create_ticket", {"summary": "x"})
        assert accepted == []


async def test_a_served_instance_never_calls_its_own_port(
    tmp_path: Path, runtime_factory: list[RuntimeProcess]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    built = _bundle(tmp_path, f"http://127.0.0.1:{port}/mcp")
    process = serve({**built.identity_env(), "SECRET_TICKET_API_TOKEN": TOKEN}, "--port", str(port))
    runtime_factory.append(process)
    assert process.port == port
    answer = await _invoke(process, REQUEST, "self")
    assert not answer["ok"]
    process.terminate()
    assert f"127.0.0.1 port {port} is this instance's own port" in process.stderr_text()


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for the DNS name `localhost` only (no IP address in it): (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca_cert = issue("egress test CA", ca_name, ca_key, ca_key, ca=True)
    leaf = issue("localhost", ca_name, leaf_key, ca_key, ca=False)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def test_https_goes_to_the_pinned_address_with_the_names_certificate_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the checked address while TLS still verifies the certificate against the URL's name
    (its only name is `localhost`): the pinning must not turn into a certificate mismatch."""
    ca, cert, key = _tls_files(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with serve_hostile(answer_chars=12, tls=(cert, key)) as hostile:
        assert hostile.url.startswith("https://localhost:")
        result = await _servers(hostile.url, allow_private=True).call("ticketing.create_ticket", {"summary": "x"})
        with pytest.raises(ExternalToolError, match=r"IP address mismatch|certificate verify failed"):
            await _servers(hostile.url.replace("localhost", "127.0.0.1"), allow_private=True).call(
                "ticketing.create_ticket", {"summary": "x"}
            )
    assert result.text == "x" * 12


async def test_the_http_server_adds_the_port_it_bound_to_the_instances_own_ports(tmp_path: Path) -> None:
    """With port 0 (a free port) the instance learns its own port only when uvicorn binds: from then on its
    backend refuses it like the configured one."""
    built = _bundle(tmp_path, "http://127.0.0.1:9/mcp")
    config = config_from_env({"AUTH_MODE": "none"}, bundle=str(built.path), host="127.0.0.1", port=0, state="memory://")
    instance = Instance(
        bundle=load_bundle(str(built.path), expected_hash=built.content_hash, identity=ExpectedIdentity()),
        config=config,
    )
    assert instance.egress.own_ports == set()
    uv_config = uvicorn.Config(build_http_app(instance), host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = DrainingServer(uv_config, instance)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            await asyncio.sleep(0.02)
    try:
        (bound,) = {sock.getsockname()[1] for listener in server.servers for sock in listener.sockets}
        assert instance.egress.own_ports == {bound}
        servers = ExternalServers(
            [ExternalMcpServer(name="ticketing", url=f"http://127.0.0.1:{bound}/mcp")], Secrets({}), instance.egress
        )
        with pytest.raises(ExternalToolError, match=rf"127\.0\.0\.1 port {bound} is this instance's own port"):
            await servers.call("ticketing.create_ticket", {"summary": "x"})
    finally:
        server.should_exit = True
        await serving
