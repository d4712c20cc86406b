"""The usage report for people: a `rich` table per environment, one row per instance, and the totals."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from foundry.usage.model import EnvironmentUsage, InstanceUsage

UNKNOWN = "unknown"


def usage_table(report: EnvironmentUsage) -> RenderableType:
    window = f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"
    table = Table(title=f"{report.environment}: usage {window}", title_justify="left", show_lines=True)
    for name, justify in (
        ("instance", "left"),
        ("requests", "right"),
        ("tokens in / out, by model", "left"),
        ("tool calls", "right"),
        ("compute (task-h, vCPU-h, GB-h)", "left"),
        ("tokens $", "right"),
        ("compute $", "right"),
        ("total $", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]  # rich's Literal
    for row in report.instances:
        table.add_row(*_cells(row))
    t = report.totals
    table.add_row(
        Text("total", style="bold"),
        str(t.requests),
        f"{t.input_tokens:,} / {t.output_tokens:,}",
        str(t.tool_calls),
        f"{t.task_hours:,.1f} task-h, {t.vcpu_hours:,.1f} vCPU-h, {t.gb_hours:,.1f} GB-h",
        _money(t.token_cost) + ("" if t.complete else " +?"),
        _money(t.compute_cost),
        _money(t.total_cost) + ("" if t.complete else " +?"),
        style="bold",
    )
    notes = [f"Prices of {report.pricing_taken} (agents/platform.yaml `pricing:`)."]
    if not t.complete:
        notes.append("+?: some tokens or prices are unknown; the totals are a lower bound.")
    if any(r.compute.source == "estimate" for r in report.instances):
        notes.append("Compute marked 'estimate' is the template's minimum tasks over the window, not a measurement.")
    if report.partial:
        notes.append("Some instances did not answer: see their rows.")
    return Group(table, *(Text(n, style="dim") for n in notes))


def _cells(row: InstanceUsage) -> list[RenderableType]:
    compute = row.compute
    compute_text = (
        "-"
        if compute.source == "none"
        else f"{compute.task_hours:,.1f} task-h, {compute.vcpu_hours:,.1f} vCPU-h, {compute.gb_hours:,.1f} GB-h"
        + ("\n(estimate)" if compute.source == "estimate" else "")
    )
    if row.usage is None:
        state = {"not_deployed": "not deployed", "unreachable": "UNREACHABLE", "refused": "REFUSED"}.get(
            row.status, row.status
        )
        style = "dim" if row.status == "not_deployed" else "red"
        return [
            Text(f"{row.instance}\n{state}: {row.error or ''}", style=style),
            "-",
            "-",
            "-",
            compute_text,
            UNKNOWN if row.status != "not_deployed" else "-",
            _money(compute.cost) if compute.source != "none" else "-",
            UNKNOWN if row.status != "not_deployed" else "-",
        ]
    models = "\n".join(
        f"{m.model}: {m.input_tokens:,} / {m.output_tokens:,}" + ("" if m.cost is not None else " (no price)")
        for m in row.models
    )
    return [
        row.instance,
        str(row.usage.requests),
        models or "-",
        str(row.usage.tool_calls),
        compute_text,
        UNKNOWN if row.token_cost is None else _money(row.token_cost),
        _money(compute.cost),
        UNKNOWN if row.total_cost is None else _money(row.total_cost),
    ]


def _money(amount: float) -> str:
    return f"{amount:,.4f}" if amount < 1 else f"{amount:,.2f}"
