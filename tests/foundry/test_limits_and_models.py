"""validate refuses limits and models that would only fail at run time, naming the file and the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.fleet.load import load_fleet
from foundry.manifests.problems import ManifestError, Problem
from tests.foundry.manifest_edits import edit

TEMPLATE = "manifests/manifest.instance-template.yaml"
GOVERNANCE = "specs/system/governance-agent.yaml"


def _problems(agents: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_fleet(agents, cache_dir=None)
    return list(caught.value.problems)


def test_a_governance_policy_looser_than_the_instance_limit_is_refused(agents_copy: Path) -> None:
    edit(agents_copy / GOVERNANCE, lambda d: d["spec"]["policy"].update(max_input_chars=4001))
    (problem,) = _problems(agents_copy)
    assert problem.file == str(agents_copy / GOVERNANCE) and problem.field == "spec.policy.max_input_chars"
    assert problem.message.startswith("4001 is above the instance limit spec.limits.max_input_chars (4000")


def test_a_governance_policy_stricter_than_the_instance_limit_is_kept(agents_copy: Path) -> None:
    edit(agents_copy / GOVERNANCE, lambda d: d["spec"]["policy"].update(max_input_chars=100))
    fleet = load_fleet(agents_copy, cache_dir=None)
    assert {i.manifest.spec.limits.max_input_chars for i in fleet.instances} == {4000}


def test_a_bedrock_agent_without_a_model_id_is_refused_naming_the_agent(agents_copy: Path) -> None:
    edit(agents_copy / "specs/workers/qa-agent.yaml", lambda d: d["spec"]["model"].update(provider="bedrock"))
    (problem,) = _problems(agents_copy)
    assert problem.file == str(agents_copy / "specs/workers/qa-agent.yaml") and problem.field == "spec.model"
    assert "agent 'qa-agent' uses the bedrock provider but neither its spec" in problem.message


def test_a_request_time_limit_the_load_balancer_would_cut_first_is_refused(agents_copy: Path) -> None:
    edit(agents_copy / TEMPLATE, lambda d: d["spec"]["limits"].update(request_timeout_seconds=60))
    problems = _problems(agents_copy)
    assert {p.field for p in problems} == {"spec.limits.request_timeout_seconds"}
    assert len(problems) == 3, "one per environment whose load balancer times out at 60 s"
    assert "60 s is not below the load balancer's idle timeout in environment 'dev' (60 s" in problems[0].message


def test_the_template_limits_reach_every_instance_manifest(agents_copy: Path) -> None:
    edit(agents_copy / TEMPLATE, lambda d: d["spec"]["limits"].update(request_timeout_seconds=12.5))
    fleet = load_fleet(agents_copy, cache_dir=None)
    assert {i.manifest.spec.limits.request_timeout_seconds for i in fleet.instances} == {12.5}
