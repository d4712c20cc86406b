"""The Foundry MCP server's rollout tool: `foundry.get_rollout_status`, read-only.

Kept apart from `foundry.mcp.server`'s other tools (one registration call there): it reads the rollout state that
`python -m foundry rollout` persists under build/rollouts/ and returns the same report as `rollout --json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from foundry.mcp.tool_args import ToolArgumentError, check_id
from foundry.rollout.report import report
from foundry.rollout.state import SIMULATED_SUBDIR, RolloutConflictError, RolloutStore


def rollout_status(state_dir: Path, environment: str | None, *, simulated: bool = False) -> dict[str, Any]:
    """The core of the tool: one environment's report, or every environment's headline."""
    store = RolloutStore(state_dir / SIMULATED_SUBDIR if simulated else state_dir)
    if environment is None:
        rows = []
        for name in store.environments():
            rollout = store.load(name)
            if rollout is not None:
                full = report(rollout)
                rows.append({k: full[k] for k in ("environment", "change", "change_id", "status", "totals")})
        return {"count": len(rows), "rollouts": rows}
    rollout = store.load(environment)
    if rollout is None:
        return {"environment": environment, "status": "none", "message": f"no rollout of {environment} is recorded"}
    return report(rollout)


def register_rollout_status(server: MCPServer, state_dir: Path) -> None:
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(name="foundry.get_rollout_status", annotations=read_only)
    async def get_rollout_status(environment: str | None = None, simulated: bool = False) -> dict[str, Any]:
        """The last rollout of an environment (`python -m foundry rollout`): status (running, halted, complete,
        interrupted), its waves, and every instance as deployed, failed (with the reason), rolled_back or
        not_started. Without an environment: one line per environment. simulated: read `--simulate` runs."""
        try:
            if environment is not None:
                check_id("environment", environment)
            return rollout_status(state_dir, environment, simulated=simulated)
        except (ToolArgumentError, RolloutConflictError) as exc:
            raise ToolError(str(exc)) from exc
