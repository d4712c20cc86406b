"""Environment manifests + instance template -> one concrete instance manifest per (org, domain, instance).

Pure: works on the validated documents of an AgentsTree and touches no files, so every rule is testable alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from foundry.files.safe_yaml import LinePath, dotted
from foundry.manifests import naming
from foundry.manifests.loader import AgentsTree, Loaded
from foundry.manifests.problems import Problem, raise_if_any
from foundry.manifests.schema import (
    AgentInstance,
    AgentInstanceTemplate,
    AgentManifest,
    AgentSpec,
    DeploySettings,
    ExternalMcpServer,
    InstanceAgent,
    InstanceIdentity,
    InstanceKey,
    InstanceMetadata,
    InstanceSpec,
    ManifestEntry,
    McpToolConfig,
    OverrideScope,
    TemplateDeploy,
    TemplateMcp,
)
from instance_contract.model_choice import ModelChoiceError, agent_model


@dataclass(frozen=True)
class ResolvedInstance:
    """An instance manifest plus the raw bytes of every agent spec it references (for its bundle)."""

    manifest: AgentInstance
    spec_files: dict[str, bytes]
    specs: dict[str, AgentSpec]
    """Both keyed by spec_path (the entry's yaml_path, relative to `agents/`)."""

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
    index: int
    entry: ManifestEntry
    spec: Loaded[AgentSpec] | None


def _entry_problem(source: Loaded[AgentManifest], index: int, field: str | None, message: str) -> Problem:
    entry = source.model.spec.entries[index]
    loc: LinePath = ("spec", "entries", index) + ((field,) if field else ())
    return Problem(
        file=source.file,
        entry=f"entry {index} ({entry.agent_id})",
        field=dotted(loc),
        line=source.doc.line_of(loc),
        message=message,
    )


def deploy_for(deploy: TemplateDeploy, environment: str, key: InstanceKey) -> DeploySettings:
    """Defaults, then every matching override in file order (later ones win)."""
    values = deploy.defaults.model_dump()
    scope = set(OverrideScope.model_fields)
    for override in deploy.overrides:
        if override.applies_to(environment, key):
            values.update({k: v for k, v in override.model_dump(exclude=scope).items() if v is not None})
    return DeploySettings.model_validate(values)


def mcp_servers_for(mcp: TemplateMcp, environment: str, key: InstanceKey) -> list[tuple[ExternalMcpServer, LinePath]]:
    """The template's external MCP servers, then every matching override in file order: a server replaces the one
    of the same name in place, or is added. Each comes with the template location it was declared at."""
    chosen: dict[str, tuple[ExternalMcpServer, LinePath]] = {
        server.name: (server, ("spec", "mcp", "servers", i)) for i, server in enumerate(mcp.servers)
    }
    for o, override in enumerate(mcp.server_overrides):
        if override.applies_to(environment, key):
            for i, server in enumerate(override.servers):
                chosen[server.name] = (server, ("spec", "mcp", "server_overrides", o, "servers", i))
    return list(chosen.values())


def used_servers(
    servers: list[tuple[ExternalMcpServer, LinePath]], specs: list[Loaded[AgentSpec]]
) -> list[tuple[ExternalMcpServer, LinePath]]:
    """The servers some agent of the instance has a tool of: an instance without the ticket agent neither connects
    to the ticketing server nor needs its secret."""
    used = {tool.split(".", 1)[0] for spec in specs for tool in spec.model.spec.tools if "." in tool}
    return [(server, loc) for server, loc in servers if server.name in used]


def instance_mcp(mcp: TemplateMcp, servers: list[ExternalMcpServer]) -> McpToolConfig:
    """The instance manifest's `mcp`: the template's settings with this instance's own external servers."""
    settings = {name: getattr(mcp, name) for name in McpToolConfig.model_fields if name != "servers"}
    return McpToolConfig(**settings, servers=servers)


def _mcp_problems(
    tree: AgentsTree,
    env: str,
    key: InstanceKey,
    servers: list[tuple[ExternalMcpServer, LinePath]],
    secrets: set[str],
    specs: list[Loaded[AgentSpec]],
) -> list[Problem]:
    """A server whose bearer secret the instance lacks, and an agent listing a tool of a server the instance does
    not declare: both would fail only at run time, so they fail here."""
    where = f"instance {env}/{key.selector}"
    problems = []
    for server, loc in servers:
        if server.bearer_secret is not None and server.bearer_secret not in secrets:
            field_loc: LinePath = (*loc, "bearer_secret")
            problems.append(
                tree.template.problem_at(
                    field_loc,
                    f"server {server.name!r} needs secret {server.bearer_secret!r}, which {where} does not have "
                    f"(its secrets: {', '.join(sorted(secrets)) or 'none'}); add it to the template's secrets "
                    "or to the spec of an agent that uses the server",
                )
            )
    declared = {server.name for server, _ in servers}
    for spec in specs:
        for i, tool in enumerate(spec.model.spec.tools):
            server_name = tool.split(".", 1)[0] if "." in tool else None
            if server_name is not None and server_name not in declared:
                tool_loc: LinePath = ("spec", "tools", i)
                problems.append(
                    spec.problem_at(
                        tool_loc,
                        f"{tool!r} is a tool of MCP server {server_name!r}, which {where} does not declare "
                        f"(its servers: {', '.join(sorted(declared)) or 'none'}); declare it in the template's "
                        f"spec.mcp.servers ({tree.template.file}) or remove the tool",
                    )
                )
    return problems


def resolve(tree: AgentsTree) -> list[ResolvedInstance]:
    """Resolves every instance of the loaded environments, sorted by (environment, org, domain, instance).
    Raises ManifestError with every problem found."""
    problems: list[Problem] = []
    template = tree.template.model.spec
    system_roles = {a.agent_id: a.system_role for a in template.system_agents}
    custom_catalogue = {a.agent_id for a in template.custom_agents}
    names: dict[tuple[str, str], tuple[str, str]] = {}
    instances: dict[tuple[str, InstanceKey], list[_Binding]] = defaultdict(list)
    sources: dict[tuple[str, InstanceKey], Loaded[AgentManifest]] = {}

    problems.extend(_limit_problems(tree))
    checked_specs: set[str] = set()
    for env, source in sorted(tree.environments.items()):
        seen: dict[tuple[InstanceKey, str], int] = {}
        if env not in tree.platform.model.spec.environments:
            problems.append(
                Problem(
                    file=tree.platform.file,
                    field=f"spec.environments.{env}",
                    message=f"environment {env!r} (from {source.file}) has no platform settings here",
                )
            )
        for index, entry in enumerate(source.model.spec.entries):
            where = f"entry {index} ({entry.agent_id})"
            if entry.environment != env:
                problems.append(
                    _entry_problem(
                        source,
                        index,
                        "environment",
                        f"found {entry.environment!r} but this file is the {env!r} environment's manifest",
                    )
                )
            key = entry.instance_key
            if (key, entry.agent_id) in seen:
                problems.append(
                    _entry_problem(
                        source,
                        index,
                        "agent_id",
                        f"{entry.agent_id!r} is bound to instance {key.selector} twice "
                        f"(also entry {seen[(key, entry.agent_id)]}); remove one",
                    )
                )
                continue
            seen[(key, entry.agent_id)] = index
            for label, ident, name in (
                ("organization", entry.organization_id, entry.organization_name),
                ("domain", f"{entry.organization_id}/{entry.domain_id}", entry.domain_name),
            ):
                known = names.setdefault((label, ident), (name, f"{source.file} {where}"))
                if known[0] != name:
                    problems.append(
                        _entry_problem(
                            source,
                            index,
                            f"{label}_name",
                            f"{label} {ident!r} is named {name!r} here but {known[0]!r} in {known[1]}; "
                            "one id, one name",
                        )
                    )
            spec = tree.specs.get(entry.yaml_path)
            if spec is not None:
                problems.extend(_check_spec(source, index, entry, spec, system_roles, custom_catalogue))
                if entry.yaml_path not in checked_specs:
                    checked_specs.add(entry.yaml_path)
                    problems.extend(spec_problems(spec, tree.template.model, tree.template.file))
            instances[(env, key)].append(_Binding(index, entry, spec))
            sources[(env, key)] = source

    resolved: list[ResolvedInstance] = []
    hostnames: dict[str, str] = {}
    for (env, key), bindings in sorted(instances.items()):
        source = sources[(env, key)]
        instance = _resolve_one(tree, env, key, bindings, source, problems)
        if instance is None:
            continue
        host = instance.manifest.spec.hostname
        if host in hostnames:
            first = bindings[0]
            problems.append(
                _entry_problem(
                    source,
                    first.index,
                    "instance_id",
                    f"instance {env}/{key.selector} derives the hostname {host!r}, "
                    f"which instance {hostnames[host]} already has; rename one of them",
                )
            )
        hostnames.setdefault(host, f"{env}/{key.selector}")
        resolved.append(instance)
    raise_if_any(problems)
    return resolved


def _limit_problems(tree: AgentsTree) -> list[Problem]:
    """The template's request time limit must end a request before the load balancer gives up on it (else the
    caller sees a 504 instead of the structured error)."""
    limits = tree.template.model.spec.limits
    loc: LinePath = ("spec", "limits", "request_timeout_seconds")
    return [
        tree.template.problem_at(
            loc,
            f"{limits.request_timeout_seconds:g} s is not below the load balancer's idle timeout in environment "
            f"{env!r} ({settings.load_balancer.idle_timeout_seconds} s, {tree.platform.file}); callers would get "
            "the load balancer's 504 instead of the request's structured timeout error. Lower it, or raise "
            "load_balancer.idle_timeout_seconds",
        )
        for env, settings in sorted(tree.platform.model.spec.environments.items())
        if env in tree.environments and limits.request_timeout_seconds >= settings.load_balancer.idle_timeout_seconds
    ]


def spec_problems(spec: Loaded[AgentSpec], template: AgentInstanceTemplate, template_file: str) -> list[Problem]:
    """What an agent spec may not say given the template: a model nobody names, or a governance input limit
    above the instance's (the backend memory would then refuse a message governance let through)."""
    problems = []
    body = spec.model.spec
    try:
        agent_model(spec.model.metadata.agent_id, body.model, template.spec.mcp)
    except ModelChoiceError as exc:
        loc: LinePath = ("spec", "model")
        problems.append(Problem(file=spec.file, field=dotted(loc), line=spec.doc.line_of(loc), message=str(exc)))
    limit = template.spec.limits.max_input_chars
    if body.policy is not None and body.policy.max_input_chars is not None and body.policy.max_input_chars > limit:
        loc = ("spec", "policy", "max_input_chars")
        problems.append(
            Problem(
                file=spec.file,
                field=dotted(loc),
                line=spec.doc.line_of(loc),
                message=(
                    f"{body.policy.max_input_chars} is above the instance limit spec.limits.max_input_chars "
                    f"({limit}, {template_file}); the governance policy may only be stricter. Lower it, leave it "
                    "out, or raise the template's limit"
                ),
            )
        )
    return problems


def _check_spec(
    source: Loaded[AgentManifest],
    index: int,
    entry: ManifestEntry,
    spec: Loaded[AgentSpec],
    system_roles: Mapping[str, str],
    custom_catalogue: set[str],
) -> list[Problem]:
    problems = []
    meta = spec.model.metadata
    role = spec.model.spec.role
    if meta.agent_id != entry.agent_id:
        problems.append(
            _entry_problem(
                source,
                index,
                "agent_id",
                f"{entry.agent_id!r} disagrees with {spec.file}, whose metadata.agent_id is {meta.agent_id!r}",
            )
        )
    if meta.version != entry.version:
        problems.append(
            _entry_problem(
                source,
                index,
                "version",
                f"{entry.version!r} disagrees with {spec.file}, whose metadata.version is {meta.version!r}",
            )
        )
    if entry.is_system_agent:
        expected = system_roles.get(entry.agent_id)
        if expected is None:
            problems.append(
                _entry_problem(
                    source,
                    index,
                    "agent_id",
                    f"{entry.agent_id!r} is marked is_system_agent but is not one of the template's system agents "
                    f"({', '.join(sorted(system_roles))})",
                )
            )
        elif role != expected:
            problems.append(
                _entry_problem(
                    source,
                    index,
                    "yaml_path",
                    f"{spec.file} has role {role!r}; the template gives {entry.agent_id!r} the role {expected!r}",
                )
            )
    else:
        if entry.agent_id not in custom_catalogue:
            problems.append(
                _entry_problem(
                    source,
                    index,
                    "agent_id",
                    f"unknown custom agent {entry.agent_id!r}; the template's custom_agents are: "
                    f"{', '.join(sorted(custom_catalogue)) or 'none'}",
                )
            )
        if role != "worker":
            problems.append(
                _entry_problem(
                    source,
                    index,
                    "yaml_path",
                    f"{spec.file} has role {role!r}; a custom agent must have role 'worker'",
                )
            )
    return problems


def _resolve_one(
    tree: AgentsTree,
    env: str,
    key: InstanceKey,
    bindings: list[_Binding],
    source: Loaded[AgentManifest],
    problems: list[Problem],
) -> ResolvedInstance | None:
    template = tree.template.model
    first = bindings[0]
    bound = {b.entry.agent_id for b in bindings}
    missing = [a.agent_id for a in template.spec.system_agents if a.agent_id not in bound]
    if missing:
        problems.append(
            _entry_problem(
                source,
                first.index,
                None,
                f"instance {key.selector} lacks system agents the template requires: {', '.join(missing)}",
            )
        )
    settings = tree.platform.model.spec.environments.get(env)
    if settings is None or missing or any(b.spec is None for b in bindings):
        return None

    host = naming.hostname(key, settings.zone.name)
    label = naming.hostname_label(key)
    stack = naming.instance_stack_name(env, key)
    too_long = [
        f"the {what} {value!r} is {len(value)} characters; {rule} allows {limit}. Shorten the ids"
        for what, value, limit, rule in (
            ("hostname label (organization-domain-instance)", label, naming.MAX_HOSTNAME_LABEL, "DNS"),
            ("hostname", host, naming.MAX_HOSTNAME, "DNS"),
            ("stack name", stack, naming.MAX_STACK_NAME, "CloudFormation"),
        )
        if len(value) > limit
    ]
    problems.extend(_entry_problem(source, first.index, "instance_id", message) for message in too_long)
    ok = not too_long
    try:
        deploy = deploy_for(template.spec.deploy, env, key)
    except ValueError as exc:
        ok = False
        problems.append(
            Problem(
                file=tree.template.file,
                field="spec.deploy.overrides",
                message=f"the sizing for instance {env}/{key.selector} is invalid: {exc}",
            )
        )
    if not ok:
        return None

    system_order = {a.agent_id: i for i, a in enumerate(template.spec.system_agents)}
    system: list[InstanceAgent] = []
    custom: list[InstanceAgent] = []
    secrets = set(template.spec.secrets)
    spec_files: dict[str, bytes] = {}
    specs: dict[str, AgentSpec] = {}
    loaded = [(b.entry, b.spec) for b in bindings if b.spec is not None]  # all of them: checked above
    for entry, spec in sorted(loaded, key=lambda pair: (system_order.get(pair[0].agent_id, 99), pair[0].agent_id)):
        agent = InstanceAgent(
            agent_id=entry.agent_id,
            role=spec.model.spec.role,
            version=entry.version,
            spec_path=entry.yaml_path,
        )
        (system if entry.is_system_agent else custom).append(agent)
        secrets.update(spec.model.spec.secrets)
        spec_files[entry.yaml_path] = spec.doc.raw
        specs[entry.yaml_path] = spec.model

    servers = used_servers(mcp_servers_for(template.spec.mcp, env, key), [spec for _, spec in loaded])
    mcp_problems = _mcp_problems(tree, env, key, servers, secrets, [spec for _, spec in loaded])
    if mcp_problems:
        problems.extend(mcp_problems)
        return None

    entry = first.entry
    manifest = AgentInstance(
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
                environment=env,
                instance_id=key.instance_id,
            ),
            hostname=host,
            stack_name=stack,
            system_agents=system,
            custom_agents=custom,
            deploy=deploy,
            secrets=sorted(secrets),
            mcp=instance_mcp(template.spec.mcp, [server for server, _ in servers]),
            limits=template.spec.limits,
        ),
    )
    return ResolvedInstance(manifest=manifest, spec_files=spec_files, specs=specs)
