"""`foundry.get_rollout_status` through the SDK's in-memory client: the report `rollout --json` gives, read-only."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mcp import Client

from foundry.cli import main
from foundry.mcp.server import FoundryConfig, build_server


async def call(config: FoundryConfig, arguments: dict[str, Any]) -> Any:
    async with Client(build_server(config)) as client:
        return await client.call_tool("foundry.get_rollout_status", arguments)


def config_in(foundry_config: FoundryConfig, root: Path) -> FoundryConfig:
    return dataclasses.replace(foundry_config, repo_root=root)


async def test_a_halted_rollout_is_reported_instance_by_instance(foundry_config, tmp_path, capsys):
    failing = ["--simulate-fail", "default-org/default-domain/dev", "--simulate-keep-state"]
    code = main(["rollout", "--environment", "dev", "--simulate", "--json", *failing])
    assert code == 1
    capsys.readouterr()
    config = config_in(foundry_config, tmp_path)

    result = await call(config, {"environment": "dev", "simulated": True})
    assert not result.is_error, result.content
    status = result.structured_content
    assert status["status"] == "halted" and status["halted_wave"] == 2
    assert {r["instance"]: (r["wave"], r["state"]) for r in status["instances"]} == {
        "acme/retail/dev": (1, "deployed"),
        "default-org/default-domain/dev": (2, "failed"),
    }

    listing = (await call(config, {"simulated": True})).structured_content
    assert listing["count"] == 1 and listing["rollouts"][0]["status"] == "halted"
    nothing = (await call(config, {"environment": "dev"})).structured_content
    assert nothing["status"] == "none", "a simulated rollout must not show as a real one"


async def test_the_tool_is_read_only_and_refuses_a_hostile_environment(foundry_config, tmp_path):
    async with Client(build_server(config_in(foundry_config, tmp_path))) as client:
        [tool] = [t for t in (await client.list_tools()).tools if t.name == "foundry.get_rollout_status"]
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        refused = await client.call_tool("foundry.get_rollout_status", {"environment": "../../etc"})
    assert refused.is_error
    assert "environment" in " ".join(getattr(c, "text", "") for c in refused.content)
