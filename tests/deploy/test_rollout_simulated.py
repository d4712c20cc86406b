"""The rollout scheduler at fleet scale, against the simulated AWS in virtual time (no sleeps, no AWS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from foundry.cli import main
from foundry.manifests.platform_settings import RolloutPolicy
from foundry.rollout.scheduler import Rollout, Scheduler, new_rollout
from foundry.rollout.simulator import SimulatedFleet, run_in_virtual_time, simulated_selectors
from foundry.rollout.state import RolloutStore, resume_or_start
from foundry.rollout.waves import plan_waves
from foundry.state.sqlite_store import SqliteStateStore
from tests.deploy.git_repos import new_git_repo

FLEET = simulated_selectors(1000)
POLICY = RolloutPolicy.model_validate(
    {"canary": {"count": 2}, "growth_factor": 3, "concurrency": 8, "bake_seconds": 600, "health_interval_seconds": 30}
)


def fresh_rollout(policy: RolloutPolicy = POLICY) -> Rollout:
    return new_rollout(
        environment="sim",
        change_id="c1",
        change="test change",
        policy=policy,
        waves=plan_waves(FLEET, policy),
        stacks={i: f"af-sim-{i.replace('/', '-')}" for i in FLEET},
        simulated=True,
    )


def simulate(
    rollout: Rollout, fleet: SimulatedFleet, store: RolloutStore | None = None, policy: RolloutPolicy = POLICY
) -> Rollout:
    def checkpoint(current: Rollout, boundary: bool) -> None:
        if store is not None and boundary:
            store.save(current)

    scheduler = Scheduler(policy=policy, ops=fleet, checkpoint=checkpoint)

    async def go() -> Rollout:
        return await scheduler.run(rollout)

    result, _ = run_in_virtual_time(go)
    return result


def test_a_healthy_change_reaches_all_1000_instances_once_in_policy_order_within_the_concurrency_limit():
    fleet = SimulatedFleet()
    rollout = simulate(fresh_rollout(), fleet)

    assert rollout.status == "complete"
    assert rollout.counts()["deployed"] == 1000
    assert all(n == 1 for n in fleet.deploy_calls.values()) and len(fleet.deploy_calls) == 1000
    assert fleet.max_in_flight == POLICY.concurrency
    # Waves in policy order: every deploy of wave k+1 starts after wave k's last deploy plus its bake.
    assert [len(w) for w in rollout.waves] == [2, 6, 18, 54, 162, 486, 272]
    start = {instance: at for at, instance in fleet.started}
    for earlier, later in zip(rollout.waves, rollout.waves[1:], strict=False):
        last_deploy_end = max(start[i] + fleet.duration(i) for i in earlier)
        assert min(start[i] for i in later) >= last_deploy_end + POLICY.bake_seconds
    assert rollout.waves_baked == [True] * len(rollout.waves)


def test_a_failure_in_wave_two_halts_there_and_the_report_tells_the_truth_about_every_instance():
    bad = fresh_rollout().waves[1][3]
    fleet = SimulatedFleet(fail=frozenset({bad}))
    rollout = simulate(fresh_rollout(), fleet)

    assert rollout.status == "halted" and rollout.halted_wave == 2
    assert rollout.instances[bad].state == "failed"
    assert "simulated failure" in (rollout.instances[bad].reason or "")
    assert bad in (rollout.halt_reason or "")
    later = [i for wave in rollout.waves[2:] for i in wave]
    assert not any(fleet.deploy_calls[i] for i in later), "an instance of a later wave was started"
    assert all(rollout.instances[i].state == "not_started" for i in later)
    for instance in rollout.waves[1]:
        progress = rollout.instances[instance]
        started = fleet.deploy_calls[instance] == 1
        # Deployed means its deploy ran and succeeded; not_started means no deploy was ever started.
        assert progress.state == {True: "deployed", False: "not_started"}[started] or instance == bad
    assert all(rollout.instances[i].state == "deployed" for i in rollout.waves[0])


def test_a_failure_stops_new_deploys_in_its_wave_lets_running_ones_finish_and_says_why_the_rest_did_not_start():
    narrow = POLICY.model_copy(update={"concurrency": 2})
    wave_two = fresh_rollout(narrow).waves[1]
    fleet = SimulatedFleet(fail=frozenset({wave_two[0]}), jitter=0)
    rollout = simulate(fresh_rollout(narrow), fleet, policy=narrow)
    states = [rollout.instances[i].state for i in wave_two]
    assert states == ["failed", "deployed", "not_started", "not_started", "not_started", "not_started"]
    assert rollout.instances[wave_two[2]].reason == f"not started: {wave_two[0]} failed in wave 2"
    assert fleet.max_in_flight <= 2


def test_rerunning_after_the_fix_finishes_the_job_without_redeploying_what_succeeded(tmp_path):
    store = RolloutStore(SqliteStateStore(tmp_path / "state.db"))
    bad = fresh_rollout().waves[1][3]
    first = SimulatedFleet(fail=frozenset({bad}))
    with store.hold("sim", "the first run"):
        simulate(fresh_rollout(), first, store)
    deployed_before = {i for i, n in first.deploy_calls.items() if n and i != bad}

    resumed, how = resume_or_start(store, fresh_rollout(), abandon=False)
    assert how.startswith("resumed")
    second = SimulatedFleet()
    with store.hold("sim", "the second run"):
        rollout = simulate(resumed, second, store)

    assert rollout.status == "complete" and rollout.runs == 2
    assert not deployed_before & set(second.deploy_calls), "the resumed run redeployed a deployed instance"
    assert second.deploy_calls[bad] == 1
    assert set(first.deploy_calls) | set(second.deploy_calls) == set(FLEET)
    assert all(p.deploys == 1 for p in rollout.instances.values() if p.instance != bad)
    assert store.load("sim") is not None and store.load("sim").status == "complete"  # type: ignore[union-attr]


def test_an_instance_that_never_turns_healthy_is_reported_rolled_back_and_stops_the_wave():
    canary = fresh_rollout().waves[0][0]
    fleet = SimulatedFleet(unhealthy=frozenset({canary}))
    rollout = simulate(fresh_rollout(), fleet)
    assert rollout.status == "halted" and rollout.halted_wave == 1
    assert rollout.instances[canary].state == "rolled_back"
    assert "circuit breaker" in (rollout.instances[canary].reason or "")
    assert sum(fleet.deploy_calls.values()) == 2


# --- the command ----------------------------------------------------------------------------------------------


def state_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'foundry-state.db'}"


def rollout_cli(
    capsys: pytest.CaptureFixture[str], state: Path, *args: str, keep: bool = True
) -> tuple[int, dict[str, Any]]:
    argv = ["rollout", "--environment", "dev", "--simulate", "--json", "--state-url", state_url(state), *args]
    code = main(argv + (["--simulate-keep-state"] if keep else []))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_simulate_command_reports_every_instance_and_the_projected_wall_time(tmp_path, capsys):
    code, report = rollout_cli(capsys, tmp_path, "--simulate-instances", "1000")
    assert code == 0, report
    assert report["simulated"] and report["status"] == "complete"
    assert report["totals"] == {"instances": 1000, "deployed": 1000, "failed": 0, "rolled_back": 0, "not_started": 0}
    assert {row["wave"] for row in report["instances"]} == set(range(1, len(report["waves"]) + 1))
    assert report["instances"][0] == {
        "instance": "sim/fleet/i0000",
        "stack": "af-dev-sim-fleet-i0000",
        "wave": 1,
        "state": "deployed",
        "reason": None,
        "deploys": 1,
    }
    assert report["elapsed_seconds"] > 0
    real = RolloutStore(SqliteStateStore(tmp_path / "foundry-state.db"))
    assert real.load("dev") is None, "a simulation wrote the real rollout state"


def test_simulated_failure_exits_1_then_the_same_command_resumes_and_another_change_is_refused(tmp_path, capsys):
    code, report = rollout_cli(capsys, tmp_path, "--simulate-fail", "default-org/default-domain/dev")
    assert code == 1
    rows = {r["instance"]: r for r in report["instances"]}
    assert rows["acme/retail/dev"] == rows["acme/retail/dev"] | {"wave": 1, "state": "deployed"}
    assert rows["default-org/default-domain/dev"]["state"] == "failed"

    code, refused = rollout_cli(capsys, tmp_path, "--simulate-instances", "3")
    assert code == 2 and "unfinished rollout of another change" in refused["error"] and "--abandon" in refused["error"]

    code, resumed = rollout_cli(capsys, tmp_path)
    assert code == 0 and resumed["runs"] == 2
    assert {r["instance"]: r["deploys"] for r in resumed["instances"]} == {
        "acme/retail/dev": 1,
        "default-org/default-domain/dev": 2,
    }

    code, done = rollout_cli(capsys, tmp_path, "--simulate-fail", "acme/retail/dev")
    assert code == 0 and done["runs"] == 2, "the finished change is not rolled out again"

    code, _ = rollout_cli(capsys, tmp_path, "--simulate-instances", "4", "--simulate-fail", "sim/fleet/i0000")
    assert code == 1, "a finished rollout does not block the next change"

    code, abandoned = rollout_cli(capsys, tmp_path, "--simulate-instances", "3", "--abandon")
    assert code == 0 and any("abandoned" in note for note in abandoned["notes"])


def test_a_prod_rollout_cannot_be_overridden_to_skip_its_canary(tmp_path, capsys):
    code = main(["rollout", "--environment", "prod", "--simulate", "--canary-count", "0"])
    assert code == 2
    assert "needs a canary wave" in capsys.readouterr().err


def test_an_image_from_outside_the_environments_allowed_repositories_is_refused_before_anything_runs(tmp_path, capsys):
    """The rule of the Foundry MCP server's deploy: the image runs with every tenant's task role and secrets."""
    image = "111111111111.dkr.ecr.us-east-1.amazonaws.com.evil.example/agent-runtime:1"
    code = main(["rollout", "--environment", "dev", "--runtime-image", image, "--state-url", state_url(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--runtime-image" in err and "is not allowed in environment 'dev'" in err
    assert not any(tmp_path.iterdir()), "no rollout state was written"


def test_a_plan_file_limits_the_rollout_to_the_instances_it_changes(tmp_path, capsys):
    plan = {
        "base": "main~1",
        "head": "working tree",
        "environments": [
            {
                "environment": "dev",
                "platform": {"stack": "af-dev-platform", "kind": "changed"},
                "removed_stacks": [],
                "instances": [
                    {"instance": "acme/retail/dev", "kind": "changed"},
                    {"instance": "default-org/default-domain/dev", "kind": "unchanged"},
                ],
            }
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, report = rollout_cli(capsys, tmp_path / "state", "--plan", str(tmp_path / "plan.json"))
    assert code == 0
    assert [r["instance"] for r in report["instances"]] == ["acme/retail/dev"]
    assert any("platform stack af-dev-platform" in note for note in report["notes"])


def test_a_second_rollout_of_the_same_environment_is_refused_while_one_runs(tmp_path, capsys):
    store = RolloutStore(SqliteStateStore(tmp_path / "foundry-state.db"), simulated=True)
    with store.hold("dev", "rollout 0123456789abcdef of dev on ci-runner-7 (pid 42)"):
        code, refused = rollout_cli(capsys, tmp_path)
    assert code == 2
    assert (
        "a rollout of dev is already running (held by rollout 0123456789abcdef of dev on ci-runner-7"
        in (refused["error"])
    )
    assert rollout_cli(capsys, tmp_path)[0] == 0


def test_a_second_simulation_of_the_same_change_with_other_failures_simulates_afresh(tmp_path, capsys):
    """Issue 21: without --simulate-keep-state a simulation keeps nothing, so the next one is not a resume."""
    code, first = rollout_cli(capsys, tmp_path, keep=False)
    assert code == 0 and first["status"] == "complete"
    code, second = rollout_cli(capsys, tmp_path, "--simulate-fail", "default-org/default-domain/dev", keep=False)
    assert code == 1, second
    assert second["runs"] == 1
    rows = {r["instance"]: r["state"] for r in second["instances"]}
    assert rows["default-org/default-domain/dev"] == "failed"
    assert not (tmp_path / "foundry-state.db").exists(), "a simulation without --simulate-keep-state kept state"


def test_rollout_state_lives_beside_the_agents_trees_repository_not_the_working_directory(
    tmp_path, capsys, monkeypatch
):
    repo = new_git_repo(tmp_path / "fleet-repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FOUNDRY_STATE_URL")
    argv = ["rollout", "--environment", "dev", "--simulate", "--simulate-keep-state", "--json"]
    assert main([*argv, "--agents-dir", str(repo.agents)]) == 0
    capsys.readouterr()
    assert not any(elsewhere.iterdir()), "the rollout wrote into the working directory"
    recorded = RolloutStore(SqliteStateStore(repo.root / "build" / "foundry-state.db"), simulated=True).load("dev")
    assert recorded is not None and recorded.status == "complete"


def test_the_rollout_record_says_when_a_bake_ends_while_it_bakes_and_nothing_otherwise():
    policy = RolloutPolicy.model_validate({"canary": {"count": 1}, "bake_seconds": 600, "health_interval_seconds": 30})
    seen: list[tuple[str, float | None, float]] = []

    def checkpoint(current: Rollout, boundary: bool) -> None:
        state = current.instances[current.waves[0][0]].state
        seen.append((state, current.bake_ends_at_seconds, current.elapsed_seconds))

    scheduler = Scheduler(policy=policy, ops=SimulatedFleet(), checkpoint=checkpoint)
    rollout = new_rollout(
        environment="sim",
        change_id="c1",
        change="test change",
        policy=policy,
        waves=plan_waves(FLEET[:3], policy),
        stacks={i: f"af-sim-{i.replace('/', '-')}" for i in FLEET[:3]},
        simulated=True,
    )

    async def go() -> Rollout:
        return await scheduler.run(rollout)

    result, _ = run_in_virtual_time(go)
    assert result.status == "complete" and result.bake_ends_at_seconds is None
    baking = [(ends, at) for state, ends, at in seen if state == "baking"]
    assert baking[0][0] is None, "while the canary settles, no bake has begun"
    [(ends, started)] = [(ends, at) for ends, at in baking if ends is not None]
    assert ends == started + policy.bake_seconds
