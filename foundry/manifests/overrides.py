"""What one instance takes from the template's scoped settings: its deploy sizing, its alarm thresholds and its
external MCP servers.

All follow the same rule (`OverrideScope`): the template's defaults, then every override whose scope matches the
instance, in file order, later ones winning. The MCP servers chosen this way are also checked against the instance's
secrets and its agents' tools here, since both would otherwise fail only at run time. Pure.
"""

from __future__ import annotations

from foundry.files.safe_yaml import LinePath
from foundry.manifests.alarm_settings import AlarmThresholds, apply_alarm_overrides, environment_alarm_defaults
from foundry.manifests.loader import AgentsTree, Loaded
from foundry.manifests.problems import Problem
from foundry.manifests.schema import (
    AgentSpec,
    DeploySettings,
    ExternalMcpServer,
    InstanceKey,
    McpToolConfig,
    OverrideScope,
    TemplateDeploy,
    TemplateMcp,
)
from instance_contract.egress import url_refusal

ServerAt = tuple[ExternalMcpServer, LinePath]
"""An external MCP server with the template location it was declared at (for problems that point at it)."""


def deploy_for(deploy: TemplateDeploy, environment: str, key: InstanceKey) -> DeploySettings:
    """Defaults, then every matching override in file order (later ones win)."""
    values = deploy.defaults.model_dump()
    scope = {*OverrideScope.model_fields, "alarms"}
    for override in deploy.overrides:
        if override.applies_to(environment, key):
            values.update({k: v for k, v in override.model_dump(exclude=scope).items() if v is not None})
    return DeploySettings.model_validate(values)


def alarms_for(deploy: TemplateDeploy, environment: str, key: InstanceKey) -> AlarmThresholds:
    """The environment's default thresholds, then the template's `alarms`, then every matching override's."""
    matching = [o.alarms for o in deploy.overrides if o.applies_to(environment, key)]
    return apply_alarm_overrides(environment_alarm_defaults(environment), deploy.alarms, *matching)


def mcp_servers_for(mcp: TemplateMcp, environment: str, key: InstanceKey) -> list[ServerAt]:
    """The template's external MCP servers, then every matching override in file order: a server replaces the one
    of the same name in place, or is added. Each comes with the template location it was declared at."""
    chosen: dict[str, ServerAt] = {
        server.name: (server, ("spec", "mcp", "servers", i)) for i, server in enumerate(mcp.servers)
    }
    for o, override in enumerate(mcp.server_overrides):
        if override.applies_to(environment, key):
            for i, server in enumerate(override.servers):
                chosen[server.name] = (server, ("spec", "mcp", "server_overrides", o, "servers", i))
    return list(chosen.values())


def used_servers(servers: list[ServerAt], specs: list[Loaded[AgentSpec]]) -> list[ServerAt]:
    """The servers some agent of the instance has a tool of: an instance without the ticket agent neither connects
    to the ticketing server nor needs its secret."""
    used = {tool.split(".", 1)[0] for spec in specs for tool in spec.model.spec.tools if "." in tool}
    return [(server, loc) for server, loc in servers if server.name in used]


def instance_mcp(mcp: TemplateMcp, servers: list[ExternalMcpServer]) -> McpToolConfig:
    """The instance manifest's `mcp`: the template's settings with this instance's own external servers."""
    settings = {name: getattr(mcp, name) for name in McpToolConfig.model_fields if name != "servers"}
    return McpToolConfig(**settings, servers=servers)


def mcp_problems(
    tree: AgentsTree,
    env: str,
    key: InstanceKey,
    declared: list[ServerAt],
    servers: list[ServerAt],
    secrets: set[str],
    specs: list[Loaded[AgentSpec]],
    *,
    allow_private_targets: bool = False,
) -> list[Problem]:
    """A server whose bearer secret the instance lacks, an agent listing a tool of a server the instance does
    not declare, and a server URL the environment's egress rule refuses: all would fail only at run time (or
    reach what they must not), so they fail here. `declared`: the instance's servers (mcp_servers_for), which
    approval patterns may name; `servers`: those its agents use (used_servers of them), which the rest check."""
    where = f"instance {env}/{key.selector}"
    return [
        *_url_problems(tree, env, servers, allow_private_targets),
        *_missing_secret_problems(tree, where, servers, secrets),
        *_undeclared_server_problems(tree, where, servers, specs),
        *_approval_server_problems(tree, where, declared, specs),
    ]


def _url_problems(tree: AgentsTree, env: str, servers: list[ServerAt], allow_private: bool) -> list[Problem]:
    """instance_contract.egress's rule for the URL as written; the runtime checks the resolved addresses too."""
    problems = []
    for server, loc in servers:
        refusal = url_refusal(server.url, allow_private=allow_private)
        if refusal is not None:
            where = f"server {server.name!r} in environment {env!r}"
            problems.append(tree.template.problem_at((*loc, "url"), f"{where}: {refusal}"))
    return problems


def _missing_secret_problems(tree: AgentsTree, where: str, servers: list[ServerAt], secrets: set[str]) -> list[Problem]:
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
    return problems


def _undeclared_server_problems(
    tree: AgentsTree, where: str, servers: list[ServerAt], specs: list[Loaded[AgentSpec]]
) -> list[Problem]:
    """An agent listing a tool of a server the instance does not declare."""
    declared = {server.name for server, _ in servers}
    problems = []
    for spec in specs:
        for i, tool in enumerate(spec.model.spec.tools):
            says = f"{tool!r} is a tool of"
            problems += _server_not_declared(tree, where, declared, spec, ("spec", "tools", i), tool, says, "the tool")
    return problems


def _approval_server_problems(
    tree: AgentsTree, where: str, declared_servers: list[ServerAt], specs: list[Loaded[AgentSpec]]
) -> list[Problem]:
    """A governance policy's `approval_required` entry naming a server the template does not declare for this
    instance (most likely a typo, which would leave the tool it meant to guard unguarded), and an approval timeout
    longer than the instance keeps an idle thread (its paused turn would go first)."""
    declared = {server.name for server, _ in declared_servers}
    thread_seconds = tree.template.model.spec.mcp.thread_ttl_hours * 3600
    problems = []
    for spec in specs:
        policy = spec.model.spec.policy
        if policy is not None and policy.approval_required and policy.approval_timeout_seconds > thread_seconds:
            problems.append(
                spec.problem_at(
                    ("spec", "policy", "approval_timeout_seconds"),
                    f"approval_timeout_seconds {policy.approval_timeout_seconds} is longer than {where} keeps an "
                    f"idle thread (spec.mcp.thread_ttl_hours {thread_seconds // 3600} in {tree.template.file}): "
                    "a paused turn would be forgotten before its approval expires. Shorten it or keep threads longer",
                )
            )
        for i, pattern in enumerate(policy.approval_required if policy else []):
            loc: LinePath = ("spec", "policy", "approval_required", i)
            says = f"{pattern!r} needs approval for tools of"
            problems += _server_not_declared(tree, where, declared, spec, loc, pattern, says, "the entry")
    return problems


def _server_not_declared(
    tree: AgentsTree,
    where: str,
    declared: set[str],
    spec: Loaded[AgentSpec],
    loc: LinePath,
    tool: str,
    says: str,
    entry: str,
) -> list[Problem]:
    """The problem of a spec entry at `loc` naming `tool` ('server.tool'; one without a server is built in) of a
    server the instance does not declare (`declared`: the names it does); `says` what the entry is, `entry` is what
    the fix would remove."""
    server_name = tool.split(".", 1)[0] if "." in tool else None
    if server_name is None or server_name in declared:
        return []
    message = (
        f"{says} MCP server {server_name!r}, which {where} does not declare (its servers: "
        f"{', '.join(sorted(declared)) or 'none'}); declare it in the template's spec.mcp.servers "
        f"({tree.template.file}) or remove {entry}"
    )
    return [spec.problem_at(loc, message)]
