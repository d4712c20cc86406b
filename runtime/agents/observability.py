"""Observability: per-node timings and counters for the process (metrics) and for the response (summary)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runtime.state import PipelineState


@dataclass
class NodeStats:
    calls: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class Metrics:
    """Process-wide counters; one event loop updates them, so no lock is needed."""

    started_at: float = field(default_factory=time.time)
    requests: int = 0
    answered: int = 0
    rejected: int = 0
    failed: int = 0
    refused: int = 0
    in_flight: int = 0
    nodes: dict[str, NodeStats] = field(default_factory=dict)

    def record(self, state: PipelineState) -> None:
        for entry in state.get("trace", []):
            stats = self.nodes.setdefault(entry["node"], NodeStats())
            stats.calls += 1
            stats.errors += entry["status"] == "error"
            stats.total_ms += entry["ms"]
            stats.max_ms = max(stats.max_ms, entry["ms"])
        if state.get("failures"):
            self.failed += 1
        elif state.get("rejection"):
            self.rejected += 1
        else:
            self.answered += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "requests": self.requests,
            "answered": self.answered,
            "rejected": self.rejected,
            "failed": self.failed,
            "refused": self.refused,
            "in_flight": self.in_flight,
            "nodes": {
                name: {
                    "calls": s.calls,
                    "errors": s.errors,
                    "avg_ms": round(s.total_ms / s.calls, 3) if s.calls else 0.0,
                    "max_ms": round(s.max_ms, 3),
                }
                for name, s in sorted(self.nodes.items())
            },
        }


class ObservabilityAgent:
    def __init__(self, *, agent_id: str, metrics: Metrics) -> None:
        self.agent_id = agent_id
        self.metrics = metrics

    async def __call__(self, state: PipelineState) -> PipelineState:
        self.metrics.record(state)
        trace = state.get("trace", [])
        return {
            "summary": {
                "trace_id": state.get("trace_id", ""),
                "nodes_ms": round(sum(e["ms"] for e in trace), 3),
                "nodes_run": len(trace),
            }
        }
