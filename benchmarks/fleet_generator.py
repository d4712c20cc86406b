"""Generated fleets for the 1,000-instance tests and the synth benchmark: a copy of the example `agents/` tree whose
environments hold `count` instances in total (every system agent plus one worker each), already placed.

Instances are spread over 5 environments of 200 (so the fleet also exercises several platform stacks, each with
two ALB shards); instances past 1,000 join the last environment, so instance 1,001 needs a new shard there.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from foundry.fleet import placement

EXAMPLE_AGENTS = Path(__file__).resolve().parent.parent / "agents"
INSTANCES_PER_ENVIRONMENT = 200
ENVIRONMENTS = 5
SYSTEM_AGENTS = [
    ("io-agent", 0),
    ("governance-agent", 0),
    ("context-agent", 1),
    ("supervisor-agent", 1),
    ("coherence-agent", 1),
    ("exception-agent", 1),
    ("observability-agent", 1),
]


def instance_key(index: int) -> tuple[str, str, str]:
    return f"org{index // 100:02d}", f"dom{index // 20 % 5}", f"i{index:04d}"


def environment_of(index: int) -> str:
    return f"gen{min(index // INSTANCES_PER_ENVIRONMENT, ENVIRONMENTS - 1)}"


def _entries(index: int) -> list[dict[str, Any]]:
    org, domain, inst = instance_key(index)
    common = {
        "organization_id": org,
        "organization_name": f"Organization {org}",
        "domain_id": domain,
        "domain_name": f"Domain {domain}",
        "environment": environment_of(index),
        "instance_id": inst,
        "author": "generator",
        "last_editor": "generator",
    }
    rows = [
        {"agent_id": agent, "yaml_path": f"specs/system/{agent}.yaml", "is_system_agent": True, "system_tier": tier}
        | common
        | {"version": "1.0.0"}
        for agent, tier in SYSTEM_AGENTS
    ]
    rows.append(
        {"agent_id": "pm-agent", "yaml_path": "specs/workers/pm-agent.yaml", "is_system_agent": False}
        | {"system_tier": 2}
        | common
        | {"version": "1.2.0"}
    )
    return rows


def _environment_settings(env: str) -> dict[str, Any]:
    return {
        "account": "444444444444",
        "region": "us-east-1",
        "vpc": {"cidr": "10.40.0.0/16", "max_azs": 2, "nat_gateways": 1},
        "zone": {"name": f"{env}.agentfoundry.com", "private": False},
        "load_balancer": {
            "internet_facing": True,
            "certificate_arn": "arn:aws:acm:us-east-1:444444444444:certificate/11111111-2222-3333-4444-555555555555",
            "instances_per_shard": 100,
        },
        "log_retention_days": 30,
    }


def generate_fleet(target: Path, count: int, *, placed: bool = True) -> Path:
    """Writes an agents tree with instances 0..count-1 to `target` (replaced if present) and returns it. With
    `placed`, writes the placement files as `python -m foundry place` would (keeping existing slots)."""
    if target.exists():
        existing_placements = target / placement.PLACEMENT_DIR
        kept = {p.name: p.read_bytes() for p in existing_placements.glob("*.yaml")} if placed else {}
        shutil.rmtree(target)
    else:
        kept = {}
    shutil.copytree(EXAMPLE_AGENTS, target, ignore=shutil.ignore_patterns("schemas", "placement", "manifest.*.yaml"))
    shutil.copy(EXAMPLE_AGENTS / "manifests" / "manifest.instance-template.yaml", target / "manifests")
    by_env: dict[str, list[dict[str, Any]]] = {}
    for index in range(count):
        by_env.setdefault(environment_of(index), []).extend(_entries(index))
    platform = {
        "apiVersion": "agent-foundry/v1",
        "kind": "PlatformSettings",
        "spec": {"environments": {env: _environment_settings(env) for env in sorted(by_env)}},
    }
    (target / "platform.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    for env, entries in sorted(by_env.items()):
        manifest = {
            "apiVersion": "agent-foundry/v1",
            "kind": "AgentManifest",
            "metadata": {"description": f"generated {env}", "generated_at": "2026-01-01T00:00:00Z", "version": "1.0.0"},
            "spec": {"entries": entries},
        }
        text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=100_000)
        (target / "manifests" / f"manifest.{env}.yaml").write_text(text)
    if placed:
        out = target / placement.PLACEMENT_DIR
        out.mkdir(exist_ok=True)
        for name, raw in kept.items():
            (out / name).write_bytes(raw)
        for env in sorted(by_env):
            existing = placement.load_placement(target, env)
            selectors = ["/".join(instance_key(i)) for i in range(count) if environment_of(i) == env]
            (out / f"{env}.yaml").write_bytes(placement.render(env, placement.assign(existing, selectors, 100)))
    return target
