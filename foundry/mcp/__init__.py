"""The Foundry MCP server (`python -m foundry serve`): tools, argument checks, auth, stdio and streamable HTTP.

The top of the control plane: may import every other subpackage; nothing but the CLI imports it.
"""
