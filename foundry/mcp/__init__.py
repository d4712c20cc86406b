"""The Foundry MCP server (`python -m foundry serve`): thin tools (their arguments checked by
`foundry.deploy.arguments`), typed results, auth, stdio and streamable HTTP.

The top of the control plane: may import every other subpackage; nothing but the CLI imports it.
"""
