"""The rules that span files: what an environment manifest's entries, the agent specs they name, the instance
template and the platform settings must agree on. Each check returns the problems it finds, phrased for the
person who edits the file it points at; resolution (`foundry.manifests.resolve`) collects them all. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from foundry.files.safe_yaml import LinePath, dotted
from foundry.manifests.loader import AgentsTree, Loaded
from foundry.manifests.problems import Problem
from foundry.manifests.schema import AgentInstanceTemplate, AgentManifest, AgentSpec, ManifestEntry
from instance_contract.model_choice import ModelChoiceError, agent_model

FieldMessage = tuple[str, str]
"""(the entry's field, what is wrong with it): made into a Problem by `entry_problem`."""

KnownNames = dict[tuple[str, str], tuple[str, str]]
"""('organization' | 'domain', id) -> (its name, where that name was first given)."""


def entry_problem(source: Loaded[AgentManifest], index: int, field: str | None, message: str) -> Problem:
    """A problem with entry `index` of an environment manifest (or with one of its fields)."""
    entry = source.model.spec.entries[index]
    loc: LinePath = ("spec", "entries", index) + ((field,) if field else ())
    return Problem(
        file=source.file,
        entry=f"entry {index} ({entry.agent_id})",
        field=dotted(loc),
        line=source.doc.line_of(loc),
        message=message,
    )


def limit_problems(tree: AgentsTree) -> list[Problem]:
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


def platform_settings_problems(tree: AgentsTree, env: str, source: Loaded[AgentManifest]) -> list[Problem]:
    """An environment manifest needs its environment's settings in the platform file."""
    if env in tree.platform.model.spec.environments:
        return []
    return [
        Problem(
            file=tree.platform.file,
            field=f"spec.environments.{env}",
            message=f"environment {env!r} (from {source.file}) has no platform settings here",
        )
    ]


def wrong_environment_problems(source: Loaded[AgentManifest], index: int, env: str) -> list[Problem]:
    """Every entry of `manifest.<env>.yaml` belongs to environment <env>."""
    entry = source.model.spec.entries[index]
    if entry.environment == env:
        return []
    message = f"found {entry.environment!r} but this file is the {env!r} environment's manifest"
    return [entry_problem(source, index, "environment", message)]


def duplicate_binding_problem(source: Loaded[AgentManifest], index: int, first_index: int) -> Problem:
    """Entry `index` binds the same agent to the same instance as entry `first_index`."""
    entry = source.model.spec.entries[index]
    return entry_problem(
        source,
        index,
        "agent_id",
        f"{entry.agent_id!r} is bound to instance {entry.instance_key.selector} twice "
        f"(also entry {first_index}); remove one",
    )


def name_problems(source: Loaded[AgentManifest], index: int, known: KnownNames) -> list[Problem]:
    """One id, one name: an organization or domain named differently than where it was first named. Records the
    names this entry gives first in `known`, for the entries after it (in every environment)."""
    entry = source.model.spec.entries[index]
    where = f"entry {index} ({entry.agent_id})"
    problems = []
    for label, ident, name in (
        ("organization", entry.organization_id, entry.organization_name),
        ("domain", f"{entry.organization_id}/{entry.domain_id}", entry.domain_name),
    ):
        first_name, first_where = known.setdefault((label, ident), (name, f"{source.file} {where}"))
        if first_name != name:
            message = f"{label} {ident!r} is named {name!r} here but {first_name!r} in {first_where}; one id, one name"
            problems.append(entry_problem(source, index, f"{label}_name", message))
    return problems


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


def binding_problems(
    source: Loaded[AgentManifest],
    index: int,
    spec: Loaded[AgentSpec],
    system_roles: Mapping[str, str],
    custom_catalogue: set[str],
) -> list[Problem]:
    """What an entry and the agent spec it names must agree on: the agent's id and version, and the role the
    template gives a system agent (a custom agent must be in the template's catalogue and be a worker)."""
    entry = source.model.spec.entries[index]
    found = [
        *_identity_mismatches(entry, spec),
        *(
            _system_role_mismatches(entry, spec, system_roles)
            if entry.is_system_agent
            else _custom_agent_mismatches(entry, spec, custom_catalogue)
        ),
    ]
    return [entry_problem(source, index, field, message) for field, message in found]


def _identity_mismatches(entry: ManifestEntry, spec: Loaded[AgentSpec]) -> list[FieldMessage]:
    meta = spec.model.metadata
    found = []
    if meta.agent_id != entry.agent_id:
        found.append(
            ("agent_id", f"{entry.agent_id!r} disagrees with {spec.file}, whose metadata.agent_id is {meta.agent_id!r}")
        )
    if meta.version != entry.version:
        found.append(
            ("version", f"{entry.version!r} disagrees with {spec.file}, whose metadata.version is {meta.version!r}")
        )
    return found


def _system_role_mismatches(
    entry: ManifestEntry, spec: Loaded[AgentSpec], system_roles: Mapping[str, str]
) -> list[FieldMessage]:
    role = spec.model.spec.role
    expected = system_roles.get(entry.agent_id)
    if expected is None:
        return [
            (
                "agent_id",
                f"{entry.agent_id!r} is marked is_system_agent but is not one of the template's system agents "
                f"({', '.join(sorted(system_roles))})",
            )
        ]
    if role != expected:
        message = f"{spec.file} has role {role!r}; the template gives {entry.agent_id!r} the role {expected!r}"
        return [("yaml_path", message)]
    return []


def _custom_agent_mismatches(
    entry: ManifestEntry, spec: Loaded[AgentSpec], custom_catalogue: set[str]
) -> list[FieldMessage]:
    role = spec.model.spec.role
    found = []
    if entry.agent_id not in custom_catalogue:
        found.append(
            (
                "agent_id",
                f"unknown custom agent {entry.agent_id!r}; the template's custom_agents are: "
                f"{', '.join(sorted(custom_catalogue)) or 'none'}",
            )
        )
    if role != "worker":
        found.append(("yaml_path", f"{spec.file} has role {role!r}; a custom agent must have role 'worker'"))
    return found
