"""The runtime compiles its graph from the bundle's graph.json: a definition it cannot compile (an unknown node, an
edge to or from one, no error handler, a finish or node out of reach) is refused when the bundle is read, with a
message naming graph.json, the node or edge, and what is allowed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from instance_contract.bundle_documents import GraphDefinition
from instance_contract.bundle_format import GRAPH_FILE, MCP_FILE, BundleError, read_bundle
from runtime.bundle_source import parse_bundle
from runtime.config import ExpectedIdentity
from runtime.graph import build_graph
from tests.runtime.runtime_harness import BuiltBundle
from tests.runtime.test_runtime_bad_bundle import repack

Edit = Callable[[dict[str, Any]], object]


@pytest.fixture
def built(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == "default-org/default-domain/dev")


def parse_edited(built: BuiltBundle, path: str, change: Edit) -> None:
    """Parses the example bundle with `change` applied to one of its JSON documents (repacked self-consistently)."""
    _, files = read_bundle(built.path.read_bytes(), str(built.path))
    document = json.loads(files[path])
    change(document)
    files[path] = json.dumps(document).encode()
    archive = repack(files, built.instance.manifest.metadata.name, "dev")
    parse_bundle(archive, source="edited.tar.gz", expected_hash=None, identity=ExpectedIdentity())


def edge(document: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in document["edges"] if (e["source"], e["target"]) == (source, target))
    return found


def test_the_example_definition_compiles_to_the_pinned_topology_s_nodes(built: BuiltBundle) -> None:
    """The definition alone (no agent classes) names every node the compiled graph has."""
    _, files = read_bundle(built.path.read_bytes(), str(built.path))
    definition = GraphDefinition.model_validate_json(files[GRAPH_FILE])
    graph = build_graph(definition, {name: _Idle(name) for name in _node_names(definition)})
    assert list(graph.get_graph().nodes)[1:-1] == _node_names(definition)
    assert definition.pipeline() == [
        "io", "governance", "context", "supervisor", "workers", "coherence", "observability", "io",
    ]  # fmt: skip
    assert definition.error_path() == {"exception", "observability", "io_out"}


REFUSALS: dict[str, tuple[Edit, str]] = {
    "an edge to an unknown node": (
        lambda d: edge(d, "context", "supervisor").update(target="planner"),
        "edges[3] (context -> planner, next): target 'planner' is not allowed; a next edge's target is a node "
        "(io_in, governance, context, supervisor, coherence, exception, observability, io_out)",
    ),
    "an edge from an unknown node": (
        lambda d: edge(d, "observability", "io_out").update(source="audit"),
        "edges[8] (audit -> io_out, always): source 'audit' is not allowed",
    ),
    "a fan-out to a single node instead of the workers": (
        lambda d: edge(d, "supervisor", "workers").update(target="coherence"),
        "edges[4] (supervisor -> coherence, fan_out): target 'coherence' is not allowed; a fan_out edge's target "
        "is 'workers'",
    ),
    "an edge kind the runtime does not know": (
        lambda d: edge(d, "io_in", "governance").update(kind="maybe"),
        "edges.0.kind: Input should be 'next', 'on_rejection', 'fan_out', 'join' or 'always'",
    ),
    "a node whose role no agent plays": (
        lambda d: d["nodes"][1].update(role="auditor"),
        "nodes.1.role: Input should be 'io', 'governance'",
    ),
    "a missing error handler": (
        lambda d: d.update(error_handler="panic"),
        "error_handler names 'panic', which is not a node; the nodes are: io_in, governance",
    ),
    "a node with no way on": (
        lambda d: d["edges"].remove(edge(d, "context", "supervisor")),
        "node 'context' needs exactly one next, fan_out or always edge to go on; found: none",
    ),
    "a finish the request never reaches": (
        lambda d: edge(d, "coherence", "observability").update(target="context"),
        "the way on from 'io_in' (io_in -> governance -> context -> supervisor -> workers -> coherence -> context",
    ),
    "a node no edge leads to": (
        lambda d: edge(d, "governance", "context").update(target="supervisor"),
        "node 'context' is unreachable: no edge from the entry 'io_in' leads to it",
    ),
    "an error path that could fail back into the error handler": (
        lambda d: edge(d, "exception", "observability").update(kind="next"),
        "node 'exception' is on the error path (after error_handler 'exception'), so it goes on by an always edge",
    ),
    "a node name used by a worker too": (
        lambda d: d["workers"][0].update(agent_id="coherence"),
        "node name 'coherence' is used twice or reserved",
    ),
    "the io agent in the middle of the pipeline": (
        lambda d: d["nodes"][2].update(role="io"),
        "role 'io' is on nodes io_in, context, io_out; allowed: the entry and the finish only",
    ),
    "a node bound to an agent of another role": (
        lambda d: d["nodes"][1].update(agent_id="context-agent"),
        "nodes[1] (governance) names agent 'context-agent', which instance.yaml does not bind to role 'governance'",
    ),
}


@pytest.mark.parametrize("change", list(REFUSALS), ids=list(REFUSALS))
def test_a_graph_definition_the_runtime_cannot_compile_is_refused_naming_what_is_wrong(
    built: BuiltBundle, change: str
) -> None:
    edit, message = REFUSALS[change]
    with pytest.raises(BundleError, match=re.escape(f"edited.tar.gz: {GRAPH_FILE}: {message}")):
        parse_edited(built, GRAPH_FILE, edit)


def test_a_tool_document_listing_other_backend_tools_than_the_runtime_serves_is_refused(built: BuiltBundle) -> None:
    with pytest.raises(BundleError, match=r"mcp\.json: tools are model_generate, memory_read; this runtime's backend"):
        parse_edited(built, MCP_FILE, lambda d: d.update(tools=d["tools"][:2]))


def test_a_tool_document_whose_secrets_differ_from_the_manifest_is_refused(built: BuiltBundle) -> None:
    with pytest.raises(BundleError, match=r"mcp\.json: secrets differ from instance\.yaml spec\.secrets"):
        parse_edited(built, MCP_FILE, lambda d: d.update(secrets=["stolen-token"]))


def test_a_graph_definition_for_another_instance_is_refused(built: BuiltBundle) -> None:
    with pytest.raises(BundleError, match=r"graph\.json: instance is 'someone-else', but instance\.yaml is"):
        parse_edited(built, GRAPH_FILE, lambda d: d.update(instance="someone-else"))


class _Idle:
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def __call__(self, state: Any) -> Any:
        return {}


def _node_names(definition: GraphDefinition) -> list[str]:
    return [n.name for n in definition.nodes] + [w.agent_id for w in definition.workers]
