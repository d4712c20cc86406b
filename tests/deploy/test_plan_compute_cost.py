"""`python -m foundry plan`'s always-on compute cost per environment (issue 24), against real git repositories of
the example tree; every figure is worked out by hand in the test from the default us-east-1 Fargate prices."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from foundry.cli import main
from foundry.manifests.platform_settings import PricingSettings
from foundry.plan.compute_cost import instance_monthly_cost
from foundry.plan.running_hours import running_hours_per_month
from tests.deploy.git_repos import GitRepo
from tests.deploy.test_deploy_plan import env_plan, run_plan

PRICES = PricingSettings()
TEMPLATE = "agents/manifests/manifest.instance-template.yaml"


def add_prod_instance(doc: Any) -> None:
    """acme/retail/us-west-2: a copy of acme's prod instance (the template's prod size: 1 vCPU, 2 GB, 2 tasks)."""
    acme = [e for e in doc["spec"]["entries"] if e["organization_id"] == "acme"]
    doc["spec"]["entries"].extend({**copy.deepcopy(e), "instance_id": "us-west-2"} for e in acme)


def test_the_default_prices_are_the_documented_us_east_1_list_prices() -> None:
    assert (PRICES.fargate.vcpu_hour, PRICES.fargate.gb_hour) == (0.04048, 0.004445)
    assert (PRICES.fargate_spot.vcpu_hour, PRICES.fargate_spot.gb_hour) == (0.01214, 0.00133)
    assert PRICES.taken.isoformat() == "2026-12-02"


def test_an_added_production_instance_adds_its_tasks_for_the_whole_month(git_repo: GitRepo, capsys: Any) -> None:
    git_repo.edit_yaml("agents/manifests/manifest.prod.yaml", add_prod_instance)
    code, plan = run_plan(git_repo, capsys, "--environment", "prod")
    assert code == 1
    cost = env_plan(plan, "prod")["monthly_compute_cost"]
    # One task: 1 vCPU x $0.04048 + 2 GB x $0.004445 = $0.04937 an hour; two tasks, 730 hours: $72.0802.
    assert cost["delta"] == pytest.approx(72.08, abs=0.005)
    # Three prod instances before (2 tasks each, one size): 3 x $72.0802 = $216.2406.
    assert cost["before"] == pytest.approx(216.24, abs=0.005)
    assert cost["after"] == pytest.approx(288.32, abs=0.005)
    assert (cost["currency"], cost["pricing_taken"]) == ("USD", "2026-12-02")


def test_an_added_dev_instance_costs_spot_prices_for_its_scheduled_hours(git_repo: GitRepo, capsys: Any) -> None:
    def add_dev_instance(doc: Any) -> None:
        acme = [e for e in doc["spec"]["entries"] if e["organization_id"] == "acme"]
        doc["spec"]["entries"].extend({**copy.deepcopy(e), "instance_id": "dev2"} for e in acme)

    git_repo.edit_yaml("agents/manifests/manifest.dev.yaml", add_dev_instance)
    _, plan = run_plan(git_repo, capsys, "--environment", "dev")
    # Spot task: 0.25 vCPU x $0.01214 + 0.5 GB x $0.00133 = $0.0037 an hour. Running 07:00-20:00 on the 261
    # weekdays of 2026: 3,393 hours a year, 282.75 a month. One task: $1.046175 a month.
    assert env_plan(plan, "dev")["monthly_compute_cost"]["delta"] == pytest.approx(1.05, abs=0.005)


def test_pausing_an_instance_removes_its_cost_and_the_table_says_so(git_repo: GitRepo, capsys: Any) -> None:
    def pause_acme_prod(doc: Any) -> None:
        doc["spec"]["deploy"]["overrides"].append(
            {"environment": "prod", "organization_id": "acme", "instance_id": "us-east-1", "state": "paused"}
        )

    git_repo.edit_yaml(TEMPLATE, pause_acme_prod)
    _, plan = run_plan(git_repo, capsys, "--environment", "prod")
    assert env_plan(plan, "prod")["monthly_compute_cost"]["delta"] == pytest.approx(-72.08, abs=0.005)
    main(["plan", "--agents-dir", str(git_repo.agents), "--environment", "prod"])
    table = capsys.readouterr().out
    assert "always-on compute: $216.24/month -> $144.16/month (-$72.08/month; Fargate prices of 2026-12-02)" in table


def test_an_unchanged_fleet_has_no_cost_change(git_repo: GitRepo, capsys: Any) -> None:
    _, plan = run_plan(git_repo, capsys)
    assert {e["environment"]: e["monthly_compute_cost"]["delta"] for e in plan["environments"]} == {
        "dev": 0,
        "prod": 0,
        "staging": 0,
    }


def test_running_hours_follow_the_schedule_over_a_year() -> None:
    assert running_hours_per_month("0 20 * * MON-FRI", "0 7 * * MON-FRI") == pytest.approx(3393 / 12)
    assert running_hours_per_month("0 20 * * *", "0 8 * * *") == pytest.approx(365.0)  # 12 of 24 hours
    assert running_hours_per_month("30 18 * * *", "0 9 * * *") == pytest.approx(730 * 9.5 / 24)


def manifest(**deploy: Any) -> dict[str, Any]:
    return {"spec": {"deploy": {"cpu": 1024, "memory": 2048, "min_tasks": 3, "max_tasks": 6, **deploy}}}


def test_spot_with_fallback_prices_the_first_task_on_demand_and_the_others_on_spot() -> None:
    on_demand, spot = 0.04048 + 2 * 0.004445, 0.01214 + 2 * 0.00133
    cost = instance_monthly_cost(manifest(), {"capacity": "spot_with_fallback"}, PRICES)
    assert cost == pytest.approx((on_demand + 2 * spot) * 730)
    assert instance_monthly_cost(manifest(), {"capacity": "spot"}, PRICES) == pytest.approx(3 * spot * 730)
    assert instance_monthly_cost(manifest(state="paused"), {"capacity": "on_demand"}, PRICES) == 0.0
