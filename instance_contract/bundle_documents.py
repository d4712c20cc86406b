"""The bundle documents the runtime compiles: `graph.json` (GraphDefinition) and `mcp.json` (McpToolDocument).

The Foundry builds these models (foundry.bundles.graph_definition) and the runtime parses them
(runtime.bundle_source), so there is one definition of each. The runtime compiles its LangGraph graph from the
GraphDefinition alone (runtime.graph.build_graph): its nodes, its edges and its error handler. A GraphDefinition
that validates can be compiled, because the rules the compiler relies on are checked here: the Foundry cannot write,
and the runtime will not start, a graph that breaks them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from instance_contract.schema import BackendTool, DnsId, McpToolConfig, SecretName, SystemRole

BACKEND_TOOLS: tuple[BackendTool, ...] = get_args(BackendTool)
"""The backend MCP server's tools, in the order mcp.json lists them."""

WORKERS = "workers"
"""Not a node: the set of worker nodes, the target of the `fan_out` edge and the source of the `join` edge."""
RESERVED_NAMES = frozenset({WORKERS, "__start__", "__end__"})
"""`__start__` and `__end__` are LangGraph's own START and END nodes."""

NodeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
EdgeKind = Literal["next", "on_rejection", "fan_out", "join", "always"]
"""How a request leaves `source`:

- `next`: to `target`, unless the source recorded a failure: then to the error handler.
- `on_rejection`: to `target` when the source rejected the request (beside the source's `next` edge).
- `fan_out`: to the workers the source selected (`target` is `workers`), all at once (LangGraph `Send`); with none
  selected, straight to the `join` edge's target; a failure goes to the error handler.
- `join`: from every worker (`source` is `workers`) to `target`.
- `always`: to `target`, failure or not: the error path's edges, which must always run.
"""
SUCCESSOR_KINDS: frozenset[EdgeKind] = frozenset({"next", "fan_out", "always"})
"""The kinds that name a node's one way on; `on_rejection` and the error handler are detours beside it."""


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphNode(Document):
    name: NodeName
    """The node's name in the graph (and in the response's trace)."""
    role: SystemRole
    """Which system agent runs here; `io` is both the entry (it takes the request) and the finish (the answer)."""
    agent_id: DnsId


class WorkerRoute(Document):
    """A worker node, named by its agent id, and what the supervisor routes to it."""

    agent_id: DnsId
    description: str
    keywords: list[str]
    """Lower-case and sorted: a keyword that starts a word of the message selects the worker."""
    default: bool
    """Selected when no keyword matches (if no worker is a default, the first one is)."""


class GraphEdge(Document):
    source: str
    target: str
    kind: EdgeKind


class GraphDefinition(Document):
    """graph.json: the instance's LangGraph graph as data, compiled by the runtime at start."""

    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["GraphDefinition"]
    instance: str
    """The instance manifest's metadata.name; the runtime checks it against instance.yaml."""
    nodes: list[GraphNode]
    """The system nodes, in the order the graph adds them."""
    workers: list[WorkerRoute]
    """The worker nodes, in agent_id order."""
    entry: str
    """The node a request starts at (LangGraph START's edge)."""
    finish: str
    """The node that returns the answer (its edge goes to LangGraph END)."""
    error_handler: str
    """Where a `next` or `fan_out` edge sends a request whose node recorded a failure."""
    edges: list[GraphEdge]

    @model_validator(mode="after")
    def _compiles(self) -> GraphDefinition:
        problem = next(_topology_problems(self), None)
        if problem is not None:
            raise ValueError(problem)
        return self

    def node(self, name: str) -> GraphNode:
        return next(n for n in self.nodes if n.name == name)

    def agent_of(self, role: SystemRole) -> str:
        """The agent id of `role`'s node (for `io`, the entry's)."""
        return next(n.agent_id for n in self.nodes if n.role == role)

    def edges_from(self, source: str, *kinds: EdgeKind) -> list[GraphEdge]:
        return [e for e in self.edges if e.source == source and (not kinds or e.kind in kinds)]

    def successor(self, name: str) -> GraphEdge | None:
        """The node's one way on (None for the finish)."""
        found = self.edges_from(name, *SUCCESSOR_KINDS)
        return found[0] if found else None

    def join_target(self) -> str | None:
        found = self.edges_from(WORKERS, "join")
        return found[0].target if found else None

    def way_on(self, start: str) -> Iterator[str]:
        """The node names a request passes from `start` by each node's one way on (`workers` for the workers), to
        the finish when the definition validated."""
        name: str | None = start
        for _ in range(len(self.nodes) + 1):  # a way on that reaches the finish is at most this long
            if name is None:
                return
            yield name
            edge = self.successor(name) if name != WORKERS else None
            name = self.join_target() if name == WORKERS else (edge.target if edge else None)

    def main_path(self) -> Iterator[str]:
        """The way on from the entry: the path of a request that nothing rejects and nothing fails."""
        return self.way_on(self.entry)

    def pipeline(self) -> list[str]:
        """The roles along the main path (the `describe` tool's `pipeline`): `io` twice, in and out."""
        return [name if name == WORKERS else self.node(name).role for name in self.main_path()]

    def error_path(self) -> set[str]:
        """The error handler and the nodes after it: they turn a failure into the answer, so they always run."""
        path: set[str] = set()
        name: str | None = self.error_handler
        while name is not None and name not in path:
            path.add(name)
            edge = self.successor(name)
            name = edge.target if edge else None
        return path


def _topology_problems(graph: GraphDefinition) -> Iterator[str]:
    """Every reason the runtime could not compile `graph`, each naming the node or edge and what is allowed."""
    names = [n.name for n in graph.nodes] + [w.agent_id for w in graph.workers]
    known = ", ".join(n.name for n in graph.nodes)
    for name in sorted({n for n in names if names.count(n) > 1 or n in RESERVED_NAMES}):
        yield (
            f"node name {name!r} is used twice or reserved: node and worker names must be unique and none of "
            f"{', '.join(sorted(RESERVED_NAMES))}"
        )
    roles = {n.name: n.role for n in graph.nodes}
    for field, name in (("entry", graph.entry), ("finish", graph.finish), ("error_handler", graph.error_handler)):
        if name not in roles:
            yield f"{field} names {name!r}, which is not a node; the nodes are: {known}"
        elif field != "error_handler" and roles[name] != "io":
            yield f"{field} {name!r} has role {roles[name]!r}; the entry and the finish are the io agent's nodes"
    for role in sorted(set(roles.values())):
        holders = [name for name, r in roles.items() if r == role]
        if role == "io" and not set(holders) <= {graph.entry, graph.finish}:
            yield f"role 'io' is on nodes {', '.join(holders)}; allowed: the entry and the finish only"
        elif role != "io" and len(holders) > 1:
            yield f"role {role!r} is on nodes {', '.join(holders)}; allowed: one node per role (io: two)"
    for i, edge in enumerate(graph.edges):
        yield from _edge_problems(i, edge, set(roles), known)
    yield from _successor_problems(graph)
    yield from _path_problems(graph, set(roles))


def _edge_problems(i: int, edge: GraphEdge, nodes: set[str], known: str) -> Iterator[str]:
    where = f"edges[{i}] ({edge.source} -> {edge.target}, {edge.kind})"
    source_allowed = {WORKERS} if edge.kind == "join" else nodes
    target_allowed = {WORKERS} if edge.kind == "fan_out" else nodes
    for end, name, allowed in (("source", edge.source, source_allowed), ("target", edge.target, target_allowed)):
        if name not in allowed:
            what = f"{WORKERS!r}" if allowed == {WORKERS} else f"a node ({known})"
            yield f"{where}: {end} {name!r} is not allowed; a {edge.kind} edge's {end} is {what}"


def _successor_problems(graph: GraphDefinition) -> Iterator[str]:
    for name in [n.name for n in graph.nodes]:
        ways = graph.edges_from(name, *SUCCESSOR_KINDS)
        if name == graph.finish and ways:
            yield f"the finish {name!r} has an edge to {ways[0].target!r}; the request ends there (allowed: none)"
        elif name != graph.finish and len(ways) != 1:
            found = ", ".join(f"{e.kind} to {e.target}" for e in ways) or "none"
            yield f"node {name!r} needs exactly one next, fan_out or always edge to go on; found: {found}"
        rejections = graph.edges_from(name, "on_rejection")
        if rejections and (len(rejections) > 1 or not ways or ways[0].kind != "next"):
            yield f"node {name!r}: an on_rejection edge is allowed only once, beside the node's next edge"
    fan_outs = [e for e in graph.edges if e.kind == "fan_out"]
    joins = graph.edges_from(WORKERS, "join")
    if len(fan_outs) > 1 or len(joins) != len(fan_outs):
        yield f"a graph has one fan_out edge and one join edge, or neither; found {len(fan_outs)} and {len(joins)}"
    elif graph.workers and not fan_outs:
        yield f"workers {', '.join(w.agent_id for w in graph.workers)} are unreachable: no fan_out edge leads to them"


def _path_problems(graph: GraphDefinition, nodes: set[str]) -> Iterator[str]:
    if graph.error_handler not in nodes or graph.entry not in nodes:
        return
    for name in sorted(graph.error_path()):
        edge = graph.successor(name)
        if edge is not None and edge.kind != "always":
            yield (
                f"node {name!r} is on the error path (after error_handler {graph.error_handler!r}), so it goes on by "
                f"an always edge; its {edge.kind} edge could send its own failure back to the error handler"
            )
    reached = _reachable(graph)
    for name in [graph.entry, *sorted(reached & nodes - {graph.entry})]:
        path = list(graph.way_on(name))
        if path[-1] != graph.finish:
            yield f"the way on from {name!r} ({' -> '.join(path)} ...) never reaches the finish {graph.finish!r}"
    for name in [n.name for n in graph.nodes if n.name not in reached]:
        yield f"node {name!r} is unreachable: no edge from the entry {graph.entry!r} leads to it"


def _reachable(graph: GraphDefinition) -> set[str]:
    """The nodes (and `workers`) some request can reach from the entry, by any edge or by a failure."""
    seen: set[str] = set()
    todo = [graph.entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            for edge in graph.edges_from(name):
                todo.append(edge.target)
                if edge.kind in ("next", "fan_out"):
                    todo.append(graph.error_handler)
    return seen


class BackendServerInfo(Document):
    name: str
    transport: Literal["in-memory"]


class McpToolDocument(Document):
    """mcp.json: the backend tools, the provider settings, and which agent may call which tool."""

    apiVersion: Literal["agent-foundry/v1"]  # noqa: N815
    kind: Literal["McpToolConfig"]
    server: BackendServerInfo
    tools: list[BackendTool]
    """Exactly BACKEND_TOOLS: the runtime refuses a bundle that expects tools it does not serve."""
    provider: McpToolConfig
    """The instance manifest's spec.mcp, which the runtime checks it against."""
    agents: dict[str, list[str]]
    """agent_id -> the backend and external (`<server>.<tool>`) tools it may call, sorted."""
    secrets: list[SecretName]
    """The secret names the instance needs (never values); the runtime checks them against instance.yaml."""
