"""An external MCP server that answers too much, as a process of its own (its memory is not the runtime's):
the SDK's MCPServer over streamable HTTP with plain JSON answers (the path on which the SDK's client reads a body
whole), on 127.0.0.1 and a free port it prints on stdout.

    python -m tests.runtime.hostile_mcp_server --answer-chars N [--listing-chars M]

`create_ticket` answers with N characters; with M, the tool listing carries a description of M characters.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
def serve_hostile(*, answer_chars: int, listing_chars: int = 0) -> Iterator[HostileServer]:
    """Starts the server in a child process; stops it on exit."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.runtime.hostile_mcp_server",
            f"--answer-chars={answer_chars}",
            f"--listing-chars={listing_chars}",
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
        yield HostileServer(url=f"http://127.0.0.1:{port}/mcp", process=process)
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answer-chars", type=int, required=True)
    parser.add_argument("--listing-chars", type=int, default=0)
    args = parser.parse_args()
    app = build(args.answer_chars, args.listing_chars).streamable_http_app(json_response=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])


if __name__ == "__main__":
    main()
