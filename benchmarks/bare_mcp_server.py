"""The yardstick of `streaming_benchmark.py`: the MCP SDK's own server with one no-op tool, served the way the
runtime serves (stateless streamable HTTP, JSON responses, uvicorn with httptools), so the difference between the
two is the runtime's own work per turn.

    .venv/bin/python benchmarks/bare_mcp_server.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer


def main() -> None:
    server = MCPServer("bare", log_level="WARNING")

    @server.tool()
    async def noop(message: str = "") -> str:
        """Does nothing."""
        return ""

    app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True)
    port = int(sys.argv[1])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, http="httptools")


if __name__ == "__main__":
    main()
