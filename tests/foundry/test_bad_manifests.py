"""Every kind of bad input is refused with a message naming the file, the entry and the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from foundry.fleet.load import load_fleet
from foundry.manifests.problems import ManifestError, Problem
from tests.foundry.manifest_edits import (
    Doc,
    add_instance,
    edit,
    entries,
    env_manifest,
    instance_entries,
    read,
    write,
)

TEMPLATE = "manifests/manifest.instance-template.yaml"
DEV = "manifests/manifest.dev.yaml"
PROD = "manifests/manifest.prod.yaml"
IO_SPEC = "specs/system/io-agent.yaml"
PM_SPEC = "specs/workers/pm-agent.yaml"
TICKET_SPEC = "specs/workers/ticket-agent.yaml"
TICKETING = {"name": "ticketing", "url": "https://tickets.example.com/mcp", "bearer_secret": "ticket-api-token"}


@dataclass(frozen=True)
class Case:
    breaks: Callable[[Path], None]
    file: str
    """The file the error must name, relative to agents/."""
    field: str | None
    """A part of the field path the error must name (None: the whole file is wrong)."""
    says: str
    """A part of the message."""
    entry: str | None = None


def _entry0(change: Callable[[Doc], None], file: str = DEV) -> Callable[[Path], None]:
    return lambda root: edit(root / file, lambda d: change(entries(d)[0]))


def _set(key: str, value: object) -> Callable[[Doc], None]:
    return lambda e: e.__setitem__(key, value)


def _raw(file: str, text: str | bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / file
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return apply


def _long_env(root: Path) -> None:
    env = "e" * 62
    data = read(env_manifest(root, "dev"))
    for entry in entries(data):
        entry.update(environment=env, organization_id="o" * 20, domain_id="d" * 20, instance_id="i" * 21)
    write(env_manifest(root, env), data)
    platform = read(root / "platform.yaml")
    platform["spec"]["environments"][env] = platform["spec"]["environments"]["dev"]
    platform["spec"]["environments"][env]["zone"] = {"name": "long.agentfoundry.internal", "private": True}
    write(root / "platform.yaml", platform)


def _same_hostname(root: Path) -> None:
    add_instance(root, "prod", "a-b", "c", "x", like=("acme", "retail", "us-east-1"))
    add_instance(root, "prod", "a", "b-c", "x", like=("acme", "retail", "us-east-1"))
    edit(
        env_manifest(root, "prod"),
        lambda d: [e.update(domain_name=f"Domain {e['domain_id']}") for e in entries(d) if e["domain_id"] in "b-c"],
    )


def _drop_system_agent(root: Path) -> None:
    def change(data: Doc) -> None:
        data["spec"]["entries"] = [
            e
            for e in entries(data)
            if not (e["instance_id"] == "dev" and e["organization_id"] == "acme" and e["agent_id"] == "coherence-agent")
        ]

    edit(env_manifest(root, "dev"), change)


def _second_org_name(root: Path) -> None:
    edit(
        env_manifest(root, "prod"),
        lambda d: instance_entries(d, "acme", "retail", "us-east-1")[0].update(organization_name="ACME Inc"),
    )


def _second_domain_name(root: Path) -> None:
    edit(
        env_manifest(root, "staging"),
        lambda d: instance_entries(d, "acme", "retail", "us-east-1")[2].update(domain_name="Shop"),
    )


def _duplicate_binding(root: Path) -> None:
    edit(env_manifest(root, "dev"), lambda d: entries(d).append(dict(entries(d)[0])))


def _spec_id(root: Path) -> None:
    edit(root / IO_SPEC, lambda d: d["metadata"].update(agent_id="input-output-agent"))


def _spec_version(root: Path) -> None:
    edit(root / PM_SPEC, lambda d: d["metadata"].update(version="2.0.0"))


def _not_a_worker(root: Path) -> None:
    edit(root / DEV, lambda d: [e.update(yaml_path=IO_SPEC) for e in entries(d) if e["agent_id"] == "pm-agent"])


def _unknown_custom_agent(root: Path) -> None:
    def change(data: Doc) -> None:
        for e in entries(data):
            if e["agent_id"] == "qa-agent":
                e["agent_id"] = "legal-agent"

    edit(root / DEV, change)
    edit(root / "specs/workers/qa-agent.yaml", lambda d: d["metadata"].update(agent_id="legal-agent"))


def _template_without_governance(root: Path) -> None:
    edit(
        root / TEMPLATE,
        lambda d: d["spec"].update(system_agents=[a for a in d["spec"]["system_agents"] if a["role"] != "governance"]),
    )


def _platform_without_dev(root: Path) -> None:
    edit(root / "platform.yaml", lambda d: d["spec"]["environments"].pop("dev"))


def _secret_in_prompt(root: Path) -> None:
    edit(root / PM_SPEC, lambda d: d["spec"].update(prompt="Use key AKIAIOSFODNN7EXAMPLE to call the API."))


def _private_key(root: Path) -> None:
    edit(
        root / PM_SPEC,
        lambda d: d["spec"].update(
            prompt="-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----"
        ),
    )


def _token_in_tag(root: Path) -> None:
    _entry0(_set("tags", ["ghp_" + "a" * 36]))(root)


def _unknown_tool(root: Path) -> None:
    edit(root / PM_SPEC, lambda d: d["spec"].update(tools=["model_generate", "shell_exec"]))


def _bad_regex(root: Path) -> None:
    edit(root / "specs/system/governance-agent.yaml", lambda d: d["spec"]["policy"].update(blocked_patterns=["(oops"]))


def _approval(patterns: list[object], timeout: object = 3600, thread_ttl_hours: int = 720) -> Callable[[Path], None]:
    """The governance policy asks approval for `patterns`; the template declares the ticketing server."""

    def apply(root: Path) -> None:
        _mcp([TICKETING])(root)
        edit(root / TEMPLATE, lambda d: d["spec"]["mcp"].update(thread_ttl_hours=thread_ttl_hours))
        policy = {"approval_required": patterns, "approval_timeout_seconds": timeout}
        edit(root / "specs/system/governance-agent.yaml", lambda d: d["spec"]["policy"].update(policy))

    return apply


def _symlink_out(root: Path) -> None:
    (root / "specs/system/linked.yaml").symlink_to(root.parent.parent / "outside.yaml")
    (root.parent.parent / "outside.yaml").write_text("a: 1\n")
    _entry0(_set("yaml_path", "specs/system/linked.yaml"))(root)


def _bad_fargate_size(root: Path) -> None:
    edit(root / TEMPLATE, lambda d: d["spec"]["deploy"]["defaults"].update(cpu=256, memory=4096))


PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----"

ALIAS_BOMB = """apiVersion: agent-foundry/v1
kind: AgentSpec
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


def _mcp(
    servers: list[Doc], overrides: list[Doc] | None = None, tools: list[str] | None = None
) -> Callable[[Path], None]:
    """Declares external MCP servers in the template and gives the ticket agent `tools` (default: one ticketing
    tool)."""

    def apply(root: Path) -> None:
        def change(data: Doc) -> None:
            data["spec"]["mcp"]["servers"] = servers
            if overrides is not None:
                data["spec"]["mcp"]["server_overrides"] = overrides

        edit(root / TEMPLATE, change)
        extra = tools if tools is not None else ["ticketing.create_ticket"]
        edit(root / TICKET_SPEC, lambda d: d["spec"]["tools"].extend(extra))

    return apply


CASES: dict[str, Case] = {
    "wrong apiVersion": Case(
        lambda r: edit(r / DEV, lambda d: d.update(apiVersion="agent-foundry/v2")), DEV, "apiVersion", "v2"
    ),
    "wrong kind": Case(
        lambda r: edit(r / DEV, lambda d: d.update(kind="AgentInstanceTemplate")), DEV, "kind", "AgentManifest"
    ),
    "unknown key in an entry": Case(
        _entry0(_set("colour", "blue")), DEV, "spec.entries[0].colour", "unknown key", "entry 0 (io-agent)"
    ),
    "missing key in an entry": Case(
        _entry0(lambda e: e.pop("organization_name")),
        DEV,
        "spec.entries[0].organization_name",
        "missing",
        "entry 0 (io-agent)",
    ),
    "string where a boolean belongs": Case(
        _entry0(_set("is_system_agent", "yes")), DEV, "spec.entries[0].is_system_agent", "boolean"
    ),
    "string where an integer belongs": Case(
        _entry0(_set("system_tier", "0")), DEV, "spec.entries[0].system_tier", "integer"
    ),
    "unknown top-level key": Case(
        lambda r: edit(r / DEV, lambda d: d.update(extra={"a": 1})), DEV, "extra", "unknown key"
    ),
    "environment disagreeing with its file": Case(
        _entry0(_set("environment", "prod")), DEV, "spec.entries[0].environment", "'dev' environment"
    ),
    "the same agent bound to one instance twice": Case(_duplicate_binding, DEV, "agent_id", "twice"),
    "an id that is not DNS-safe": Case(
        _entry0(_set("organization_id", "Acme_Corp")), DEV, "spec.entries[0].organization_id", "DNS-safe"
    ),
    "an id that starts with a hyphen": Case(
        _entry0(_set("instance_id", "-dev")), DEV, "spec.entries[0].instance_id", "DNS-safe"
    ),
    "a hostname label over 63 characters": Case(
        lambda r: edit(
            r / DEV,
            lambda d: [
                e.update(domain_id="d" * 58, domain_name="Long") for e in entries(d) if e["organization_id"] == "acme"
            ],
        ),
        DEV,
        "instance_id",
        "DNS allows 63",
    ),
    "a stack name over 128 characters": Case(_long_env, f"manifests/manifest.{'e' * 62}.yaml", "instance_id", "128"),
    "two instances deriving the same hostname": Case(_same_hostname, PROD, "instance_id", "already has"),
    "an instance missing a system agent": Case(_drop_system_agent, DEV, "spec.entries", "coherence-agent"),
    "a yaml_path that does not exist": Case(
        _entry0(_set("yaml_path", "specs/system/nope.yaml")), DEV, "spec.entries[0].yaml_path", "does not exist"
    ),
    "a yaml_path escaping agents/": Case(
        _entry0(_set("yaml_path", "../requirements.txt")), DEV, "spec.entries[0].yaml_path", "escapes"
    ),
    "a yaml_path escaping through a link": Case(_symlink_out, DEV, "spec.entries[0].yaml_path", "through a link"),
    "an absolute yaml_path": Case(_entry0(_set("yaml_path", "/etc/passwd")), DEV, "yaml_path", "escapes"),
    "a spec whose id disagrees with its entry": Case(_spec_id, DEV, "agent_id", "input-output-agent"),
    "a spec whose version disagrees with its entry": Case(_spec_version, DEV, "version", "2.0.0"),
    "a version that is not semver": Case(
        _entry0(_set("version", "1.0")), DEV, "spec.entries[0].version", "semantic version"
    ),
    "a version given as a YAML number": Case(_entry0(_set("version", 1.0)), DEV, "spec.entries[0].version", "string"),
    "an organization id with two names": Case(_second_org_name, PROD, "organization_name", "Acme Corporation"),
    "a domain id with two names": Case(_second_domain_name, "manifests/manifest.staging.yaml", "domain_name", "Shop"),
    "an empty file": Case(_raw(IO_SPEC, ""), IO_SPEC, None, "empty"),
    "a file that is a list": Case(_raw(IO_SPEC, "- a\n- b\n"), IO_SPEC, None, "top level is a list"),
    "a file that is a scalar": Case(_raw(DEV, "just text\n"), DEV, None, "top level is a scalar"),
    "a duplicate key": Case(
        _raw(IO_SPEC, "apiVersion: agent-foundry/v1\nkind: AgentSpec\nkind: AgentSpec\n"), IO_SPEC, "kind", "twice"
    ),
    "an oversized file": Case(_raw(IO_SPEC, "a: " + "x" * 1_100_000 + "\n"), IO_SPEC, None, "over the limit"),
    "an alias bomb": Case(_raw(IO_SPEC, ALIAS_BOMB), IO_SPEC, None, "aliases"),
    "a merge key": Case(_raw(IO_SPEC, "base: &b {x: 1}\nother:\n  <<: *b\n"), IO_SPEC, None, "not allowed"),
    "two YAML documents": Case(_raw(IO_SPEC, "a: 1\n---\nb: 2\n"), IO_SPEC, None, "2 YAML documents"),
    "invalid YAML syntax": Case(_raw(DEV, "spec: [unclosed\n"), DEV, None, "not valid YAML"),
    "a file that is not UTF-8": Case(_raw(IO_SPEC, b"\xff\xfe\x00a: 1"), IO_SPEC, None, "UTF-8"),
    "an AWS access key in a prompt": Case(_secret_in_prompt, PM_SPEC, "spec.prompt", "AWS access key"),
    "a private key in a prompt": Case(_private_key, PM_SPEC, "spec.prompt", "private key"),
    "a GitHub token in a tag": Case(_token_in_tag, DEV, "spec.entries[0].tags[0]", "GitHub token"),
    "a template missing a required system agent": Case(
        _template_without_governance, TEMPLATE, "spec.system_agents", "governance"
    ),
    "an unknown custom agent": Case(_unknown_custom_agent, DEV, "agent_id", "unknown custom agent 'legal-agent'"),
    "a custom agent whose spec is not a worker": Case(_not_a_worker, DEV, "yaml_path", "must have role 'worker'"),
    "an environment without platform settings": Case(
        _platform_without_dev, "platform.yaml", "spec.environments.dev", "no platform settings"
    ),
    "an unknown backend tool": Case(_unknown_tool, PM_SPEC, "spec.tools[1]", "shell_exec"),
    "a governance pattern that is not a regex": Case(
        _bad_regex, "specs/system/governance-agent.yaml", "spec.policy.blocked_patterns", "regular expression"
    ),
    "an MCP server whose secret the instance lacks": Case(
        _mcp([{**TICKETING, "bearer_secret": "other-token"}]),
        TEMPLATE,
        "spec.mcp.servers[0].bearer_secret",
        "needs secret 'other-token'",
    ),
    "an override's MCP server whose secret the instance lacks": Case(
        _mcp([TICKETING], [{"organization_id": "acme", "servers": [{**TICKETING, "bearer_secret": "acme-token"}]}]),
        TEMPLATE,
        "spec.mcp.server_overrides[0].servers[0].bearer_secret",
        "needs secret 'acme-token'",
    ),
    "two MCP servers with one name": Case(_mcp([TICKETING, TICKETING]), TEMPLATE, "spec.mcp.servers", "twice"),
    "an MCP server over plain http": Case(
        _mcp([{**TICKETING, "url": "http://tickets.example.com/mcp"}]),
        TEMPLATE,
        "spec.mcp.servers[0].url",
        "must use https",
    ),
    "an MCP server URL with credentials in it": Case(
        _mcp([{**TICKETING, "url": "https://user:pw@tickets.example.com/mcp"}]),
        TEMPLATE,
        "spec.mcp.servers[0].url",
        "bearer_secret",
    ),
    "an agent listing a tool of an undeclared MCP server": Case(
        _mcp([TICKETING], tools=["ticketing.create_ticket", "billing.refund"]),
        TICKET_SPEC,
        "spec.tools[3]",
        "'billing.refund' is a tool of MCP server 'billing'",
    ),
    "an approval for a tool of an undeclared MCP server": Case(
        _approval(["ticketing.*", "billing.refund"]),
        "specs/system/governance-agent.yaml",
        "spec.policy.approval_required[1]",
        "'billing.refund' needs approval for tools of MCP server 'billing'",
    ),
    "an approval entry that is not a server's tool": Case(
        _approval(["create_ticket"]),
        "specs/system/governance-agent.yaml",
        "spec.policy.approval_required[0]",
        "found 'create_ticket'",
    ),
    "an approval named twice": Case(
        _approval(["ticketing.*", "ticketing.*"]),
        "specs/system/governance-agent.yaml",
        "spec.policy.approval_required",
        "more than once",
    ),
    "an approval timeout longer than threads are kept": Case(
        _approval(["ticketing.*"], timeout=7200, thread_ttl_hours=1),
        "specs/system/governance-agent.yaml",
        "spec.policy.approval_timeout_seconds",
        "longer than instance",
    ),
    "an approval timeout under a minute": Case(
        _approval(["ticketing.*"], timeout=5),
        "specs/system/governance-agent.yaml",
        "spec.policy.approval_timeout_seconds",
        "greater than or equal to 60",
    ),
    "an invalid Fargate cpu/memory pair": Case(
        _bad_fargate_size, TEMPLATE, "spec.deploy.defaults", "not valid with cpu"
    ),
}


def _problems(root: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_fleet(root)
    return list(caught.value.problems)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_naming_file_and_field(name: str, agents_copy: Path) -> None:
    case = CASES[name]
    case.breaks(agents_copy)
    problems = _problems(agents_copy)
    expected_file = str(agents_copy / case.file)
    matching = [
        p
        for p in problems
        if p.file == expected_file
        and (case.field is None or (p.field is not None and case.field in p.field))
        and case.says in p.message
        and (case.entry is None or p.entry == case.entry)
    ]
    assert matching, f"no problem names {case.file} / {case.field} / {case.says!r}; got:\n" + "\n".join(
        str(p) for p in problems
    )
    rendered = str(matching[0])
    assert case.file.split("/")[-1] in rendered
    if case.field:
        assert case.field in rendered


def test_every_problem_is_reported_not_only_the_first(agents_copy: Path) -> None:
    _entry0(_set("system_tier", "0"))(agents_copy)
    edit(agents_copy / PROD, lambda d: entries(d)[3].update(version="one"))
    _secret_in_prompt(agents_copy)
    files = {p.file for p in _problems(agents_copy)}
    assert {str(agents_copy / DEV), str(agents_copy / PROD), str(agents_copy / PM_SPEC)} <= files


def test_problems_carry_the_line_of_the_field(agents_copy: Path) -> None:
    _entry0(_set("system_tier", "0"))(agents_copy)
    (problem,) = _problems(agents_copy)
    lines = (agents_copy / DEV).read_text().splitlines()
    assert problem.line is not None
    assert lines[problem.line - 1].strip().startswith("system_tier:")


def test_missing_system_agents_are_all_listed(agents_copy: Path) -> None:
    def change(data: Doc) -> None:
        data["spec"]["entries"] = [
            e
            for e in entries(data)
            if not (e["organization_id"] == "acme" and e["agent_id"] in ("coherence-agent", "supervisor-agent"))
        ]

    edit(env_manifest(agents_copy, "dev"), change)
    (problem,) = _problems(agents_copy)
    assert "supervisor-agent" in problem.message and "coherence-agent" in problem.message
    assert "acme/retail/dev" in problem.message
