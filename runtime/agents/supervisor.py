"""Supervisor: picks the workers for a request from their routing specs (keywords, default)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.state import PipelineState


@dataclass(frozen=True)
class Route:
    agent_id: str
    keywords: tuple[str, ...]
    default: bool


def select_workers(message: str, routes: list[Route]) -> list[str]:
    """Workers whose keyword starts a word of the message ('tests' selects 'test'); none matched -> the defaults;
    no defaults -> the first worker, so every request gets an answer."""
    words = re.findall(r"[a-z0-9]+", message.lower())
    chosen = [r.agent_id for r in routes if any(w.startswith(k) for k in r.keywords for w in words)]
    if chosen:
        return chosen
    defaults = [r.agent_id for r in routes if r.default]
    return defaults or [r.agent_id for r in routes[:1]]


class SupervisorAgent:
    def __init__(self, *, agent_id: str, routes: list[Route]) -> None:
        self.agent_id = agent_id
        self.routes = routes

    async def __call__(self, state: PipelineState) -> PipelineState:
        return {"routes": select_workers(state["message"], self.routes)}
