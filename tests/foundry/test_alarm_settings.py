"""Each instance's alarm thresholds: the environment's defaults, then the template's `spec.deploy.alarms`, then the
`alarms` of every matching deploy override (later ones win, field by field); and a bad threshold is refused naming
the template's field. Subscribers of the alarm topic come from agents/platform.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from foundry.fleet.load import load_fleet
from foundry.manifests.alarm_settings import NON_PRODUCTION_ALARMS, PRODUCTION_ALARMS, environment_alarm_defaults
from foundry.manifests.overrides import alarms_for, deploy_for
from foundry.manifests.platform_settings import AlarmSubscriber
from foundry.manifests.problems import ManifestError
from foundry.manifests.schema import InstanceKey, TemplateDeploy
from tests.foundry.manifest_edits import edit

ACME_DEV = InstanceKey("acme", "retail", "dev")
GLOBEX_DEV = InstanceKey("globex", "billing", "dev")
TEMPLATE = Path("manifests") / "manifest.instance-template.yaml"


def test_production_gets_stricter_defaults_than_other_environments() -> None:
    assert environment_alarm_defaults("prod") == environment_alarm_defaults("production") == PRODUCTION_ALARMS
    assert environment_alarm_defaults("dev") == environment_alarm_defaults("staging") == NON_PRODUCTION_ALARMS
    assert PRODUCTION_ALARMS.error_rate_percent < NON_PRODUCTION_ALARMS.error_rate_percent
    assert PRODUCTION_ALARMS.target_5xx_percent < NON_PRODUCTION_ALARMS.target_5xx_percent


def test_an_instance_without_alarm_settings_gets_its_environment_defaults() -> None:
    assert alarms_for(TemplateDeploy(), "prod", ACME_DEV) == PRODUCTION_ALARMS
    assert alarms_for(TemplateDeploy(), "dev", ACME_DEV) == NON_PRODUCTION_ALARMS


def test_template_alarms_then_matching_overrides_change_only_the_fields_they_give() -> None:
    deploy = TemplateDeploy.model_validate(
        {
            "alarms": {"p95_response_seconds": 45},
            "overrides": [
                {"environment": "prod", "alarms": {"error_rate_percent": 5, "evaluation_minutes": 2}},
                {"organization_id": "acme", "alarms": {"error_rate_percent": 0.5}},
                {"organization_id": "globex", "alarms": {"unhealthy_hosts": 3}},
            ],
        }
    )
    acme = alarms_for(deploy, "prod", ACME_DEV)
    assert (acme.p95_response_seconds, acme.error_rate_percent, acme.evaluation_minutes) == (45, 0.5, 2)
    assert (acme.target_5xx_percent, acme.unhealthy_hosts) == (PRODUCTION_ALARMS.target_5xx_percent, 1)
    globex = alarms_for(deploy, "dev", GLOBEX_DEV)
    assert (globex.error_rate_percent, globex.unhealthy_hosts, globex.p95_response_seconds) == (
        NON_PRODUCTION_ALARMS.error_rate_percent,
        3,
        45,
    )


def test_an_override_with_only_alarms_leaves_the_sizing_alone() -> None:
    deploy = TemplateDeploy.model_validate({"overrides": [{"environment": "dev", "alarms": {"unhealthy_hosts": 2}}]})
    assert deploy_for(deploy, "dev", ACME_DEV) == deploy.defaults


def test_the_resolved_example_fleet_carries_each_instance_thresholds(agents_copy: Path) -> None:
    edit(
        agents_copy / TEMPLATE,
        lambda d: d["spec"]["deploy"]["overrides"].append(
            {"environment": "prod", "organization_id": "globex", "alarms": {"error_rate_percent": 3.5}}
        ),
    )
    thresholds = {
        (i.environment, i.key.organization_id): i.alarms.error_rate_percent for i in load_fleet(agents_copy).instances
    }
    assert thresholds[("prod", "globex")] == 3.5
    assert thresholds[("prod", "acme")] == PRODUCTION_ALARMS.error_rate_percent
    assert thresholds[("dev", "acme")] == NON_PRODUCTION_ALARMS.error_rate_percent


def test_a_threshold_out_of_range_is_refused_naming_the_template_field(agents_copy: Path) -> None:
    edit(agents_copy / TEMPLATE, lambda d: d["spec"]["deploy"].update(alarms={"error_rate_percent": 0}))
    with pytest.raises(ManifestError) as raised:
        load_fleet(agents_copy)
    [problem] = [p for p in raised.value.problems if p.field and "alarms" in p.field]
    assert problem.file.endswith("manifest.instance-template.yaml")
    assert problem.field is not None and "error_rate_percent" in problem.field and "greater than 0" in problem.message


@pytest.mark.parametrize(
    ("protocol", "endpoint", "says"),
    [
        ("email", "oncall", "is not an e-mail address"),
        ("https", "http://pager.example/hook", "is not an https:// URL"),
        ("sqs", "arn:aws:sns:us-east-1:111111111111:topic", "is not an SQS queue ARN"),
    ],
)
def test_a_subscriber_endpoint_that_does_not_fit_its_protocol_is_refused(
    protocol: str, endpoint: str, says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        AlarmSubscriber(protocol=protocol, endpoint=endpoint)  # type: ignore[arg-type]


def test_a_p95_threshold_the_load_balancer_never_lets_a_response_reach_is_refused(agents_copy: Path) -> None:
    edit(
        agents_copy / TEMPLATE,
        lambda d: d["spec"]["deploy"]["overrides"].append(
            {"environment": "dev", "alarms": {"p95_response_seconds": 60}}
        ),
    )
    with pytest.raises(ManifestError) as raised:
        load_fleet(agents_copy)
    problems = [p for p in raised.value.problems if p.field == "spec.deploy.alarms.p95_response_seconds"]
    assert problems and all(p.file.endswith("manifest.instance-template.yaml") for p in problems)
    assert "is not below the load balancer's idle timeout in environment 'dev' (60 s" in problems[0].message
