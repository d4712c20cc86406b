"""The instance's public MCP edge: the server and its tools (`server`), a turn's progress streamed over SSE
(`progress_http`), and approval asked inline through MCP elicitation (`inline_approval`).

May import `runtime.instance` and all it stands on; only `runtime.cli` imports it.
"""
