"""Fetch a bundle (local path or s3://), verify it, and parse it into the typed documents the runtime uses (the
instance manifest and agent specs of instance_contract.schema, the graph and tool documents of
instance_contract.bundle_documents), checked against each other.

Every failure raises BundleError with a message naming the bundle and the file or field at fault: the process
must refuse to start rather than serve an instance it cannot vouch for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from instance_contract.bundle_documents import BACKEND_TOOLS, GraphDefinition, McpToolDocument
from instance_contract.bundle_format import GRAPH_FILE, INSTANCE_FILE, MCP_FILE, BundleError, read_bundle
from instance_contract.schema import AgentInstance, AgentSpec
from instance_contract.yaml_nesting import NestingTooDeepError, check_nesting
from runtime.config import ExpectedIdentity

M = TypeVar("M", bound=BaseModel)

__all__ = ["BundleError", "InstanceBundle", "fetch_archive", "load_bundle", "parse_bundle"]


@dataclass(frozen=True)
class InstanceBundle:
    source: str
    content_hash: str
    instance: AgentInstance
    graph: GraphDefinition
    mcp: McpToolDocument
    specs: dict[str, AgentSpec]
    """Keyed by agent_id."""


def fetch_archive(uri: str, *, region: str | None = None) -> bytes:
    """The archive's bytes from a local path or an s3://bucket/key URI."""
    if uri.startswith("s3://"):
        return _fetch_s3(uri, region)
    path = Path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{uri}: bundle file not found") from None
    except OSError as exc:
        raise BundleError(f"{uri}: cannot read the bundle ({exc.strerror or exc})") from None


def _fetch_s3(uri: str, region: str | None) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise BundleError(f"{uri}: an S3 bundle URI must be s3://BUCKET/KEY")
    import boto3  # only S3-hosted bundles pay for importing boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("s3", region_name=region)
        response = client.get_object(Bucket=bucket, Key=key)
        body: bytes = response["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise BundleError(f"{uri}: cannot fetch the bundle from S3 ({code})") from None
    except BotoCoreError as exc:
        raise BundleError(f"{uri}: cannot fetch the bundle from S3 ({exc})") from None
    return body


def load_bundle(
    uri: str, *, expected_hash: str | None, identity: ExpectedIdentity, region: str | None = None
) -> InstanceBundle:
    return parse_bundle(fetch_archive(uri, region=region), source=uri, expected_hash=expected_hash, identity=identity)


def parse_bundle(
    archive: bytes, *, source: str, expected_hash: str | None, identity: ExpectedIdentity
) -> InstanceBundle:
    index, files = read_bundle(archive, source, expected_hash)
    for required in (INSTANCE_FILE, GRAPH_FILE, MCP_FILE):
        if required not in files:
            raise BundleError(f"{source}: {required} is missing from the bundle")
    instance = _validate(AgentInstance, _yaml(files[INSTANCE_FILE], source, INSTANCE_FILE), source, INSTANCE_FILE)
    graph = _validate(GraphDefinition, _json(files[GRAPH_FILE], source, GRAPH_FILE), source, GRAPH_FILE)
    mcp = _validate(McpToolDocument, _json(files[MCP_FILE], source, MCP_FILE), source, MCP_FILE)
    specs: dict[str, AgentSpec] = {}
    for agent in instance.spec.agents:
        path = f"agents/{agent.spec_path}"
        if path not in files:
            raise BundleError(f"{source}: {path} (spec of agent {agent.agent_id}) is missing from the bundle")
        spec = _validate(AgentSpec, _yaml(files[path], source, path), source, path)
        if spec.metadata.agent_id != agent.agent_id:
            raise BundleError(
                f"{source}: {path}: metadata.agent_id is {spec.metadata.agent_id!r}, "
                f"but {INSTANCE_FILE} binds it to {agent.agent_id!r}"
            )
        specs[agent.agent_id] = spec
    _check_consistency(source, instance, graph, mcp, specs)
    _check_identity(source, instance, identity)
    return InstanceBundle(
        source=source, content_hash=index["content_hash"], instance=instance, graph=graph, mcp=mcp, specs=specs
    )


def _check_consistency(
    source: str, instance: AgentInstance, graph: GraphDefinition, mcp: McpToolDocument, specs: dict[str, AgentSpec]
) -> None:
    _check_graph(source, instance, graph, specs)
    for agent_id in sorted(mcp.agents):
        if agent_id not in specs:
            raise BundleError(f"{source}: {MCP_FILE}: agents.{agent_id} is not an agent of the bundle")
    if mcp.provider != instance.spec.mcp:
        raise BundleError(f"{source}: {MCP_FILE}: provider differs from {INSTANCE_FILE} spec.mcp")
    if tuple(mcp.tools) != BACKEND_TOOLS:
        raise BundleError(
            f"{source}: {MCP_FILE}: tools are {', '.join(mcp.tools)}; this runtime's backend serves exactly "
            f"{', '.join(BACKEND_TOOLS)}"
        )
    if mcp.secrets != instance.spec.secrets:
        raise BundleError(f"{source}: {MCP_FILE}: secrets differ from {INSTANCE_FILE} spec.secrets")
    declared = {server.name for server in instance.spec.mcp.servers}
    for agent_id, tools in sorted(mcp.agents.items()):
        for tool in tools:
            server, dot, _ = tool.partition(".")
            if dot and server not in declared:
                raise BundleError(
                    f"{source}: {MCP_FILE}: agents.{agent_id} grants {tool!r}, but {INSTANCE_FILE} spec.mcp.servers "
                    f"declares no server {server!r} ({', '.join(sorted(declared)) or 'none'})"
                )


def _check_graph(source: str, instance: AgentInstance, graph: GraphDefinition, specs: dict[str, AgentSpec]) -> None:
    if graph.instance != instance.metadata.name:
        raise BundleError(
            f"{source}: {GRAPH_FILE}: instance is {graph.instance!r}, but {INSTANCE_FILE} is {instance.metadata.name!r}"
        )
    for i, node in enumerate(graph.nodes):
        spec = specs.get(node.agent_id)
        if spec is None or spec.spec.role != node.role:
            raise BundleError(
                f"{source}: {GRAPH_FILE}: nodes[{i}] ({node.name}) names agent {node.agent_id!r}, which "
                f"{INSTANCE_FILE} does not bind to role {node.role!r}"
            )
    for worker in graph.workers:
        spec = specs.get(worker.agent_id)
        if spec is None or spec.spec.role != "worker":
            raise BundleError(f"{source}: {GRAPH_FILE}: worker {worker.agent_id!r} is not a worker agent of the bundle")


def _check_identity(source: str, instance: AgentInstance, expected: ExpectedIdentity) -> None:
    actual = instance.spec.identity
    pairs = (
        ("ORG_ID", expected.organization_id, actual.organization_id, "organization_id"),
        ("DOMAIN_ID", expected.domain_id, actual.domain_id, "domain_id"),
        ("ENVIRONMENT", expected.environment, actual.environment, "environment"),
        ("INSTANCE_ID", expected.instance_id, actual.instance_id, "instance_id"),
    )
    for variable, want, have, field_name in pairs:
        if want is not None and want != have:
            raise BundleError(
                f"{source}: identity mismatch: {variable}={want!r}, but the bundle's {INSTANCE_FILE} has "
                f"spec.identity.{field_name}={have!r}"
            )


def _yaml(raw: bytes, source: str, path: str) -> Any:
    """Nesting is bounded before PyYAML composes the document (instance_contract.yaml_nesting)."""
    try:
        text = raw.decode("utf-8")
        check_nesting(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError, NestingTooDeepError) as exc:
        raise BundleError(f"{source}: {path} is not valid YAML ({exc})") from None


def _json(raw: bytes, source: str, path: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{source}: {path} is not valid JSON ({exc})") from None


def _validate(model: type[M], data: Any, source: str, path: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"] and first["type"] == "value_error":  # a whole-document check (the graph's topology)
            raise BundleError(f"{source}: {path}: {first['ctx']['error']}") from None
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BundleError(f"{source}: {path}: {where}: {first['msg']}{more}") from None
