"""The template's `mcp.on_busy` (busy-thread policy): carried into the instance manifest and its bundle document,
refused with the allowed values when unknown, and left out of the serialised manifest at its default (so bundles
of instances that keep the default are byte-identical to those before the setting existed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from instance_contract.schema import McpToolConfig


@pytest.mark.parametrize("policy", ["reject", "interrupt"])
def test_a_policy_other_than_the_default_is_serialised_and_read_back(policy: str) -> None:
    config = McpToolConfig.model_validate({"on_busy": policy})
    dumped = config.model_dump(mode="json")
    assert dumped["on_busy"] == policy
    assert McpToolConfig.model_validate(dumped).on_busy == policy


def test_the_default_enqueue_is_left_out_of_the_serialised_manifest() -> None:
    assert McpToolConfig().on_busy == "enqueue"
    assert "on_busy" not in McpToolConfig.model_validate({"on_busy": "enqueue"}).model_dump(mode="json")


def test_an_unknown_policy_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValidationError, match=r"on_busy\n.*'enqueue', 'reject' or 'interrupt'"):
        McpToolConfig.model_validate({"on_busy": "drop"})
