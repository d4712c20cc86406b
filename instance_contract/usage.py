"""What an instance used over a window: the answer of its `usage` MCP tool, which the Foundry reads too
(`python -m foundry usage`, `foundry.get_instance_usage`), and the rule that turns `since` / `until` into the
window both sides mean. Pure: no store, no clock of its own.

The instance keeps its usage per UTC hour (runtime.store.usage_ledger), so a window is whole hours: `since` is rounded
down to its hour and `until` up to its hour. A date alone means the whole day: `since 2026-11-01` starts at its
midnight and `until 2026-11-30` ends at the midnight after it, so `--since 2026-11-01 --until 2026-11-30` is
November. Without either, the window is the current UTC month.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pydantic import BaseModel, Field

HOUR = datetime.timedelta(hours=1)


class UsageWindowError(ValueError):
    """`since` or `until` is not a date or date-time, or the window is empty; the message names the argument."""


@dataclass(frozen=True)
class UsageWindow:
    since: datetime.datetime
    """Inclusive, UTC, on the hour."""
    until: datetime.datetime
    """Exclusive, UTC, on the hour."""

    @property
    def hours(self) -> int:
        return int((self.until - self.since) / HOUR)


def usage_window(since: str | None, until: str | None, *, now: datetime.datetime) -> UsageWindow:
    """The window `since` / `until` name (ISO 8601 dates or date-times; without a zone, UTC), checked."""
    start = _parse("since", since, end=False)
    end = _parse("until", until, end=True)
    if end is None:
        anchor = max(now.astimezone(datetime.UTC), start) if start is not None else now.astimezone(datetime.UTC)
        end = _next_month(anchor)
    if start is None:
        last_hour = end - HOUR
        start = last_hour.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start, end = _floor_hour(start), _ceil_hour(end)
    if end <= start:
        raise UsageWindowError(
            f"until ({until or end.isoformat()}) must be after since ({since or start.isoformat()}): the window "
            "would be empty"
        )
    return UsageWindow(start, end)


def _parse(name: str, text: str | None, *, end: bool) -> datetime.datetime | None:
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = datetime.date.fromisoformat(raw)
            midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
            return midnight + datetime.timedelta(days=1) if end else midnight
        moment = datetime.datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise UsageWindowError(
            f"{name} {raw[:40]!r} is not an ISO 8601 date or date-time (e.g. 2026-11-01 or 2026-11-01T08:00:00Z)"
        ) from None
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)


def _floor_hour(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime.datetime) -> datetime.datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def _next_month(moment: datetime.datetime) -> datetime.datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)


class ModelUsage(BaseModel):
    """One model's calls: `provider` as the runtime names it (`bedrock`, `offline`), `model` its model id."""

    provider: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class ToolUsage(BaseModel):
    """Calls of one tool through an agent's gateway (backend tools such as `model_generate` and `memory_read`,
    and external ones such as `ticketing.create_ticket`); `errors` failed or were refused."""

    tool: str
    calls: int = 0
    errors: int = 0


class TurnSeconds(BaseModel):
    """Turn durations: count and total exact; p50 and p95 estimated from the kept histogram buckets."""

    count: int = 0
    total: float = 0.0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None


class UsageReport(BaseModel):
    """An instance's usage over [since, until): every `invoke` counts, refusals included (their outcome says
    why). Exact: each turn's figures are added atomically to the instance's own store."""

    instance: str
    since: datetime.datetime
    until: datetime.datetime
    hours_with_usage: int = 0
    """How many of the window's hours saw at least one request."""
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    """`ok`, `awaiting_approval` (the turn paused for a person's decision; the tokens and tool calls of its
    resumed part are added when it resumes) or the error code (`timeout`, `agent_failed`, `thread_busy`, ...) ->
    requests."""
    models: list[ModelUsage] = Field(default_factory=list)
    """Sorted by provider, then model."""
    tools: list[ToolUsage] = Field(default_factory=list)
    """Sorted by tool name."""
    turn_seconds: TurnSeconds = Field(default_factory=TurnSeconds)
