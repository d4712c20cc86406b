"""The usage ledger and the instance's `usage` tool: the window rule, the counters a turn adds, two ledgers adding to
one SQLite file at once, and real runtime processes on one store (SQLite file, moto's DynamoDB) answering twenty
concurrent invokes, restarted, then asked through their own MCP tool."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from instance_contract.thread_state import DYNAMODB_TTL_ATTRIBUTE
from instance_contract.usage import UsageReport, UsageWindow, UsageWindowError, usage_window
from runtime.store.thread_leases import SQLITE_BUSY_TIMEOUT_S
from runtime.store.usage_ledger import USAGE_PARTITION, MemoryUsageLedger, SqliteUsageLedger
from runtime.telemetry.usage_tally import UsageTally, hour_key, usage_report
from tests.mcp.foundry_mcp_local_aws import moto_server
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, serve
from tests.runtime.state_table import create_state_table

UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 3, 5, 17, tzinfo=UTC)
INSTANCE = "default-org/default-domain/dev"


# --- the window (pure) ---------------------------------------------------------------------------------------


def test_without_since_or_until_the_window_is_the_current_utc_month() -> None:
    assert usage_window(None, None, now=NOW) == UsageWindow(
        datetime.datetime(2026, 12, 1, tzinfo=UTC), datetime.datetime(2027, 1, 1, tzinfo=UTC)
    )


def test_a_date_alone_as_until_includes_that_whole_day() -> None:
    window = usage_window("2026-11-01", "2026-11-30", now=NOW)
    assert (window.since, window.until) == (
        datetime.datetime(2026, 11, 1, tzinfo=UTC),
        datetime.datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert window.hours == 30 * 24


def test_date_times_are_rounded_out_to_whole_hours_and_a_zone_is_honoured() -> None:
    window = usage_window("2026-11-02T08:30:00+01:00", "2026-11-02T09:00:01Z", now=NOW)
    assert (window.since, window.until) == (
        datetime.datetime(2026, 11, 2, 7, tzinfo=UTC),
        datetime.datetime(2026, 11, 2, 10, tzinfo=UTC),
    )


def test_only_until_given_starts_the_window_at_the_first_of_its_month() -> None:
    window = usage_window(None, "2026-10-15", now=NOW)
    assert window.since == datetime.datetime(2026, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2026-11-30", "2026-11-01", "until (2026-11-01) must be after since (2026-11-30)"),
        ("2026-11-02T10:00Z", "2026-11-02T10:00Z", "until (2026-11-02T10:00Z) must be after since"),
        ("last tuesday", None, "since 'last tuesday' is not an ISO 8601 date or date-time"),
        (None, "2026-13-01", "until '2026-13-01' is not an ISO 8601 date or date-time"),
    ],
)
def test_a_bad_window_is_refused_naming_the_argument(since: str | None, until: str | None, expected: str) -> None:
    with pytest.raises(UsageWindowError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        usage_window(since, until, now=NOW)


# --- a turn's counters and the report over hours (pure) ------------------------------------------------------


def _turn(tokens_in: int, tokens_out: int, *, ok: bool = True) -> dict[str, int]:
    tally = UsageTally()
    tally.note_gateway_call("memory_read", True, {"messages": []})
    tally.note_gateway_call(
        "model_generate",
        True,
        {"provider": "bedrock", "model": "anthropic.claude-3-haiku-20240307-v1:0", "input_tokens": tokens_in,
         "output_tokens": tokens_out},
    )  # fmt: skip
    tally.note_gateway_call("ticketing.create_ticket", ok, None)
    return tally.counters(outcome="ok" if ok else "agent_failed", seconds=0.03 if ok else 7.0)


def test_the_report_sums_every_hour_and_breaks_down_by_model_tool_and_outcome() -> None:
    window = usage_window("2026-11-01", "2026-11-01", now=NOW)
    report = usage_report("dev", window, [_turn(10, 4), _turn(7, 3, ok=False), {}])
    assert (report.requests, report.input_tokens, report.output_tokens, report.tool_calls) == (2, 17, 7, 6)
    assert report.outcomes == {"agent_failed": 1, "ok": 1}
    assert [(m.provider, m.model, m.calls, m.input_tokens, m.output_tokens) for m in report.models] == [
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 2, 17, 7)
    ]
    assert [(t.tool, t.calls, t.errors) for t in report.tools] == [
        ("memory_read", 2, 0),
        ("model_generate", 2, 0),
        ("ticketing.create_ticket", 2, 1),
    ]
    assert (report.turn_seconds.count, report.turn_seconds.total) == (2, 7.03)
    assert report.turn_seconds.p50 is not None and 0.025 <= report.turn_seconds.p50 <= 0.05
    assert report.hours_with_usage == 2


def test_a_failed_model_call_counts_as_a_tool_error_and_no_tokens() -> None:
    tally = UsageTally()
    tally.note_gateway_call("model_generate", False, None)
    counters = tally.counters(outcome="agent_failed", seconds=0.2)
    assert counters["tool/errors/model_generate"] == 1
    assert not [name for name in counters if name.startswith("model/")]


# --- the SQLite ledger: two connections (as two processes) adding at once --------------------------------------


async def test_two_sqlite_ledgers_on_one_file_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ledgers = [
        await SqliteUsageLedger.open(path, retention_days=400, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_S)
        for _ in range(2)
    ]
    hour = datetime.datetime(2026, 11, 2, 7, tzinfo=UTC)
    turns = [_turn(i, 2 * i) for i in range(60)]
    await asyncio.gather(*(ledgers[i % 2].add(hour, counters) for i, counters in enumerate(turns)))
    await ledgers[0].add(hour + datetime.timedelta(hours=1), _turn(5, 5))
    report = usage_report("dev", UsageWindow(hour, hour + datetime.timedelta(hours=1)), await ledgers[1].hours(
        hour, hour + datetime.timedelta(hours=1)
    ))  # fmt: skip
    assert (report.requests, report.input_tokens, report.output_tokens) == (60, sum(range(60)), 2 * sum(range(60)))
    for ledger in ledgers:
        await ledger.close()


async def test_the_sweep_removes_hours_past_their_retention_and_keeps_the_rest() -> None:
    ledger = MemoryUsageLedger(retention_days=30)
    old = datetime.datetime(2026, 10, 1, 0, tzinfo=UTC)
    recent = datetime.datetime(2026, 11, 20, 0, tzinfo=UTC)
    await ledger.add(old, _turn(1, 1))
    await ledger.add(recent, _turn(2, 2))
    assert await ledger.sweep(NOW.timestamp()) == 1
    kept = await ledger.hours(old, NOW)
    assert [c["requests"] for c in kept] == [1] and kept[0]["model/input_tokens/bedrock/" + _haiku()] == 2


def _haiku() -> str:
    return "anthropic.claude-3-haiku-20240307-v1:0"


# --- real runtime processes on one store ----------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    url: str
    env: dict[str, str]


@pytest.fixture
def built(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == INSTANCE)


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    with moto_server() as local:
        yield local


def _dynamodb_store(moto: Any, name: str) -> Store:
    client = moto.client("dynamodb")
    create_state_table(client, name)
    return Store(f"dynamodb://{name}", dict(moto.env))


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'state' / 'threads.db'}", {})
    return _dynamodb_store(request.getfixturevalue("moto"), f"af-usage-{tmp_path.name[-20:].strip('_')}")


def _serve(built: BuiltBundle, store: Store, factory: list[RuntimeProcess], **extra: str) -> RuntimeProcess:
    runtime = serve({**built.identity_env(), **store.env, "STATE_URL": store.url, **extra})
    factory.append(runtime)
    return runtime


async def _call(runtime: RuntimeProcess, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(runtime.url) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def _telemetry_tokens(status: dict[str, Any]) -> tuple[int, int]:
    """The process's own OpenTelemetry token counts (recorded around each model call, apart from the ledger)."""
    tokens = status["telemetry"]["tokens"].values()
    return sum(t["input"] for t in tokens), sum(t["output"] for t in tokens)


@pytest.mark.slow
async def test_twenty_concurrent_invokes_on_two_processes_and_a_restart_are_all_in_the_usage(
    built: BuiltBundle, store: Store, runtime_factory: list[RuntimeProcess]
) -> None:
    runtimes = [_serve(built, store, runtime_factory, OFFLINE_MODEL_LATENCY_MS="40") for _ in range(2)]
    started = time.time()
    bodies = await asyncio.gather(
        *(_call(runtimes[i % 2], "invoke", {"message": f"plan milestone {i} " + "with detail " * i}) for i in range(20))
    )
    assert all(body["ok"] for body in bodies)
    reported_in = sum(body["usage"]["input_tokens"] for body in bodies)
    reported_out = sum(body["usage"]["output_tokens"] for body in bodies)
    assert reported_in > 0 and reported_out > 0
    measured = [_telemetry_tokens(await _call(runtime, "status", {})) for runtime in runtimes]
    assert (sum(m[0] for m in measured), sum(m[1] for m in measured)) == (reported_in, reported_out)
    for runtime in runtimes:
        assert runtime.terminate() == 0

    later = _serve(built, store, runtime_factory)
    usage = UsageReport.model_validate(await _call(later, "usage", {}))
    assert usage.requests == 20 and usage.outcomes == {"ok": 20}
    assert (usage.input_tokens, usage.output_tokens) == (reported_in, reported_out)
    models = {(m.provider, m.model): m for m in usage.models}
    assert set(models) == {("offline", "offline-echo")}
    assert models["offline", "offline-echo"].calls == sum(len(body["usage"]["models"]) for body in bodies)
    assert {t.tool: t.calls for t in usage.tools}["model_generate"] == models["offline", "offline-echo"].calls
    assert usage.turn_seconds.count == 20
    month = datetime.datetime.fromtimestamp(started, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert usage.since == month

    empty = UsageReport.model_validate(await _call(later, "usage", {"since": "2020-01-01", "until": "2020-01-31"}))
    assert (empty.requests, empty.models, empty.hours_with_usage) == (0, [], 0)
    async with Client(later.url) as client:
        refused = await client.call_tool("usage", {"since": "2026-11-30", "until": "2026-11-01"})
    assert refused.is_error
    assert "until (2026-11-01) must be after since (2026-11-30)" in " ".join(
        getattr(c, "text", "") for c in refused.content
    )
    assert later.terminate() == 0


@pytest.mark.slow
async def test_the_dynamodb_usage_item_carries_the_ttl_of_the_retention_setting(
    built: BuiltBundle, moto: Any, runtime_factory: list[RuntimeProcess]
) -> None:
    store = _dynamodb_store(moto, "af-usage-ttl")
    runtime = _serve(built, store, runtime_factory, USAGE_RETENTION_DAYS="30")
    before = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await _call(runtime, "invoke", {"message": "plan the roadmap"})
    assert runtime.terminate() == 0
    items = moto.client("dynamodb").query(
        TableName="af-usage-ttl",
        KeyConditionExpression="PK = :p",
        ExpressionAttributeValues={":p": {"S": USAGE_PARTITION}},
    )["Items"]
    assert len(items) == 1 and items[0]["requests"] == {"N": "1"}
    hour = datetime.datetime.fromisoformat(items[0]["SK"]["S"].replace("Z", "+00:00"))
    assert items[0]["SK"]["S"] in (hour_key(before), hour_key(before + datetime.timedelta(hours=1)))
    expected = hour + datetime.timedelta(hours=1, days=30)
    assert int(items[0][DYNAMODB_TTL_ATTRIBUTE]["N"]) == int(expected.timestamp())
