"""A generated fleet of 1,000 instances (5 environments x 200), synthesized in-process with the CDK API.

Costs about a minute on 2 cores (one full synth of 1,000 instance stacks, then one environment again); the
benchmark in benchmarks/synth_benchmark.py measures the same paths.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fleet_generator import environment_of, generate_fleet, instance_key
from foundry.fleet import placement
from tests.cdk.cdk_harness import PREBUILT_IMAGE, Synthesized, synth

COUNT = 1000
MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES = 1_000_000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Synthesized]:
    root = tmp_path_factory.mktemp("fleet1000")
    agents = generate_fleet(root / "agents", COUNT)
    return agents, synth(root / "cdk.out", agents_dir=agents, runtimeImage=PREBUILT_IMAGE)


def instance_templates(app: Synthesized) -> dict[str, dict[str, Any]]:
    return {name: app.templates[name] for name in app.stacks.instances}


@pytest.mark.slow
def test_a_thousand_instances_get_a_thousand_stacks(fleet: tuple[Path, Synthesized]) -> None:
    _, app = fleet
    assert len(app.stacks.instances) == COUNT
    assert sorted(app.stacks.platforms) == [f"af-gen{n}-platform" for n in range(5)]


@pytest.mark.slow
def test_every_hostname_is_unique(fleet: tuple[Path, Synthesized]) -> None:
    _, app = fleet
    hostnames = [t["Outputs"]["Hostname"]["Value"] for t in instance_templates(app).values()]
    assert len(set(hostnames)) == COUNT


@pytest.mark.slow
def test_listener_priorities_are_unique_per_listener_and_no_alb_holds_over_100_target_groups(
    fleet: tuple[Path, Synthesized],
) -> None:
    _, app = fleet
    per_listener: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name, template in instance_templates(app).items():
        env = name.split("-")[1]
        listener = template["Parameters"]["ShardListenerArn"]["Default"]
        (rule,) = [
            r for r in template["Resources"].values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"
        ]
        per_listener[(env, listener)].append(rule["Properties"]["Priority"])
    for listener, priorities in per_listener.items():
        assert len(priorities) == len(set(priorities)), listener
        assert len(priorities) <= 100, listener
    shards_by_env = Counter(env for env, _ in per_listener)
    for env, shards in shards_by_env.items():
        platform = app.templates[f"af-{env}-platform"]
        balancers = [
            r for r in platform["Resources"].values() if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
        ]
        assert len(balancers) == shards == 2


@pytest.mark.slow
def test_every_stack_stays_under_500_resources_and_1_mb(fleet: tuple[Path, Synthesized]) -> None:
    _, app = fleet
    for name, template in app.templates.items():
        assert len(template["Resources"]) < MAX_RESOURCES, name
        assert (app.outdir / f"{name}.template.json").stat().st_size < MAX_TEMPLATE_BYTES, name


@pytest.mark.slow
def test_adding_instance_1001_changes_no_other_instance_template(
    fleet: tuple[Path, Synthesized], tmp_path: Path
) -> None:
    agents, before = fleet
    new_env = environment_of(COUNT)
    untouched = {
        p.relative_to(agents): p.read_bytes()
        for p in [*agents.glob("manifests/*.yaml"), *agents.glob("placement/*.yaml"), *agents.glob("specs/**/*.yaml")]
        if new_env not in p.name
    }
    generate_fleet(agents, COUNT + 1)
    # Other environments' inputs are byte-identical, and their stacks read nothing else, so only this
    # environment needs synthesizing again to compare.
    assert {p: (agents / p).read_bytes() for p in untouched} == untouched
    after = synth(tmp_path / "cdk.out", agents_dir=agents, environment=new_env, runtimeImage=PREBUILT_IMAGE)
    added = f"af-{new_env}-{'-'.join(instance_key(COUNT))}"
    assert added in after.stacks.instances
    assert placement.load_placement(agents, new_env)["/".join(instance_key(COUNT))].shard == 2
    compared = 0
    for name in after.stacks.instances:
        if name == added:
            continue
        assert (after.outdir / f"{name}.template.json").read_bytes() == (
            before.outdir / f"{name}.template.json"
        ).read_bytes(), name
        compared += 1
    assert compared == 200
    platform = json.dumps(after.templates[f"af-{new_env}-platform"])
    assert f"/agentfoundry/{new_env}/platform/shards/2/listener-arn" in platform
