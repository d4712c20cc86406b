"""The Foundry MCP server: the control plane's only API (the UI, VS Code and the CLI all come through here).

`build_server` registers the tools of `foundry.mcp.tools` (thin: argument checks, one call of the core, a typed
result) under the design's `foundry.` names: the MCP spec (SEP-986) and the SDK allow `A-Z a-z 0-9 _ - .` in tool
names. Each tool's description is its docstring and its output schema its result's pydantic model.
"""

from __future__ import annotations

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from foundry.mcp.tools import FoundryConfig, FoundryTools

SERVER_NAME = "agent-foundry"

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
DEPLOYS = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True)
"""Deploying replaces what runs (destructive), the same request twice changes nothing more (idempotent), and it
reaches AWS (open world)."""
READS_INSTANCE = ToolAnnotations(read_only_hint=True, open_world_hint=True)
ERASES = ToolAnnotations(destructive_hint=True, idempotent_hint=False, open_world_hint=True)
"""A second erasure of the same subject finds nothing and says so (an error), hence not idempotent."""


def build_server(
    config: FoundryConfig, *, token_verifier: TokenVerifier | None = None, auth: AuthSettings | None = None
) -> MCPServer:
    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions="Browse the agents in agents/, deploy one instance with the CDK CLI, and read its status.",
        token_verifier=token_verifier,
        auth=auth,
    )
    tools = FoundryTools(config)
    server.add_tool(tools.list_agents, name="foundry.list_agents", annotations=READ_ONLY)
    server.add_tool(tools.get_agent_config, name="foundry.get_agent_config", annotations=READ_ONLY)
    server.add_tool(tools.list_instances, name="foundry.list_instances", annotations=READ_ONLY)
    server.add_tool(tools.deploy_instance, name="foundry.deploy_instance", annotations=DEPLOYS)
    server.add_tool(tools.get_instance_status, name="foundry.get_instance_status", annotations=READ_ONLY)
    # Rollouts (issue 15): read-only, from the deploy state `python -m foundry rollout` keeps (FOUNDRY_STATE_URL).
    server.add_tool(tools.get_rollout_status, name="foundry.get_rollout_status", annotations=READ_ONLY)
    # Data-subject requests (issue 21): carried to the instance's own admin tools over its MCP endpoint.
    server.add_tool(tools.export_subject_data, name="foundry.export_subject_data", annotations=READS_INSTANCE)
    server.add_tool(tools.erase_subject_data, name="foundry.erase_subject_data", annotations=ERASES)
    # Usage and cost (issue 24): asked of the instance's own `usage` tool, priced with agents/platform.yaml.
    server.add_tool(tools.get_instance_usage, name="foundry.get_instance_usage", annotations=READS_INSTANCE)
    return server


__all__ = ["SERVER_NAME", "FoundryConfig", "build_server"]
