"""Wave planning: the canary first, then waves growing by the policy's factor; every instance exactly once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from foundry.manifests.platform_settings import PlatformSpec, RolloutPolicy
from foundry.rollout.waves import plan_waves

FLEET = [f"org/dom/i{n:04d}" for n in range(1000)]


def policy(**values: object) -> RolloutPolicy:
    return RolloutPolicy.model_validate(values)


def test_first_n_canary_then_waves_doubling_cover_every_instance_once():
    waves = plan_waves(list(reversed(FLEET)), policy(canary={"count": 1}, growth_factor=2))
    assert [len(w) for w in waves] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 489]
    assert waves[0] == ["org/dom/i0000"]
    flat = [i for w in waves for i in w]
    assert sorted(flat) == FLEET and len(flat) == len(set(flat))


def test_named_canary_instances_form_wave_one_whatever_their_sort_position():
    waves = plan_waves(FLEET[:10], policy(canary={"instances": ["org/dom/i0007", "org/dom/i0003"]}))
    assert waves[0] == ["org/dom/i0003", "org/dom/i0007"]
    assert "org/dom/i0007" not in waves[1]


def test_named_canary_outside_the_change_falls_back_to_the_first_n():
    waves = plan_waves(FLEET[:5], policy(canary={"instances": ["other/dom/x"], "count": 2}))
    assert waves[0] == FLEET[:2]


def test_max_wave_size_caps_every_wave_after_the_canary():
    waves = plan_waves(FLEET[:100], policy(canary={"count": 2}, growth_factor=4, max_wave_size=20))
    assert [len(w) for w in waves] == [2, 8, 20, 20, 20, 20, 10]


def test_no_canary_starts_with_a_wave_of_one_that_then_grows():
    waves = plan_waves(FLEET[:7], policy(canary={"count": 0}, growth_factor=2))
    assert [len(w) for w in waves] == [1, 2, 4]


def test_an_empty_change_has_no_waves():
    assert plan_waves([], RolloutPolicy()) == []


def test_concurrency_above_the_aws_safe_limit_is_refused():
    with pytest.raises(ValidationError, match="less than or equal to 25"):
        policy(concurrency=100)


def test_prod_without_a_canary_is_refused_and_other_environments_may_skip_it():
    settings = {
        "account": "333333333333",
        "region": "us-east-1",
        "vpc": {"cidr": "10.0.0.0/16"},
        "zone": {"name": "example.com", "private": True},
        "load_balancer": {"internet_facing": False, "plain_http": True},
        "rollout": {"canary": {"count": 0}},
    }
    with pytest.raises(ValidationError, match=r"environment prod: rollout.canary names no instance and has count 0"):
        PlatformSpec.model_validate({"environments": {"prod": settings}})
    assert (
        PlatformSpec.model_validate({"environments": {"dev": settings}}).environments["dev"].rollout.canary.count == 0
    )


def test_validate_refuses_a_platform_file_whose_prod_rollout_has_no_canary(agents_copy, capsys):
    from foundry.cli import main

    path = agents_copy / "platform.yaml"
    text = path.read_text()
    assert "          instances:\n          - acme/retail/us-east-1\n" in text
    path.write_text(text.replace("          instances:\n          - acme/retail/us-east-1\n", "          count: 0\n"))
    assert main(["validate", "--agents-dir", str(agents_copy)]) == 1
    error = capsys.readouterr().err
    assert "platform.yaml" in error and "a production rollout must start with a canary wave" in error
