"""Environment manifests + instance template -> one concrete instance manifest per (org, domain, instance).

Pure: works on the validated documents of an AgentsTree and touches no files, so every rule is testable alone.
Resolution runs in two passes: binding every entry of every environment manifest to its instance (with the checks
of `foundry.manifests.cross_checks`), then resolving each instance from its bound agents, the template's scoped
settings (`foundry.manifests.overrides`) and its environment's platform settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundry.manifests import naming
from foundry.manifests.alarm_settings import AlarmThresholds
from foundry.manifests.cross_checks import (
    KnownNames,
    binding_problems,
    duplicate_binding_problem,
    entry_problem,
    limit_problems,
    name_problems,
    platform_settings_problems,
    spec_problems,
    wrong_environment_problems,
)
from foundry.manifests.loader import AgentsTree, Loaded
from foundry.manifests.overrides import (
    ServerAt,
    alarms_for,
    deploy_for,
    instance_mcp,
    mcp_problems,
    mcp_servers_for,
    used_servers,
)
from foundry.manifests.problems import Problem, raise_if_any
from foundry.manifests.schema import (
    AgentInstance,
    AgentManifest,
    AgentSpec,
    DeploySettings,
    EgressSettings,
    InstanceAgent,
    InstanceIdentity,
    InstanceKey,
    InstanceMetadata,
    InstanceSpec,
    ManifestEntry,
)


@dataclass(frozen=True)
class ResolvedInstance:
    """An instance manifest plus the raw bytes of every agent spec it references (for its bundle)."""

    manifest: AgentInstance
    spec_files: dict[str, bytes]
    specs: dict[str, AgentSpec]
    """Both keyed by spec_path (the entry's yaml_path, relative to `agents/`)."""
    alarms: AlarmThresholds
    """The thresholds of the instance's CloudWatch alarms (the instance stack's; not part of the bundle: the
    runtime never reads them)."""

    @property
    def environment(self) -> str:
        return self.manifest.spec.identity.environment

    @property
    def key(self) -> InstanceKey:
        return self.manifest.spec.identity.key

    @property
    def file_name(self) -> str:
        return naming.instance_manifest_file(self.key)


@dataclass(frozen=True)
class _Binding:
    """One entry of an environment manifest, with the agent spec it names (None: that spec did not load)."""

    index: int
    entry: ManifestEntry
    spec: Loaded[AgentSpec] | None


@dataclass(frozen=True)
class _BoundInstance:
    """The entries of one environment manifest that bind agents to one instance, in file order."""

    env: str
    key: InstanceKey
    source: Loaded[AgentManifest]
    bindings: list[_Binding] = field(default_factory=list)

    @property
    def first_index(self) -> int:
        """The instance's first entry: where a problem of the whole instance points."""
        return self.bindings[0].index


@dataclass
class _BindingPass:
    """What the pass over every environment manifest carries from one entry to the next."""

    tree: AgentsTree
    problems: list[Problem]
    system_roles: dict[str, str]
    """The template's system agents: agent id -> role."""
    custom_catalogue: set[str]
    known_names: KnownNames = field(default_factory=dict)
    checked_specs: set[str] = field(default_factory=set)
    """Specs already checked against the template (a spec bound in many instances is checked once)."""


def resolve(tree: AgentsTree) -> list[ResolvedInstance]:
    """Resolves every instance of the loaded environments, sorted by (environment, org, domain, instance).
    Raises ManifestError with every problem found."""
    problems = limit_problems(tree)
    bound = _bind_entries(tree, problems)
    resolved = []
    for instance in sorted(bound, key=lambda b: (b.env, b.key)):
        outcome = _resolve_one(tree, instance)
        if isinstance(outcome, ResolvedInstance):
            resolved.append(outcome)
        else:
            problems.extend(outcome)
    problems.extend(_hostname_clashes(resolved, {(b.env, b.key): b for b in bound}))
    raise_if_any(problems)
    return resolved


def _bind_entries(tree: AgentsTree, problems: list[Problem]) -> list[_BoundInstance]:
    """Every instance of every environment with its entries, checking each entry on the way."""
    template = tree.template.model.spec
    binding_pass = _BindingPass(
        tree=tree,
        problems=problems,
        system_roles={a.agent_id: a.system_role for a in template.system_agents},
        custom_catalogue={a.agent_id for a in template.custom_agents},
    )
    bound: list[_BoundInstance] = []
    for env, source in sorted(tree.environments.items()):
        problems.extend(platform_settings_problems(tree, env, source))
        bound.extend(_bind_environment(binding_pass, env, source))
    return bound


def _bind_environment(binding_pass: _BindingPass, env: str, source: Loaded[AgentManifest]) -> list[_BoundInstance]:
    """One environment manifest's instances. An entry binding an agent twice to an instance is reported and
    left out; every other entry is checked against its spec and the template, and bound."""
    problems = binding_pass.problems
    first_binding: dict[tuple[InstanceKey, str], int] = {}
    instances: dict[InstanceKey, _BoundInstance] = {}
    for index, entry in enumerate(source.model.spec.entries):
        problems.extend(wrong_environment_problems(source, index, env))
        key = entry.instance_key
        first_index = first_binding.setdefault((key, entry.agent_id), index)
        if first_index != index:
            problems.append(duplicate_binding_problem(source, index, first_index))
            continue
        problems.extend(name_problems(source, index, binding_pass.known_names))
        spec = binding_pass.tree.specs.get(entry.yaml_path)
        if spec is not None:
            problems.extend(_spec_checks(binding_pass, source, index, spec))
        instances.setdefault(key, _BoundInstance(env, key, source)).bindings.append(_Binding(index, entry, spec))
    return list(instances.values())


def _spec_checks(
    binding_pass: _BindingPass, source: Loaded[AgentManifest], index: int, spec: Loaded[AgentSpec]
) -> list[Problem]:
    """The entry against the spec it names; the spec against the template, the first time it is named."""
    tree = binding_pass.tree
    problems = binding_problems(source, index, spec, binding_pass.system_roles, binding_pass.custom_catalogue)
    yaml_path = source.model.spec.entries[index].yaml_path
    if yaml_path not in binding_pass.checked_specs:
        binding_pass.checked_specs.add(yaml_path)
        problems.extend(spec_problems(spec, tree.template.model, tree.template.file))
    return problems


def _hostname_clashes(
    resolved: list[ResolvedInstance], bound: dict[tuple[str, InstanceKey], _BoundInstance]
) -> list[Problem]:
    """Two instances whose ids derive the same hostname: the first in sorted order keeps it."""
    problems = []
    hostnames: dict[str, str] = {}
    for instance in resolved:
        env, key, host = instance.environment, instance.key, instance.manifest.spec.hostname
        if host in hostnames:
            where = bound[(env, key)]
            message = (
                f"instance {env}/{key.selector} derives the hostname {host!r}, "
                f"which instance {hostnames[host]} already has; rename one of them"
            )
            problems.append(entry_problem(where.source, where.first_index, "instance_id", message))
        hostnames.setdefault(host, f"{env}/{key.selector}")
    return problems


@dataclass(frozen=True)
class _InstanceAgents:
    """An instance's bound agents, system agents in the template's order, then custom agents by id."""

    system: list[InstanceAgent]
    custom: list[InstanceAgent]
    secrets: set[str]
    """The template's secrets and every agent's."""
    spec_files: dict[str, bytes]
    specs: dict[str, AgentSpec]
    loaded: list[Loaded[AgentSpec]]


def _resolve_one(tree: AgentsTree, instance: _BoundInstance) -> ResolvedInstance | list[Problem]:
    """One instance, or the problems that stand in its way (none when they are reported elsewhere: a spec that
    did not load, an environment without platform settings)."""
    env, key = instance.env, instance.key
    missing = _missing_system_agents(tree, instance)
    settings = tree.platform.model.spec.environments.get(env)
    if settings is None or missing or any(b.spec is None for b in instance.bindings):
        return missing
    host, stack = naming.hostname(key, settings.zone.name), naming.instance_stack_name(env, key)
    too_long = _name_length_problems(instance, host, stack)
    deploy = _deploy_settings(tree, instance)
    if isinstance(deploy, Problem):
        return [*too_long, deploy]
    if too_long:
        return too_long
    agents = _instance_agents(tree, instance)
    declared = mcp_servers_for(tree.template.model.spec.mcp, env, key)
    servers = used_servers(declared, agents.loaded)
    allow_private = settings.egress.allow_private_targets
    server_problems = mcp_problems(
        tree, env, key, declared, servers, agents.secrets, agents.loaded, allow_private_targets=allow_private
    )
    if server_problems:
        return server_problems
    alarms = alarms_for(tree.template.model.spec.deploy, env, key)
    idle_timeout = settings.load_balancer.idle_timeout_seconds
    if alarms.p95_response_seconds >= idle_timeout:
        return [
            Problem(
                file=tree.template.file,
                field="spec.deploy.alarms.p95_response_seconds",
                message=f"instance {env}/{key.selector}: p95_response_seconds {alarms.p95_response_seconds:g} is not "
                f"below the load balancer's idle timeout in environment {env!r} ({idle_timeout} s, "
                f"{tree.platform.file}): no response can take that long, so the alarm could never fire. Lower it",
            )
        ]
    manifest = _instance_manifest(
        tree, instance, host=host, stack=stack, deploy=deploy, agents=agents, servers=servers, egress=settings.egress
    )
    return ResolvedInstance(manifest=manifest, spec_files=agents.spec_files, specs=agents.specs, alarms=alarms)


def _missing_system_agents(tree: AgentsTree, instance: _BoundInstance) -> list[Problem]:
    """Every instance binds every system agent the template names."""
    bound = {b.entry.agent_id for b in instance.bindings}
    missing = [a.agent_id for a in tree.template.model.spec.system_agents if a.agent_id not in bound]
    if not missing:
        return []
    message = f"instance {instance.key.selector} lacks system agents the template requires: {', '.join(missing)}"
    return [entry_problem(instance.source, instance.first_index, None, message)]


def _name_length_problems(instance: _BoundInstance, host: str, stack: str) -> list[Problem]:
    """The names derived from the instance's ids must fit DNS and CloudFormation."""
    label = naming.hostname_label(instance.key)
    return [
        entry_problem(
            instance.source,
            instance.first_index,
            "instance_id",
            f"the {what} {value!r} is {len(value)} characters; {rule} allows {limit}. Shorten the ids",
        )
        for what, value, limit, rule in (
            ("hostname label (organization-domain-instance)", label, naming.MAX_HOSTNAME_LABEL, "DNS"),
            ("hostname", host, naming.MAX_HOSTNAME, "DNS"),
            ("stack name", stack, naming.MAX_STACK_NAME, "CloudFormation"),
        )
        if len(value) > limit
    ]


def _deploy_settings(tree: AgentsTree, instance: _BoundInstance) -> DeploySettings | Problem:
    """The instance's sizing from the template's defaults and overrides, or why they make no valid sizing."""
    env, key = instance.env, instance.key
    try:
        return deploy_for(tree.template.model.spec.deploy, env, key)
    except ValueError as exc:
        return Problem(
            file=tree.template.file,
            field="spec.deploy.overrides",
            message=f"the sizing for instance {env}/{key.selector} is invalid: {exc}",
        )


def _instance_agents(tree: AgentsTree, instance: _BoundInstance) -> _InstanceAgents:
    """The instance's agents, secrets and spec files (every binding's spec loaded: `_resolve_one` checked)."""
    template = tree.template.model.spec
    system_order = {a.agent_id: i for i, a in enumerate(template.system_agents)}
    loaded = [(b.entry, b.spec) for b in instance.bindings if b.spec is not None]
    agents = _InstanceAgents(
        system=[], custom=[], secrets=set(template.secrets), spec_files={}, specs={}, loaded=[s for _, s in loaded]
    )
    for entry, spec in sorted(loaded, key=lambda pair: (system_order.get(pair[0].agent_id, 99), pair[0].agent_id)):
        agent = InstanceAgent(
            agent_id=entry.agent_id, role=spec.model.spec.role, version=entry.version, spec_path=entry.yaml_path
        )
        (agents.system if entry.is_system_agent else agents.custom).append(agent)
        agents.secrets.update(spec.model.spec.secrets)
        agents.spec_files[entry.yaml_path] = spec.doc.raw
        agents.specs[entry.yaml_path] = spec.model
    return agents


def _instance_manifest(
    tree: AgentsTree,
    instance: _BoundInstance,
    *,
    host: str,
    stack: str,
    deploy: DeploySettings,
    agents: _InstanceAgents,
    servers: list[ServerAt],
    egress: EgressSettings,
) -> AgentInstance:
    """The instance manifest: its identity from its first entry, its agents, sizing, secrets and MCP settings."""
    template, key, source = tree.template.model, instance.key, instance.source
    entry = instance.bindings[0].entry
    return AgentInstance(
        apiVersion="agent-foundry/v1",
        kind="AgentInstance",
        metadata=InstanceMetadata(
            name=naming.instance_name(key),
            source_manifest=source.file.removeprefix(str(tree.root) + "/"),
            template=tree.template.file.removeprefix(str(tree.root) + "/"),
            manifest_version=source.model.metadata.version,
            template_version=template.metadata.version,
        ),
        spec=InstanceSpec(
            identity=InstanceIdentity(
                organization_id=key.organization_id,
                organization_name=entry.organization_name,
                domain_id=key.domain_id,
                domain_name=entry.domain_name,
                environment=instance.env,
                instance_id=key.instance_id,
            ),
            hostname=host,
            stack_name=stack,
            system_agents=agents.system,
            custom_agents=agents.custom,
            deploy=deploy,
            secrets=sorted(agents.secrets),
            mcp=instance_mcp(template.spec.mcp, [server for server, _ in servers]),
            limits=template.spec.limits,
            egress=egress,
        ),
    )
