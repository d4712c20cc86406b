"""Lifecycle deploy settings (issue 24): `state` and `schedule` flow through the template's defaults and overrides
into each instance manifest, bad ones are refused naming file and field, and an environment's `capacity` keeps
production on demand unless it says otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from foundry.fleet.load import load_fleet
from foundry.manifests.overrides import deploy_for
from foundry.manifests.platform_settings import PlatformSpec
from foundry.manifests.problems import ManifestError
from foundry.manifests.schema import DEFAULT_DEPLOY, InstanceKey, TemplateDeploy
from instance_contract.off_hours import CheckedOffHoursSchedule, CronFields, OffHoursSchedule, parse_cron
from tests.foundry.manifest_edits import Doc, edit, read

ACME = InstanceKey("acme", "retail", "dev")
GLOBEX = InstanceKey("globex", "support", "dev")
TEMPLATE = "manifests/manifest.instance-template.yaml"
SCHEDULE = {"stop": "0 20 * * MON-FRI", "start": "0 7 * * MON-FRI", "time_zone": "Europe/Berlin"}


def test_an_override_pauses_the_instances_it_matches_and_later_ones_resume() -> None:
    deploy = TemplateDeploy.model_validate(
        {
            "overrides": [
                {"environment": "dev", "state": "paused"},
                {"environment": "dev", "organization_id": "globex", "state": "active"},
            ]
        }
    )
    assert deploy_for(deploy, "dev", ACME).state == "paused"
    assert deploy_for(deploy, "dev", GLOBEX).state == "active"
    assert deploy_for(deploy, "prod", ACME).state == "active"


def test_a_schedule_override_keeps_the_sizing_and_adds_the_schedule() -> None:
    deploy = TemplateDeploy.model_validate({"overrides": [{"environment": "dev", "schedule": SCHEDULE}]})
    settings = deploy_for(deploy, "dev", ACME)
    assert settings.schedule == OffHoursSchedule.model_validate(SCHEDULE)
    assert (settings.cpu, settings.min_tasks) == (DEFAULT_DEPLOY.cpu, DEFAULT_DEPLOY.min_tasks)
    assert deploy_for(deploy, "staging", ACME).schedule is None


def test_an_active_instance_without_schedule_serialises_as_before() -> None:
    """Same bundle bytes for every instance that uses neither setting."""
    assert DEFAULT_DEPLOY.model_dump() == {
        "cpu": 256,
        "memory": 512,
        "min_tasks": 1,
        "max_tasks": 2,
        "cpu_target_percent": 60,
    }
    paused = DEFAULT_DEPLOY.model_copy(update={"state": "paused"})
    assert paused.model_dump()["state"] == "paused"


def test_cron_fields_map_to_application_auto_scaling_with_one_day_field() -> None:
    assert parse_cron("0 20 * * MON-FRI") == CronFields(minute="0", hour="20", day=None, month="*", week_day="MON-FRI")
    assert parse_cron("*/30 6-18 1,15 JAN-MAR *") == CronFields(
        minute="*/30", hour="6-18", day="1,15", month="JAN-MAR", week_day=None
    )


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ({"stop": "0 24 * * *", "start": "0 7 * * *"}, "hour '24' is not valid; it allows * , - / and 0-23"),
        ({"stop": "0 20 * *", "start": "0 7 * * *"}, "has 4 fields; give five"),
        ({"stop": "0 20 * * MON", "start": "0 7 1 * MON"}, "gives both a day of month (1) and a day of week (MON)"),
        ({"stop": "0 20 * * FUNDAY", "start": "0 7 * * *"}, "day-of-week 'FUNDAY' is not valid"),
        ({"stop": "0 20 * * *", "start": "0 7 * * *", "time_zone": "Mars/Olympus"}, "'Mars/Olympus' is not an IANA"),
        ({"stop": "0 20 * * *"}, "start"),
    ],
)
def test_a_bad_schedule_is_refused_saying_what_is_wrong(schedule: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CheckedOffHoursSchedule.model_validate(schedule)
    assert says in str(caught.value)


def test_the_time_zone_database_is_the_control_plane_s_check_and_the_runtime_needs_none() -> None:
    """The runtime reads the schedule from its bundle but never uses it: it checks only the name's shape."""
    shaped = {"stop": "0 20 * * *", "start": "0 7 * * *", "time_zone": "Mars/Olympus"}
    assert OffHoursSchedule.model_validate(shaped).time_zone == "Mars/Olympus"
    with pytest.raises(ValidationError, match="is not an IANA time zone name"):
        TemplateDeploy.model_validate({"overrides": [{"schedule": shaped}]})
    with pytest.raises(ValidationError, match="is not an IANA time zone name"):
        TemplateDeploy.model_validate({"defaults": {**DEFAULT_DEPLOY.model_dump(), "schedule": shaped}})
    with pytest.raises(ValidationError, match="time_zone"):
        OffHoursSchedule.model_validate({**shaped, "time_zone": "Europe/Berlin; rm -rf"})


def test_a_bad_schedule_in_the_template_names_the_file_and_the_field(agents_copy: Path) -> None:
    def bad_schedule(doc: Doc) -> None:
        doc["spec"]["deploy"]["overrides"].append(
            {"environment": "dev", "schedule": {"stop": "0 25 * * *", "start": "0 7 * * *"}}
        )

    edit(agents_copy / TEMPLATE, bad_schedule)
    with pytest.raises(ManifestError) as caught:
        load_fleet(agents_copy)
    (problem,) = [p for p in caught.value.problems if "hour '25'" in p.message]
    assert problem.file == str(agents_copy / TEMPLATE)
    assert problem.field is not None and "schedule" in problem.field and "stop" in problem.field


def test_a_paused_instance_has_state_paused_in_its_manifest(agents_copy: Path) -> None:
    edit(
        agents_copy / TEMPLATE,
        lambda doc: doc["spec"]["deploy"]["overrides"].append(
            {"environment": "dev", "organization_id": "acme", "state": "paused"}
        ),
    )
    fleet = load_fleet(agents_copy)
    states = {(i.environment, i.key.organization_id): i.manifest.spec.deploy.state for i in fleet.instances}
    assert states[("dev", "acme")] == "paused"
    assert states[("dev", "default-org")] == "active"
    assert {state for (env, _), state in states.items() if env != "dev"} == {"active"}


def platform_spec(agents: Path, **prod: Any) -> dict[str, Any]:
    spec: dict[str, Any] = read(agents / "platform.yaml")["spec"]
    spec["environments"]["prod"].update(prod)
    return spec


def test_spot_in_production_is_refused_unless_it_says_so(agents_copy: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        PlatformSpec.model_validate(platform_spec(agents_copy, capacity="spot"))
    assert "environment prod: capacity spot puts a production environment's tasks on Fargate Spot" in str(caught.value)
    assert "allow_spot_in_production: true" in str(caught.value)
    allowed = PlatformSpec.model_validate(
        platform_spec(agents_copy, capacity="spot_with_fallback", allow_spot_in_production=True)
    )
    assert allowed.environments["prod"].capacity == "spot_with_fallback"


def test_the_example_environments_put_dev_on_spot_and_keep_prod_on_demand(agents_copy: Path) -> None:
    spec = PlatformSpec.model_validate(read(agents_copy / "platform.yaml")["spec"])
    assert {name: env.capacity for name, env in spec.environments.items()} == {
        "dev": "spot",
        "staging": "on_demand",
        "prod": "on_demand",
    }


def test_the_example_dev_instances_sleep_off_hours() -> None:
    fleet = load_fleet(Path(__file__).resolve().parents[2] / "agents")
    schedules = {i.environment: i.manifest.spec.deploy.schedule for i in fleet.instances}
    assert schedules["dev"] == OffHoursSchedule.model_validate(SCHEDULE)
    assert schedules["prod"] is None
