"""The change plan for people: a table per environment, in plain text or GitHub markdown (a job summary)."""

from __future__ import annotations

from collections.abc import Sequence

from foundry.plan.model import KINDS, CostChange, Plan


def render_table(plan: Plan, *, markdown: bool = False, show_unchanged: bool = False) -> str:
    """A table per environment for people (plain text, or GitHub markdown for a job summary)."""
    lines = [
        f"{'## ' if markdown else ''}Change plan: {plan.base} -> {plan.head} ({plan.mode} mode)",
        "",
    ]
    if plan.recommend_templates:
        lines += [
            f"{'> ' if markdown else ''}CDK code changed ({', '.join(plan.cdk_code_changed[:5])}"
            f"{' ...' if len(plan.cdk_code_changed) > 5 else ''}): every template may change. "
            "Run `python -m foundry plan --templates` to compare synthesized templates.",
            "",
        ]
    for env in plan.environments:
        counts = ", ".join(f"{env.count(k)} {k}" for k in KINDS)
        lines.append(f"{'### ' if markdown else ''}{env.environment}: {counts}")
        rows: list[tuple[str, str, str, str]] = []
        if env.platform_kind != "unchanged" or show_unchanged:
            rows.append((env.platform_kind, "(platform)", env.platform_stack, _why(env.platform_reasons)))
        for i in env.instances:
            if i.kind != "unchanged" or show_unchanged:
                rows.append((i.kind, i.instance, i.stack_name, _why(i.reasons)))
        if markdown:
            if rows:
                lines += ["", "| change | instance | stack | why |", "|---|---|---|---|"]
                lines += [f"| {k} | `{inst}` | `{stack}` | {why.replace('|', '/')} |" for k, inst, stack, why in rows]
            deploy = " ".join(env.deploy_stacks) or "(nothing)"
            lines += ["", f"Deploy: `{deploy}`"]
            if env.removed_stacks:
                lines.append(f"Remove by hand: `{' '.join(env.removed_stacks)}`")
        else:
            for kind, inst, stack, why in rows:
                lines.append(f"  {kind:<9} {inst:<36} {stack:<44} {why}")
            lines.append(f"  deploy: {' '.join(env.deploy_stacks) or '(nothing)'}")
            if env.removed_stacks:
                lines.append(f"  remove by hand: {' '.join(env.removed_stacks)}")
        if env.compute_cost is not None:
            lines.append(f"{'' if markdown else '  '}{cost_line(env.compute_cost)}")
        lines.append("")
    lines.append("changes: yes" if plan.has_changes else "no changes")
    return "\n".join(lines) + "\n"


def cost_line(cost: CostChange) -> str:
    """'always-on compute: $12.34/month -> $20.00/month (+$7.66/month; Fargate prices of 2026-12-02)'."""
    sign = "+" if cost.delta >= 0 else "-"
    return (
        f"always-on compute: ${cost.before:,.2f}/month -> ${cost.after:,.2f}/month "
        f"({sign}${abs(cost.delta):,.2f}/month; Fargate prices of {cost.pricing_taken})"
    )


def _why(reasons: Sequence[str]) -> str:
    short = [
        "template may change: CDK code changed (see above)" if r.startswith("template may change") else r
        for r in reasons
    ]
    return "; ".join(short)
