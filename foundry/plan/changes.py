"""The change plan: which instances a change adds, changes, removes or leaves alone, per environment, and why.

Pure: compares two fleets (already loaded) and, for `--templates`, two sets of synthesized templates. Git and the
CDK CLI live in `foundry.plan.git_revision` and `foundry.plan.command`; nothing here touches a file or a process.

The fast path needs no CDK: an instance's stack can only change when its inputs do, and its inputs are the
instance manifest, its bundle files and its environment's platform settings, plus the CDK code itself. When that
code changed, the fast path cannot know a template's fate and says so; `--templates` then answers exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from foundry.manifests.naming import platform_stack_name

ChangeKind = Literal["added", "changed", "removed", "unchanged"]
KINDS: tuple[ChangeKind, ...] = ("added", "changed", "removed", "unchanged")

CDK_CODE_PATHS = ("app.py", "cdk.json", "stacks/", "constructs/", "runtime/", "foundry/")
"""Paths whose change may alter any synthesized template (the app, its constructs, the runtime image, the bundle
builder), so the fast path cannot rule out a template change for any instance."""

MAX_FIELDS_SHOWN = 6

DEPLOY_ONLY_SETTINGS = ("rollout",)
"""Environment settings that steer how a change is deployed (`foundry rollout`), not what is deployed: no
template reads them, so changing them changes no stack."""


@dataclass(frozen=True)
class InstanceState:
    """What the fast path compares: an instance's resolved manifest and the sha256 of every bundle file."""

    environment: str
    selector: str
    stack_name: str
    manifest_file: str
    manifest: Mapping[str, Any]
    bundle: Mapping[str, str]
    """Bundle archive path -> sha256 hex."""
    content_hash: str
    slot: tuple[int, int] | None = None
    """(ALB shard, listener-rule priority) from agents/placement/<env>.yaml, if placed."""


@dataclass(frozen=True)
class FleetState:
    instances: Mapping[tuple[str, str], InstanceState]
    """Keyed by (environment, 'org/domain/instance')."""
    environments: Mapping[str, Mapping[str, Any]]
    """Each environment's platform settings (agents/platform.yaml), as plain data."""
    manifest_files: Mapping[str, str]
    """Environment -> the environment manifest file that lists its instances."""


@dataclass(frozen=True)
class InstanceChange:
    environment: str
    instance: str
    stack_name: str
    kind: ChangeKind
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentPlan:
    environment: str
    platform_stack: str
    platform_kind: ChangeKind
    platform_reasons: tuple[str, ...]
    instances: tuple[InstanceChange, ...]

    @property
    def deploy_stacks(self) -> list[str]:
        """Stacks to deploy for this environment, platform first (instance stacks import its outputs)."""
        head = [self.platform_stack] if self.platform_kind in ("added", "changed") else []
        return head + [i.stack_name for i in self.instances if i.kind in ("added", "changed")]

    @property
    def removed_stacks(self) -> list[str]:
        stacks = [i.stack_name for i in self.instances if i.kind == "removed"]
        return stacks + ([self.platform_stack] if self.platform_kind == "removed" else [])

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for i in self.instances if i.kind == kind)


@dataclass(frozen=True)
class Plan:
    base: str
    head: str
    mode: Literal["fast", "templates"]
    environments: tuple[EnvironmentPlan, ...]
    cdk_code_changed: tuple[str, ...] = field(default=())
    """Changed files under CDK_CODE_PATHS; non-empty means the fast path could not rule out template changes."""

    @property
    def has_changes(self) -> bool:
        return any(e.deploy_stacks or e.removed_stacks for e in self.environments)

    @property
    def recommend_templates(self) -> bool:
        return self.mode == "fast" and bool(self.cdk_code_changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "mode": self.mode,
            "has_changes": self.has_changes,
            "cdk_code_changed": list(self.cdk_code_changed),
            "recommend_templates": self.recommend_templates,
            "environments": [
                {
                    "environment": e.environment,
                    "deploy_stacks": e.deploy_stacks,
                    "removed_stacks": e.removed_stacks,
                    "counts": {kind: e.count(kind) for kind in KINDS},
                    "platform": {
                        "stack": e.platform_stack,
                        "kind": e.platform_kind,
                        "reasons": list(e.platform_reasons),
                    },
                    "instances": [
                        {
                            "instance": i.instance,
                            "stack": i.stack_name,
                            "kind": i.kind,
                            "reasons": list(i.reasons),
                        }
                        for i in e.instances
                    ],
                }
                for e in self.environments
            ],
        }


# --- snapshot -> state --------------------------------------------------------------------------------------------


def fleet_state(snapshot: Mapping[str, Any], agents_label: str = "agents") -> FleetState:
    """From a `foundry.plan.snapshot` document. `agents_label` prefixes file names in reasons, so a reason
    reads the same for both revisions."""
    manifest_files = {env: f"{agents_label}/manifests/manifest.{env}.yaml" for env in snapshot["environments"]}
    instances = {}
    for item in snapshot["instances"]:
        env = item["environment"]
        slot = item.get("slot")
        instances[(env, item["selector"])] = InstanceState(
            environment=env,
            selector=item["selector"],
            stack_name=item["stack_name"],
            manifest_file=manifest_files.get(env, f"{agents_label}/manifests/manifest.{env}.yaml"),
            manifest=item["manifest"],
            bundle=item["bundle"],
            content_hash=item["content_hash"],
            slot=(int(slot[0]), int(slot[1])) if slot else None,
        )
    return FleetState(instances=instances, environments=snapshot["environments"], manifest_files=manifest_files)


EMPTY_FLEET = FleetState(instances={}, environments={}, manifest_files={})


# --- the fast path --------------------------------------------------------------------------------------------


def cdk_code_paths(changed_paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(p for p in changed_paths if p in CDK_CODE_PATHS or p.startswith(CDK_CODE_PATHS)))


def plan_fleets(
    base: FleetState,
    head: FleetState,
    *,
    base_label: str,
    head_label: str,
    changed_paths: Iterable[str] = (),
    agents_label: str = "agents",
) -> Plan:
    """Compares two fleets. `changed_paths` (repository-relative, from git) only matters for CDK code changes."""
    code_changed = cdk_code_paths(changed_paths)
    code_reason = _code_reason(code_changed) if code_changed else None
    plans = []
    for env in sorted(set(base.environments) | set(head.environments)):
        old_env, new_env = (
            _template_settings(base.environments.get(env)),
            _template_settings(head.environments.get(env)),
        )
        platform_fields = _changed_fields(old_env or {}, new_env or {}, f"spec.environments.{env}")
        platform_file = f"{agents_label}/platform.yaml"
        if old_env is None:
            platform_kind: ChangeKind = "added"
            platform_reasons: list[str] = [f"new environment {env} ({head.manifest_files.get(env, platform_file)})"]
        elif new_env is None:
            platform_kind = "removed"
            platform_reasons = [f"environment {env} is gone ({base.manifest_files.get(env, platform_file)})"]
        else:
            platform_reasons = [f"{platform_file}: {_fields_text(platform_fields)}"] if platform_fields else []
            old_shards, new_shards = _shards(base, env), _shards(head, env)
            if old_shards != new_shards:
                platform_reasons.append(
                    f"{agents_label}/placement/{env}.yaml: load balancer shards {old_shards} -> {new_shards}"
                )
            platform_kind = "changed" if platform_reasons else "unchanged"
        if code_reason and platform_kind == "unchanged":
            platform_kind, platform_reasons = "changed", [code_reason]

        instances = []
        keys = sorted(k for k in set(base.instances) | set(head.instances) if k[0] == env)
        for key in keys:
            old, new = base.instances.get(key), head.instances.get(key)
            if old is None and new is not None:
                instances.append(
                    InstanceChange(env, new.selector, new.stack_name, "added", (f"new in {new.manifest_file}",))
                )
            elif old is not None and new is None:
                instances.append(
                    InstanceChange(env, old.selector, old.stack_name, "removed", (f"no longer in {old.manifest_file}",))
                )
            elif old is not None and new is not None:
                reasons = _instance_reasons(old, new, agents_label)
                if platform_kind == "changed" and platform_fields:
                    reasons.append(f"{platform_file}: environment {env} settings changed; its template may change")
                if code_reason and not reasons:
                    reasons.append(code_reason)
                kind: ChangeKind = "changed" if reasons else "unchanged"
                instances.append(InstanceChange(env, new.selector, new.stack_name, kind, tuple(reasons)))
        plans.append(
            EnvironmentPlan(
                environment=env,
                platform_stack=platform_stack_name(env),
                platform_kind=platform_kind,
                platform_reasons=tuple(platform_reasons),
                instances=tuple(instances),
            )
        )
    return Plan(base=base_label, head=head_label, mode="fast", environments=tuple(plans), cdk_code_changed=code_changed)


def _template_settings(settings: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if k not in DEPLOY_ONLY_SETTINGS}


def _shards(state: FleetState, env: str) -> list[int]:
    return sorted({i.slot[0] for (e, _), i in state.instances.items() if e == env and i.slot is not None})


def _code_reason(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"template may change: CDK code changed ({shown}); `plan --templates` compares the templates"


def _instance_reasons(old: InstanceState, new: InstanceState, agents_label: str) -> list[str]:
    if old.content_hash == new.content_hash and old.manifest == new.manifest and old.slot == new.slot:
        return []
    reasons = []
    fields = _changed_fields(old.manifest, new.manifest, "")
    if fields:
        reasons.append(f"instance manifest {new.stack_name} ({new.manifest_file}): {_fields_text(fields)}")
    if old.slot != new.slot:
        reasons.append(
            f"{agents_label}/placement/{new.environment}.yaml: slot {_slot_text(old.slot)} -> {_slot_text(new.slot)} "
            "(its listener rule and DNS alias move)"
        )
    for path in sorted(set(old.bundle) | set(new.bundle)):
        before, after = old.bundle.get(path), new.bundle.get(path)
        if before == after:
            continue
        source = f"{agents_label}/{path.removeprefix('agents/')}" if path.startswith("agents/") else path
        what = "spec" if path.startswith("agents/") else "bundle file"
        if before is None:
            reasons.append(f"{what} {source} added to the bundle")
        elif after is None:
            reasons.append(f"{what} {source} removed from the bundle")
        elif not path.startswith("agents/") and fields and path == "instance.yaml":
            continue  # already explained field by field above
        else:
            reasons.append(f"{what} {source} changed")
    return reasons


def _slot_text(slot: tuple[int, int] | None) -> str:
    return "unplaced" if slot is None else f"shard {slot[0]} priority {slot[1]}"


def _changed_fields(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """Dotted paths whose value differs; lists compare whole (an agent list is one value to a reader)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            out.extend(_changed_fields(old.get(k), new.get(k), path))
        return out
    return [] if old == new else [(prefix, old, new)]


def _fields_text(fields: Sequence[tuple[str, Any, Any]]) -> str:
    def short(value: Any) -> str:
        text = repr(value) if not isinstance(value, list | dict) else f"<{type(value).__name__} of {len(value)}>"
        return text if len(text) <= 40 else text[:37] + "..."

    parts = [f"{path} {short(before)} -> {short(after)}" for path, before, after in fields[:MAX_FIELDS_SHOWN]]
    extra = len(fields) - MAX_FIELDS_SHOWN
    return "; ".join(parts) + (f"; and {extra} more field{'s' if extra > 1 else ''}" if extra > 0 else "")


# --- the templates path ---------------------------------------------------------------------------------------

NON_SEMANTIC_METADATA = ("aws:cdk:path",)
"""Resource metadata that only records where a construct sits in the CDK tree; CloudFormation ignores it.
Asset hashes and asset metadata are kept: a new asset hash means new code or a new bundle is deployed."""


def normalise_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """Drops what CloudFormation ignores for a deployment: construct paths and the CDK analytics resource."""
    out = dict(template)
    resources = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::CDK::Metadata":
            continue
        resource = dict(resource)
        metadata = {k: v for k, v in (resource.get("Metadata") or {}).items() if k not in NON_SEMANTIC_METADATA}
        if metadata:
            resource["Metadata"] = metadata
        else:
            resource.pop("Metadata", None)
        resources[logical_id] = resource
    out["Resources"] = resources
    conditions = {k: v for k, v in (template.get("Conditions") or {}).items() if k != "CDKMetadataAvailable"}
    if conditions:
        out["Conditions"] = conditions
    else:
        out.pop("Conditions", None)
    return out


def template_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human reasons, one per added/removed/modified resource, output, parameter or other section."""
    a, b = normalise_template(old), normalise_template(new)
    reasons = []
    old_res, new_res = a.get("Resources", {}), b.get("Resources", {})
    for logical_id in sorted(set(old_res) | set(new_res)):
        before, after = old_res.get(logical_id), new_res.get(logical_id)
        if before == after:
            continue
        rtype = (after or before or {}).get("Type", "?")
        if before is None:
            reasons.append(f"template: resource {logical_id} ({rtype}) added")
        elif after is None:
            reasons.append(f"template: resource {logical_id} ({rtype}) removed")
        else:
            fields = [p for p, _, _ in _changed_fields(before, after, "")]
            shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
            reasons.append(f"template: resource {logical_id} ({rtype}) modified: {shown}")
    for section in sorted((set(a) | set(b)) - {"Resources"}):
        if a.get(section) != b.get(section):
            fields = [p for p, _, _ in _changed_fields(a.get(section), b.get(section), section)]
            shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
            reasons.append(f"template: {shown} changed")
    return reasons


def plan_templates(
    fast: Plan,
    base_templates: Mapping[str, Mapping[str, Any]],
    head_templates: Mapping[str, Mapping[str, Any]],
) -> Plan:
    """Refines a fast plan with synthesized templates (stack name -> template): a stack present in both
    revisions changes exactly when its normalised template does. The fast reasons stay as the 'why'."""
    envs = []
    for env in fast.environments:

        def refine(stack: str, kind: ChangeKind, reasons: tuple[str, ...]) -> tuple[ChangeKind, tuple[str, ...]]:
            if kind in ("added", "removed"):
                return kind, reasons
            if stack not in base_templates or stack not in head_templates:
                missing = "base" if stack not in base_templates else "head"
                return "changed", (*reasons, f"template: stack {stack} was not synthesized at the {missing} revision")
            diffs = template_differences(base_templates[stack], head_templates[stack])
            if not diffs:
                return "unchanged", ()
            inputs = tuple(r for r in reasons if not r.startswith("template may change"))
            return "changed", (*inputs, *diffs)

        platform_kind, platform_reasons = refine(env.platform_stack, env.platform_kind, env.platform_reasons)
        instances = []
        for i in env.instances:
            kind, reasons = refine(i.stack_name, i.kind, i.reasons)
            instances.append(InstanceChange(i.environment, i.instance, i.stack_name, kind, reasons))
        envs.append(
            EnvironmentPlan(
                environment=env.environment,
                platform_stack=env.platform_stack,
                platform_kind=platform_kind,
                platform_reasons=platform_reasons,
                instances=tuple(instances),
            )
        )
    return Plan(
        base=fast.base,
        head=fast.head,
        mode="templates",
        environments=tuple(envs),
        cdk_code_changed=fast.cdk_code_changed,
    )


# --- presentation ----------------------------------------------------------------------------------------------


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
        lines.append("")
    lines.append("changes: yes" if plan.has_changes else "no changes")
    return "\n".join(lines) + "\n"


def _why(reasons: Sequence[str]) -> str:
    short = [
        "template may change: CDK code changed (see above)" if r.startswith("template may change") else r
        for r in reasons
    ]
    return "; ".join(short)
