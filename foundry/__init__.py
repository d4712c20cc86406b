"""Agent Foundry control plane: manifests, resolution, bundles, and the Foundry MCP server."""
