"""platform.yaml's per-environment thread-state settings: point-in-time recovery of each instance's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from foundry.manifests.platform_settings import PlatformSettings

PLATFORM = Path(__file__).resolve().parents[2] / "agents" / "platform.yaml"


def _platform(edit: dict[str, Any] | None = None, environment: str = "staging") -> PlatformSettings:
    doc = yaml.safe_load(PLATFORM.read_text(encoding="utf-8"))
    if edit is not None:
        doc["spec"]["environments"][environment]["thread_state"] = edit
    return PlatformSettings.model_validate(doc)


def test_point_in_time_recovery_is_on_by_default_and_off_for_an_internal_plain_http_dev_environment() -> None:
    environments = _platform().spec.environments
    assert environments["dev"].load_balancer.plain_http
    assert {name: env.state_point_in_time_recovery for name, env in environments.items()} == {
        "dev": False,
        "staging": True,
        "prod": True,
    }


@pytest.mark.parametrize(("environment", "value"), [("dev", True), ("prod", False)])
def test_an_explicit_setting_wins_over_the_default(environment: str, value: bool) -> None:
    settings = _platform({"point_in_time_recovery": value}, environment).spec.environments[environment]
    assert settings.state_point_in_time_recovery is value


def test_an_unknown_thread_state_key_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"thread_state\.pitr"):
        _platform({"pitr": True})
