"""The LangGraph graph definition and MCP tool config an instance's bundle carries.

The runtime compiles its graph from these documents alone (instance_contract.bundle_documents), so the pipeline's
shape is declared here, once, and reviewed as data in the bundle; its nodes are bound to the instance manifest's
agents and its workers to the custom agents' routing.
"""

from __future__ import annotations

from foundry.manifests.schema import AgentInstance, AgentSpec
from instance_contract.bundle_documents import (
    BACKEND_TOOLS,
    WORKERS,
    BackendServerInfo,
    EdgeKind,
    GraphDefinition,
    GraphEdge,
    GraphNode,
    McpToolDocument,
    WorkerRoute,
)
from instance_contract.schema import SystemRole

ENTRY, FINISH, ERROR_HANDLER = "io_in", "io_out", "exception"
NODES: tuple[tuple[str, SystemRole], ...] = (
    ("io_in", "io"),
    ("governance", "governance"),
    ("context", "context"),
    ("supervisor", "supervisor"),
    ("coherence", "coherence"),
    ("exception", "exception"),
    ("observability", "observability"),
    ("io_out", "io"),
)
"""(node, role): `io` has two nodes, one receives the request and one returns the answer."""
EDGES: tuple[tuple[str, str, EdgeKind], ...] = (
    ("io_in", "governance", "next"),
    ("governance", "context", "next"),
    ("governance", "observability", "on_rejection"),
    ("context", "supervisor", "next"),
    ("supervisor", WORKERS, "fan_out"),
    (WORKERS, "coherence", "join"),
    ("coherence", "observability", "next"),
    ("exception", "observability", "always"),
    ("observability", "io_out", "always"),
)
"""The request path, read top to bottom; a failure on a `next` or `fan_out` edge goes to the ERROR_HANDLER."""


def graph_definition(manifest: AgentInstance, specs: dict[str, AgentSpec]) -> GraphDefinition:
    """`specs` is keyed by spec_path. Workers come from the custom agents, in agent_id order."""
    agents = {agent.role: agent.agent_id for agent in manifest.spec.system_agents}
    workers = []
    for agent in sorted(manifest.spec.custom_agents, key=lambda a: a.agent_id):
        routing = specs[agent.spec_path].spec.routing
        if routing is None:  # the spec schema requires routing on a worker; a hand-built manifest may not
            raise ValueError(
                f"custom agent {agent.agent_id!r} ({agent.spec_path}) has no routing, so the supervisor could never "
                "reach it; give its spec a routing section (description and keywords)"
            )
        workers.append(
            WorkerRoute(
                agent_id=agent.agent_id,
                description=routing.description,
                keywords=sorted({k.lower() for k in routing.keywords}),
                default=routing.default,
            )
        )
    return GraphDefinition(
        apiVersion="agent-foundry/v1",
        kind="GraphDefinition",
        instance=manifest.metadata.name,
        nodes=[GraphNode(name=name, role=role, agent_id=agents[role]) for name, role in NODES],
        workers=workers,
        entry=ENTRY,
        finish=FINISH,
        error_handler=ERROR_HANDLER,
        edges=[GraphEdge(source=source, target=target, kind=kind) for source, target, kind in EDGES],
    )


def mcp_tool_config(manifest: AgentInstance, specs: dict[str, AgentSpec]) -> McpToolDocument:
    """Which backend tools exist, how they reach models and memory, and which agent may call which."""
    return McpToolDocument(
        apiVersion="agent-foundry/v1",
        kind="McpToolConfig",
        server=BackendServerInfo(name=f"{manifest.metadata.name}.backend", transport="in-memory"),
        tools=list(BACKEND_TOOLS),
        provider=manifest.spec.mcp,
        agents={agent.agent_id: sorted(set(specs[agent.spec_path].spec.tools)) for agent in manifest.spec.agents},
        secrets=list(manifest.spec.secrets),
    )
