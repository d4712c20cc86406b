"""The graph definition's guards are real errors: the CDK app used to run with `python -O`, which strips asserts."""

from __future__ import annotations

import pytest

from foundry.bundles.graph_definition import graph_definition
from foundry.fleet.load import load_fleet
from tests.conftest import AGENTS_DIR


def test_a_custom_agent_without_routing_is_a_named_error_not_an_assert() -> None:
    (instance,) = load_fleet(AGENTS_DIR, instance="default-org/default-domain/dev", cache_dir=None).instances
    worker = instance.manifest.spec.custom_agents[0]
    spec = instance.specs[worker.spec_path]
    # Built past validation on purpose (model_construct): the guard must hold even when the schema did not run.
    broken = spec.model_copy(update={"spec": spec.spec.model_copy(update={"routing": None})})
    specs = {**instance.specs, worker.spec_path: broken}
    with pytest.raises(ValueError, match=rf"custom agent '{worker.agent_id}' .* has no routing"):
        graph_definition(instance.manifest, specs)
