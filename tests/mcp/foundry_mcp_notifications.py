"""Collects what a Foundry MCP tool call streams to the client: progress messages and log lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Notifications:
    progress: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append(message or "")

    async def on_log(self, params: Any) -> None:
        self.logs.append(str(params.data))
