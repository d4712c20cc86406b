"""An external MCP server that answers too much, as a process of its own (its memory is not the runtime's):
the SDK's MCPServer over streamable HTTP with plain JSON answers (the path on which the SDK's client reads a body
whole), on 127.0.0.1 and a free port it prints on stdout.

    python -m tests.runtime.hostile_mcp_server --answer-chars N [--listing-chars M] [--tls CERT KEY] [--sse]

`create_ticket` answers with N characters; with M, the tool listing carries a description of M characters; with
--tls it serves https with that certificate and key; with --sse it answers as server-sent events.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer

OUTAGE = "Open a new ticket in the tracker for a bug, incident or outage."


def build(answer_chars: int, listing_chars: int) -> MCPServer:
    server = MCPServer("hostile", log_level="WARNING")

    @server.tool(description=OUTAGE, structured_output=False)
    async def create_ticket(summary: str) -> str:
        return "x" * answer_chars

    if listing_chars:

        @server.tool(description="y" * listing_chars, structured_output=False)
        async def verbose() -> str:
            return "ok"

    return server


@dataclass
class HostileServer:
    url: str
    process: subprocess.Popen[str]


@contextmanager
def serve_hostile(
    *, answer_chars: int, listing_chars: int = 0, tls: tuple[Path, Path] | None = None, sse: bool = False
) -> Iterator[HostileServer]:
    """Starts the server in a child process; stops it on exit. With `tls` (certificate, key) it serves https and
    its URL names `localhost`."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.runtime.hostile_mcp_server",
            f"--answer-chars={answer_chars}",
            f"--listing-chars={listing_chars}",
            *(["--tls", str(tls[0]), str(tls[1])] if tls else []),
            *(["--sse"] if sse else []),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip() or "0")
        if not port:
            raise RuntimeError("the hostile MCP server did not start")
        url = f"https://localhost:{port}/mcp" if tls else f"http://127.0.0.1:{port}/mcp"
        yield HostileServer(url=url, process=process)
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answer-chars", type=int, required=True)
    parser.add_argument("--listing-chars", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--sse", action="store_true")
    args = parser.parse_args()
    cert, key = args.tls or (None, None)
    app = build(args.answer_chars, args.listing_chars).streamable_http_app(json_response=not args.sse)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections made before uvicorn starts wait in the backlog
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ssl_certfile=cert, ssl_keyfile=key)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
