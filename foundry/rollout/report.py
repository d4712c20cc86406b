"""What a rollout tells people: the JSON report (`--json`, the MCP tool), markdown for a CI job summary, a plain
summary, and the live per-wave view in a terminal (rich)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from foundry.rollout.scheduler import REPORTED_STATES, Rollout, Scheduler


def duration_text(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def wave_rows(rollout: Rollout) -> list[dict[str, Any]]:
    rows = []
    for number, wave in enumerate(rollout.waves, start=1):
        tally = Counter(rollout.instances[i].state for i in wave)
        rows.append(
            {
                "wave": number,
                "canary": number == 1 and _has_canary(rollout),
                "size": len(wave),
                "baked": rollout.waves_baked[number - 1],
                "states": {state: n for state, n in sorted(tally.items())},
            }
        )
    return rows


def _has_canary(rollout: Rollout) -> bool:
    canary = rollout.policy.get("canary", {})
    return bool(canary.get("instances") or canary.get("count"))


def report(rollout: Rollout) -> dict[str, Any]:
    """One row per instance (wave order), the waves, and the totals."""
    instances = sorted(rollout.instances.values(), key=lambda p: (p.wave, p.instance))
    return {
        "ok": rollout.status == "complete",
        "environment": rollout.environment,
        "change": rollout.change,
        "change_id": rollout.change_id,
        "status": rollout.status,
        "simulated": rollout.simulated,
        "runs": rollout.runs,
        "halted_wave": rollout.halted_wave,
        "halt_reason": rollout.halt_reason,
        "elapsed_seconds": round(rollout.elapsed_seconds, 1),
        "policy": rollout.policy,
        "notes": list(rollout.notes),
        "assembly": rollout.assembly,
        "assembly_digest": rollout.assembly_digest,
        "git_revision": rollout.git_revision,
        "totals": {"instances": len(instances), **rollout.counts()},
        "waves": wave_rows(rollout),
        "instances": [
            {
                "instance": p.instance,
                "stack": p.stack,
                "wave": p.wave,
                "state": p.state,
                "reason": p.reason,
                "deploys": p.deploys,
            }
            for p in instances
        ],
    }


def _headline(rollout: Rollout) -> str:
    counts = rollout.counts()
    kind = "Simulated rollout" if rollout.simulated else "Rollout"
    time_label = "projected wall time" if rollout.simulated else "elapsed"
    totals = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in REPORTED_STATES)
    return (
        f"{kind} of {rollout.environment}: {rollout.status.upper()} - {totals}; "
        f"{len(rollout.waves)} waves, {time_label} {duration_text(rollout.elapsed_seconds)}"
    )


def markdown(rollout: Rollout) -> str:
    lines = [f"## {_headline(rollout)}", "", f"Change: {rollout.change} (`{rollout.change_id}`)", ""]
    if rollout.halt_reason:
        lines += [f"> **Halted** at {rollout.halt_reason}", ""]
    lines += [f"- {note}" for note in rollout.notes] + ([""] if rollout.notes else [])
    lines += ["| wave | size | baked | states |", "|---|---|---|---|"]
    for row in wave_rows(rollout):
        label = f"{row['wave']} (canary)" if row["canary"] else str(row["wave"])
        states = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in row["states"].items())
        lines.append(f"| {label} | {row['size']} | {'yes' if row['baked'] else 'no'} | {states} |")
    lines += ["", "| instance | wave | state | reason |", "|---|---|---|---|"]
    for p in sorted(rollout.instances.values(), key=lambda p: (p.wave, p.instance)):
        reason = (p.reason or "").replace("|", "/").replace("\n", " ")
        lines.append(f"| `{p.instance}` | {p.wave} | {p.state.replace('_', ' ')} | {reason} |")
    return "\n".join(lines) + "\n"


def summary_text(rollout: Rollout) -> str:
    """For a terminal after the run: the waves, then every instance that is not deployed, with its reason."""
    lines = [_headline(rollout), f"change: {rollout.change} ({rollout.change_id})"]
    lines += [f"note: {note}" for note in rollout.notes]
    for row in wave_rows(rollout):
        members = rollout.waves[row["wave"] - 1]
        shown = members[0] if len(members) == 1 else f"{members[0]} .. {members[-1]}"
        states = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in row["states"].items())
        canary = " canary" if row["canary"] else ""
        lines.append(f"  wave {row['wave']:>2}{canary:<7} {row['size']:>5} instance(s)  {shown:<45} {states}")
    problems = [p for p in rollout.instances.values() if p.state in ("failed", "rolled_back")]
    for p in sorted(problems, key=lambda p: (p.wave, p.instance)):
        lines.append(f"  {p.state.upper():<11} {p.instance} (wave {p.wave}): {p.reason}")
    if rollout.halt_reason:
        lines.append(f"halted: {rollout.halt_reason}; no later wave was started. Run the same command to resume.")
    return "\n".join(lines) + "\n"


class LiveView:
    """The per-wave table, redrawn by rich a few times a second while the scheduler runs."""

    def __init__(self, scheduler: Scheduler, rollout: Rollout, console: Console) -> None:
        self._scheduler, self._rollout = scheduler, rollout
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def _render(self) -> RenderableType:
        rollout, scheduler = self._rollout, self._scheduler
        table = Table(title=f"rollout of {rollout.environment} ({rollout.change})", expand=False)
        for column in ("wave", "size", "deploying", "baking", "deployed", "failed", "rolled back", "not started"):
            table.add_column(column, justify="right" if column != "wave" else "left")
        table.add_column("status")
        for row in wave_rows(rollout):
            number, states = row["wave"], row["states"]
            if row["baked"]:
                status = Text("done", style="green")
            elif number == scheduler.current_wave:
                status = Text(scheduler.phase, style="red" if scheduler.phase == "halted" else "yellow")
                if scheduler.phase == "baking" and scheduler.bake_ends_at is not None:
                    left = max(0.0, scheduler.bake_ends_at - rollout.elapsed_seconds)
                    status.append(f" ({duration_text(left)} left)")
            else:
                status = Text("waiting", style="dim")
            table.add_row(
                f"{number}{' canary' if row['canary'] else ''}",
                str(row["size"]),
                *(str(states.get(s, 0)) for s in ("deploying", "baking", "deployed", "failed", "rolled_back")),
                str(states.get("not_started", 0)),
                status,
            )
        footer = Text(f"elapsed {duration_text(rollout.elapsed_seconds)}", style="dim")
        return Group(table, footer)
