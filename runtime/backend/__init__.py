"""The instance's backend MCP server (`backend_mcp`): the only code that talks to models (`providers`), to thread
memory and to external MCP servers (`external_mcp`, through the fenced HTTP transport `egress_http`).

May import `runtime.store`, `runtime.telemetry`, `runtime.bundle_source` and `runtime.config`.
"""
