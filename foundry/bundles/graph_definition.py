"""The LangGraph graph definition and MCP tool config an instance's bundle carries.

The runtime builds its graph from these documents alone, so the pipeline shape is decided here, once, from the
instance manifest and the agent specs, and reviewed as data in the bundle.
"""

from __future__ import annotations

import itertools
from typing import Any

from foundry.manifests.schema import SYSTEM_ROLES, AgentInstance, AgentSpec

PIPELINE: tuple[str, ...] = (
    "io",
    "governance",
    "context",
    "supervisor",
    "workers",
    "coherence",
    "observability",
    "io",
)
"""The request path. `io` appears twice: it receives the request and returns the answer."""

BACKEND_TOOLS: tuple[str, ...] = ("model_generate", "memory_read", "memory_append", "context_get")


def graph_definition(manifest: AgentInstance, specs: dict[str, AgentSpec]) -> dict[str, Any]:
    """`specs` is keyed by spec_path. Workers come from the custom agents, in agent_id order."""
    nodes = {agent.role: agent.agent_id for agent in manifest.spec.system_agents}
    workers = []
    for agent in sorted(manifest.spec.custom_agents, key=lambda a: a.agent_id):
        routing = specs[agent.spec_path].spec.routing
        if routing is None:  # the spec schema requires routing on a worker; a hand-built manifest may not
            raise ValueError(
                f"custom agent {agent.agent_id!r} ({agent.spec_path}) has no routing, so the supervisor could never "
                "reach it; give its spec a routing section (description and keywords)"
            )
        workers.append(
            {
                "agent_id": agent.agent_id,
                "spec_path": f"agents/{agent.spec_path}",
                "description": routing.description,
                "keywords": sorted({k.lower() for k in routing.keywords}),
                "default": routing.default,
            }
        )
    return {
        "apiVersion": "agent-foundry/v1",
        "kind": "GraphDefinition",
        "instance": manifest.metadata.name,
        "pipeline": list(PIPELINE),
        "edges": [[a, b] for a, b in itertools.pairwise(PIPELINE)],
        "error_handler": "exception",
        "nodes": {role: nodes[role] for role in SYSTEM_ROLES},
        "workers": workers,
        "specs": {a.agent_id: f"agents/{a.spec_path}" for a in manifest.spec.agents},
    }


def mcp_tool_config(manifest: AgentInstance, specs: dict[str, AgentSpec]) -> dict[str, Any]:
    """Which backend tools exist, how they reach models and memory, and which agent may call which."""
    return {
        "apiVersion": "agent-foundry/v1",
        "kind": "McpToolConfig",
        "server": {"name": f"{manifest.metadata.name}.backend", "transport": "in-memory"},
        "tools": list(BACKEND_TOOLS),
        "provider": manifest.spec.mcp.model_dump(mode="json"),
        "agents": {agent.agent_id: sorted(set(specs[agent.spec_path].spec.tools)) for agent in manifest.spec.agents},
        "secrets": list(manifest.spec.secrets),
    }
