"""The change plan: which instances a change adds, changes, removes or leaves alone, per environment, and why.

Pure: compares two fleets (already loaded) and, for `--templates`, two sets of synthesized templates. Git and the
CDK CLI live in `foundry.plan.git_revision` and `foundry.plan.command`; nothing here touches a file or a process.

The fast path needs no CDK: an instance's stack can only change when its inputs do, and its inputs are the
instance manifest, its bundle files and its environment's platform settings, plus the CDK code itself. When that
code changed, the fast path cannot know a template's fate and says so; `--templates` then answers exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundry.manifests.naming import platform_stack_name
from foundry.plan.compute_cost import cost_change
from foundry.plan.model import ChangeKind, EnvironmentPlan, FleetState, InstanceChange, InstanceState, Plan

CDK_CODE_PATHS = ("app.py", "cdk.json", "stacks/", "constructs/", "runtime/", "foundry/")
"""Paths whose change may alter any synthesized template (the app, its constructs, the runtime image, the bundle
builder), so the fast path cannot rule out a template change for any instance."""

MAX_FIELDS_SHOWN = 6

DEPLOY_ONLY_SETTINGS = ("rollout",)
"""Environment settings that steer how a change is deployed (`foundry rollout`), not what is deployed: no
template reads them, so changing them changes no stack."""


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
    plans = [
        _plan_environment(base, head, env, code_reason=code_reason, agents_label=agents_label)
        for env in sorted(set(base.environments) | set(head.environments))
    ]
    return Plan(base=base_label, head=head_label, mode="fast", environments=tuple(plans), cdk_code_changed=code_changed)


@dataclass(frozen=True)
class _PlatformChange:
    """How an environment's platform stack changes, and which of its settings (that templates read) did."""

    kind: ChangeKind
    reasons: list[str]
    fields: list[tuple[str, Any, Any]]


def _plan_environment(
    base: FleetState, head: FleetState, env: str, *, code_reason: str | None, agents_label: str
) -> EnvironmentPlan:
    """One environment: its platform stack, then each instance in sorted order."""
    platform = _platform_change(base, head, env, code_reason=code_reason, agents_label=agents_label)
    instances = []
    for key in sorted(k for k in set(base.instances) | set(head.instances) if k[0] == env):
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
            instances.append(
                _compare_instance(env, old, new, platform, code_reason=code_reason, agents_label=agents_label)
            )
    return EnvironmentPlan(
        environment=env,
        platform_stack=platform_stack_name(env),
        platform_kind=platform.kind,
        platform_reasons=tuple(platform.reasons),
        instances=tuple(instances),
        compute_cost=cost_change(base, head, env),
    )


def _platform_change(
    base: FleetState, head: FleetState, env: str, *, code_reason: str | None, agents_label: str
) -> _PlatformChange:
    """An environment added or removed, its settings changed (those a template reads), or its load balancer
    shards; else, when CDK code changed, a change the fast path cannot rule out."""
    old_env, new_env = _template_settings(base.environments.get(env)), _template_settings(head.environments.get(env))
    fields = _changed_fields(old_env or {}, new_env or {}, f"spec.environments.{env}")
    platform_file = f"{agents_label}/platform.yaml"
    kind: ChangeKind
    if old_env is None:
        kind, reasons = "added", [f"new environment {env} ({head.manifest_files.get(env, platform_file)})"]
    elif new_env is None:
        kind, reasons = "removed", [f"environment {env} is gone ({base.manifest_files.get(env, platform_file)})"]
    else:
        reasons = [f"{platform_file}: {_fields_text(fields)}"] if fields else []
        old_shards, new_shards = _shards(base, env), _shards(head, env)
        if old_shards != new_shards:
            reasons.append(f"{agents_label}/placement/{env}.yaml: load balancer shards {old_shards} -> {new_shards}")
        old_orgs, new_orgs = _pool_organizations(base, env), _pool_organizations(head, env)
        if old_orgs != new_orgs:
            manifest = head.manifest_files.get(env, platform_file)
            reasons.append(f"{manifest}: Cognito app clients for organizations {old_orgs} -> {new_orgs}")
        kind = "changed" if reasons else "unchanged"
    if code_reason and kind == "unchanged":
        kind, reasons = "changed", [code_reason]
    return _PlatformChange(kind=kind, reasons=reasons, fields=fields)


def _compare_instance(
    env: str,
    old: InstanceState,
    new: InstanceState,
    platform: _PlatformChange,
    *,
    code_reason: str | None,
    agents_label: str,
) -> InstanceChange:
    """An instance in both revisions: changed when its own inputs or its environment's settings did (or, with
    nothing else to say, when CDK code changed)."""
    reasons = _instance_reasons(old, new, agents_label)
    if platform.kind == "changed" and platform.fields:
        reasons.append(f"{agents_label}/platform.yaml: environment {env} settings changed; its template may change")
    if code_reason and not reasons:
        reasons.append(code_reason)
    kind: ChangeKind = "changed" if reasons else "unchanged"
    return InstanceChange(env, new.selector, new.stack_name, kind, tuple(reasons))


def _template_settings(settings: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if k not in DEPLOY_ONLY_SETTINGS}


def _shards(state: FleetState, env: str) -> list[int]:
    return sorted({i.slot[0] for (e, _), i in state.instances.items() if e == env and i.slot is not None})


def _pool_organizations(state: FleetState, env: str) -> list[str]:
    """The organizations that get an app client of the environment's platform Cognito pool (one per organization
    of its manifest without an issuer of its own; none when the environment names an issuer or turns auth off)."""
    auth = (state.environments.get(env) or {}).get("auth") or {}
    if auth.get("mode", "jwt") != "jwt" or auth.get("issuer") is not None:
        return []
    own = set(auth.get("organizations") or {})
    return sorted({selector.split("/")[0] for (e, selector) in state.instances if e == env} - own)


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
                compute_cost=env.compute_cost,
            )
        )
    return Plan(
        base=fast.base,
        head=fast.head,
        mode="templates",
        environments=tuple(envs),
        cdk_code_changed=fast.cdk_code_changed,
    )
