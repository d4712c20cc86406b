"""The instance's public MCP edge: the server and its tools (`server`), which session manager answers a request
(`mcp_routing`), a turn's progress streamed over SSE (`progress_http`), sessions for the clients asked inline
(`sessions_http`) and their bound per caller (`caller_sessions`), and approval asked inline through MCP elicitation
(`inline_approval`).

May import `runtime.instance` and all it stands on; only `runtime.cli` imports it.
"""
