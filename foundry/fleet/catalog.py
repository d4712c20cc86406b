"""What the fleet holds, for people and tools browsing it: the agents bound to instances (filtered), one agent's
config with the external MCP tools it may use per instance, and one row per instance.

Pure functions over a `Fleet`, returning pydantic models: the Foundry MCP tools return these as their structured
content, so each model's fields (and their order) are the JSON a client receives.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from foundry.bundles.archive import bundle_content_hash
from foundry.fleet.model import Fleet
from foundry.manifests.resolve import ResolvedInstance
from foundry.manifests.schema import AgentRole, AgentSpec, ExternalMcpServer, InstanceAgent


class UnknownAgentError(LookupError):
    """No instance binds the agent asked for; the message lists the agents that are bound."""


# --- agents bound to instances ------------------------------------------------------------------------------


class AgentBinding(BaseModel):
    """One agent as one instance binds it."""

    agent_id: str
    role: AgentRole
    version: str
    spec_path: str
    """Relative to the agents directory (and the path inside the instance's bundle)."""
    system_agent: bool
    environment: str
    instance: str
    """ORG/DOMAIN/INSTANCE."""
    organization_id: str
    domain_id: str
    instance_id: str


class AgentList(BaseModel):
    count: int
    agents: list[AgentBinding]
    """Instance by instance in fleet order; within one, its system agents, then its custom agents."""


def _binding(instance: ResolvedInstance, agent: InstanceAgent, *, system: bool) -> AgentBinding:
    key = instance.key
    return AgentBinding(
        agent_id=agent.agent_id,
        role=agent.role,
        version=agent.version,
        spec_path=agent.spec_path,
        system_agent=system,
        environment=instance.environment,
        instance=key.selector,
        organization_id=key.organization_id,
        domain_id=key.domain_id,
        instance_id=key.instance_id,
    )


def list_agents(
    fleet: Fleet,
    *,
    organization: str | None = None,
    domain: str | None = None,
    environment: str | None = None,
    instance: str | None = None,
) -> AgentList:
    """Every agent bound to an instance that passes every filter given (None: no filter). `instance` matches an
    instance id alone or ORG/DOMAIN/INSTANCE."""
    bindings: list[AgentBinding] = []
    for resolved in fleet.instances:
        key = resolved.key
        if (
            (organization is not None and key.organization_id != organization)
            or (domain is not None and key.domain_id != domain)
            or (environment is not None and resolved.environment != environment)
            or (instance is not None and instance not in (key.instance_id, key.selector))
        ):
            continue
        spec = resolved.manifest.spec
        bindings += [_binding(resolved, agent, system=True) for agent in spec.system_agents]
        bindings += [_binding(resolved, agent, system=False) for agent in spec.custom_agents]
    return AgentList(count=len(bindings), agents=bindings)


# --- one agent's config -------------------------------------------------------------------------------------


class ExternalTool(BaseModel):
    """An external `<server>.<tool>` an agent may call, and the server the instance reaches it on."""

    tool: str
    server: str
    url: str
    bearer_secret: str | None
    """The name of the instance's secret sent as the bearer token (never its value)."""


class BoundInstance(BaseModel):
    """Where an agent spec is bound: servers may differ per tenant, so its external tools are given per instance."""

    environment: str
    instance: str
    role: AgentRole
    external_tools: list[ExternalTool]


class BoundSpec(BaseModel):
    spec_path: str
    file: str
    """The spec's file, relative to the repository when it lies inside it."""
    spec: AgentSpec
    """As validated (defaults filled in)."""
    bound_to: list[BoundInstance]


class AgentConfig(BaseModel):
    agent_id: str
    specs: list[BoundSpec]
    """One per spec file the agent id is bound with (usually one), sorted by spec path."""


def _external_tools(instance: ResolvedInstance, spec: AgentSpec) -> list[ExternalTool]:
    servers: dict[str, ExternalMcpServer] = {server.name: server for server in instance.manifest.spec.mcp.servers}
    tools: list[ExternalTool] = []
    for tool in spec.spec.tools:
        if "." not in tool:
            continue  # a backend tool: served by the instance itself
        server = servers[tool.split(".", 1)[0]]  # resolution refuses a tool of a server the instance lacks
        tools.append(ExternalTool(tool=tool, server=server.name, url=server.url, bearer_secret=server.bearer_secret))
    return tools


def _spec_file(agents_dir: Path, spec_path: str, repo_root: Path) -> str:
    path = agents_dir / spec_path
    return str(path.relative_to(repo_root)) if path.is_relative_to(repo_root) else str(path)


def agent_config(
    fleet: Fleet, agent_id: str, *, agents_dir: Path, repo_root: Path, environment: str | None = None
) -> AgentConfig:
    """The agent's spec(s) and every (environment, instance) binding it, in `environment` only when given.
    Raises UnknownAgentError when nothing binds it there."""
    specs: dict[str, BoundSpec] = {}
    known: set[str] = set()
    for resolved in fleet.instances:
        for agent in resolved.manifest.spec.agents:
            known.add(agent.agent_id)
            if agent.agent_id != agent_id or (environment is not None and resolved.environment != environment):
                continue
            spec = resolved.specs[agent.spec_path]
            entry = specs.setdefault(
                agent.spec_path,
                BoundSpec(
                    spec_path=agent.spec_path,
                    file=_spec_file(agents_dir, agent.spec_path, repo_root),
                    spec=spec,
                    bound_to=[],
                ),
            )
            entry.bound_to.append(
                BoundInstance(
                    environment=resolved.environment,
                    instance=resolved.key.selector,
                    role=agent.role,
                    external_tools=_external_tools(resolved, spec),
                )
            )
    if not specs:
        where = f" in environment {environment!r}" if environment is not None else ""
        raise UnknownAgentError(
            f"agent_id: no agent {agent_id!r} is bound to any instance{where}; known: {', '.join(sorted(known))}"
        )
    return AgentConfig(agent_id=agent_id, specs=[specs[path] for path in sorted(specs)])


# --- instances ------------------------------------------------------------------------------------------------


class InstanceRow(BaseModel):
    environment: str
    organization_id: str
    domain_id: str
    instance_id: str
    instance: str
    """ORG/DOMAIN/INSTANCE."""
    hostname: str
    stack_name: str
    bundle_hash: str
    """The content hash of the instance's runtime bundle ('sha256:<hex>'), as its bundle index declares it."""
    agents: int
    """How many agents the instance binds (system and custom)."""


class InstanceList(BaseModel):
    count: int
    instances: list[InstanceRow]
    """Sorted by (environment, organization, domain, instance)."""


def list_instances(fleet: Fleet, *, environment: str | None = None) -> InstanceList:
    """One row per instance (of `environment` only, when given), with the content hash of its bundle."""
    rows = [
        InstanceRow(
            environment=i.environment,
            organization_id=i.key.organization_id,
            domain_id=i.key.domain_id,
            instance_id=i.key.instance_id,
            instance=i.key.selector,
            hostname=i.manifest.spec.hostname,
            stack_name=i.manifest.spec.stack_name,
            bundle_hash=bundle_content_hash(i),
            agents=len(i.manifest.spec.agents),
        )
        for i in fleet.instances
        if environment is None or i.environment == environment
    ]
    return InstanceList(count=len(rows), instances=rows)
