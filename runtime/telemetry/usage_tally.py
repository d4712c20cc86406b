"""One turn's usage, collected while it runs, and the flat counters the usage ledger adds per hour.

`Instance.invoke` (and a resumed turn) puts a fresh UsageTally in TURN_TALLY (`tallying`); every agent's
ToolGateway call (the graph's nodes run in copies of the turn's context, so they see it) notes the tool and, for
`model_generate`, the model's reported tokens. The turn then becomes counters: a flat name -> integer mapping whose
names say what they count, so the stores can add them atomically (DynamoDB `ADD`, one SQLite statement) and know
nothing of their meaning:

    requests                                   1 per invoke
    outcome/<ok|error code>                    1
    turn_ms                                    the turn's duration, milliseconds
    turn_le/<bound>                            1 in the histogram bucket the duration falls in (bounds in seconds)
    model/<calls|input_tokens|output_tokens>/<provider>/<model id>
    tool/<calls|errors>/<tool>

Names end with the free-form part (a model id may hold ':' and '/'), so they split unambiguously.
"""

from __future__ import annotations

import bisect
import contextvars
import datetime
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from instance_contract.usage import ModelUsage, ToolUsage, TurnSeconds, UsageReport, UsageWindow
from runtime.telemetry.instruments import TURN_SECONDS_BUCKETS, describe_histogram

MODEL_TOOL = "model_generate"
"""The backend tool whose result reports a model call's provider, model and tokens."""
TURN_TALLY: contextvars.ContextVar[UsageTally | None] = contextvars.ContextVar("turn_tally", default=None)
INFINITY = "inf"


@dataclass
class UsageTally:
    """What one turn used so far. Several workers of one turn add to it side by side (one event loop, no await
    inside an update), so plain dictionaries suffice."""

    models: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(provider, model) -> [calls, input tokens, output tokens]."""
    tools: dict[str, list[int]] = field(default_factory=dict)
    """tool -> [calls, errors]."""

    def model_call(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
        counts = self.models.setdefault((provider, model), [0, 0, 0])
        counts[0] += 1
        counts[1] += max(0, int(input_tokens))
        counts[2] += max(0, int(output_tokens))

    def tool_call(self, tool: str, ok: bool) -> None:
        counts = self.tools.setdefault(tool, [0, 0])
        counts[0] += 1
        counts[1] += 0 if ok else 1

    def note_gateway_call(self, tool: str, ok: bool, result: Mapping[str, Any] | None) -> None:
        """One ToolGateway call; a successful `model_generate` also counts its model's tokens."""
        self.tool_call(tool, ok)
        if ok and tool == MODEL_TOOL and result is not None:
            self.model_call(
                str(result.get("provider", "")),
                str(result.get("model", "")),
                int(result.get("input_tokens", 0)),
                int(result.get("output_tokens", 0)),
            )

    def model_usage(self) -> list[ModelUsage]:
        return [
            ModelUsage(provider=provider, model=model, calls=c[0], input_tokens=c[1], output_tokens=c[2])
            for (provider, model), c in sorted(self.models.items())
        ]

    def counters(self, *, outcome: str | None, seconds: float) -> dict[str, int]:
        """The turn as ledger counters (zero counts left out). `outcome` None: the rest of a turn that paused for an
        approval and was resumed; its request, outcome and duration were counted when it paused, so only its model
        and tool use is added."""
        found: dict[str, int] = {}
        if outcome is not None:
            found.update({"requests": 1, f"outcome/{outcome}": 1, "turn_ms": round(seconds * 1000)})
            found[f"turn_le/{bucket_bound(seconds)}"] = 1
        for (provider, model), (calls, tokens_in, tokens_out) in self.models.items():
            for measure, amount in (("calls", calls), ("input_tokens", tokens_in), ("output_tokens", tokens_out)):
                if amount:
                    found[f"model/{measure}/{provider}/{model}"] = amount
        for tool, (calls, errors) in self.tools.items():
            found[f"tool/calls/{tool}"] = calls
            if errors:
                found[f"tool/errors/{tool}"] = errors
        return found


@contextmanager
def tallying() -> Iterator[UsageTally]:
    """A fresh tally in TURN_TALLY for the code inside: the graph's nodes run in copies of this context, so their
    gateway calls add to it."""
    tally = UsageTally()
    token = TURN_TALLY.set(tally)
    try:
        yield tally
    finally:
        TURN_TALLY.reset(token)


def bucket_bound(seconds: float) -> str:
    """The upper bound (seconds, as written in the counter's name) of the histogram bucket `seconds` falls in:
    the same bounds as the agentfoundry.turn.duration instrument."""
    index = bisect.bisect_left(TURN_SECONDS_BUCKETS, seconds)
    return INFINITY if index == len(TURN_SECONDS_BUCKETS) else repr(TURN_SECONDS_BUCKETS[index])


def add_counters(total: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for name, amount in more.items():
        total[name] = total.get(name, 0) + int(amount)
    return total


def usage_report(instance: str, window: UsageWindow, hours: Iterable[Mapping[str, int]]) -> UsageReport:
    """The report over the window from its hours' counters (a name this version does not know is skipped, so an
    older runtime can read what a newer one wrote)."""
    total: dict[str, int] = {}
    hours_with_usage = 0
    for counters in hours:
        add_counters(total, counters)
        hours_with_usage += 1 if counters.get("requests") else 0
    outcomes: dict[str, int] = {}
    models: dict[tuple[str, str], ModelUsage] = {}
    tools: dict[str, ToolUsage] = {}
    buckets: dict[float, int] = {}
    for name, amount in total.items():
        kind, _, rest = name.partition("/")
        if kind == "outcome":
            outcomes[rest] = amount
        elif kind == "turn_le":
            buckets[float(rest)] = amount
        elif kind == "model":
            measure, _, named = rest.partition("/")
            provider, _, model = named.partition("/")
            entry = models.setdefault((provider, model), ModelUsage(provider=provider, model=model))
            if measure in ("calls", "input_tokens", "output_tokens"):
                setattr(entry, measure, amount)
        elif kind == "tool":
            measure, _, tool = rest.partition("/")
            tool_entry = tools.setdefault(tool, ToolUsage(tool=tool))
            if measure in ("calls", "errors"):
                setattr(tool_entry, measure, amount)
    model_list = [models[k] for k in sorted(models)]
    tool_list = [tools[k] for k in sorted(tools)]
    return UsageReport(
        instance=instance,
        since=window.since,
        until=window.until,
        hours_with_usage=hours_with_usage,
        requests=total.get("requests", 0),
        input_tokens=sum(m.input_tokens for m in model_list),
        output_tokens=sum(m.output_tokens for m in model_list),
        tool_calls=sum(t.calls for t in tool_list),
        outcomes=dict(sorted(outcomes.items())),
        models=model_list,
        tools=tool_list,
        turn_seconds=_turn_seconds(buckets, total.get("turn_ms", 0)),
    )


def _turn_seconds(buckets: dict[float, int], total_ms: int) -> TurnSeconds:
    count = sum(buckets.values())
    cumulative: list[tuple[float, float]] = []
    seen = 0
    for bound in sorted(buckets):
        seen += buckets[bound]
        cumulative.append((bound, float(seen)))
    described = describe_histogram(cumulative, count, total_ms / 1000)
    return TurnSeconds(
        count=count, total=total_ms / 1000, mean=described["mean"], p50=described["p50"], p95=described["p95"]
    )


def hour_of(moment: float) -> datetime.datetime:
    """The UTC hour an epoch time falls in."""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).replace(minute=0, second=0, microsecond=0)


def hour_key(hour: datetime.datetime) -> str:
    """How a store names an hour: sortable text, e.g. 2026-12-03T05:00Z."""
    return hour.strftime("%Y-%m-%dT%H:00Z")
