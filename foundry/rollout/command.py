"""`python -m foundry rollout`: deploy an environment's changed instances in waves, each baked healthy first.

    rollout --environment ENV [--base REV | --plan PLAN.json]   what the change plan names (neither: every instance)
    rollout ... --simulate [--simulate-fail ORG/DOMAIN/INSTANCE]  the same scheduler in virtual time; changes nothing
                                                                  (and keeps no state unless --simulate-keep-state)
    rollout ... --assembly DIR                                     deploy exactly what DIR (`foundry synth`) holds
    rollout ... --offboard-removed                                 then offboard every instance whose stack remains
                                                                   but which left the manifests (export, then delete)

Instances whose stacks remain after they left the manifests are reported and left alone, unless --offboard-removed:
then, once every wave is done, each is offboarded as `python -m foundry offboard` does (its data exported to the
environment's exports bucket, then its stack deleted), under its deploy lock held by the rollout.

Rollout state and the instances' deploy locks live in the environment's deploy state (FOUNDRY_STATE_URL or
--state-url: `dynamodb://` is the platform stack's table, shared by every deployer; unset, a SQLite file
build/foundry-state.db in the agents tree's repository). A halted rollout resumes from any machine sharing it.

Every instance is deployed from one cloud assembly: DIR, or (without --assembly) the one the rollout synthesizes
once, before its canary, into build/rollout-assemblies/ENV-CHANGE_ID of the agents tree's repository. The state
records the assembly's digest and the agents tree's git revision; a resumed run deploys from that assembly again,
and refuses if it is missing or was altered. Once the rollout completes, the folder it synthesized is removed (never
DIR; that revision synthesizes it again); a rollout that synthesizes also removes the environment's folders there
that no unfinished rollout uses (abandoned, crashed). The report's notes name what was removed.

Exit codes: 0 every instance deployed and baked, 1 the rollout halted at a failing gate (the report says where;
run the same command again to resume), 2 error (bad arguments, invalid manifests, another change's rollout is
unfinished).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.deploy.arguments import ToolArgumentError, check_runtime_image
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.manifests.naming import parse_selector
from foundry.manifests.platform_settings import PROD_ENVIRONMENTS, RolloutPolicy
from foundry.manifests.problems import ManifestError
from foundry.manifests.resolve import ResolvedInstance
from foundry.plan.command import PlanError, make_plan
from foundry.plan.git_revision import GitError
from foundry.rollout.assembly import (
    RolloutAssemblyError,
    given_assembly,
    own_assembly_dir,
    record,
    recorded_assembly,
    synthesize_change,
)
from foundry.rollout.assembly_pruning import prune_unreferenced, release_own_assembly
from foundry.rollout.aws_fleet import RECORDS_SKIPPED, AwsFleet
from foundry.rollout.removed import RemovedInstances
from foundry.rollout.report import LiveView, duration_text, markdown, report, summary_text
from foundry.rollout.scheduler import Rollout, Scheduler, new_rollout
from foundry.rollout.simulator import DEFAULT_DEPLOY_SECONDS, DEFAULT_JITTER, SimulatedFleet, run_in_virtual_time
from foundry.rollout.state import (
    RolloutConflictError,
    RolloutStore,
    change_id,
    resume_or_start,
    rollout_holder,
)
from foundry.rollout.waves import plan_waves
from foundry.state.leases import LeaseLostError
from foundry.state.locations import STATE_URL_ENV, repository_of
from foundry.state.memory_store import MemoryStateStore
from foundry.state.store import StateStoreError
from foundry.state.stores import StateStores
from foundry.synth.assembly_set import AssemblySet, AssemblySetError

EXIT_COMPLETE, EXIT_HALTED, EXIT_ERROR = 0, 1, 2
POLICY_OVERRIDES = ("canary_count", "growth_factor", "max_wave_size", "concurrency", "bake_seconds")
NO_PROBE_REASON = "--no-instance-probe: the instance's own status tool was not called"


class RolloutError(Exception):
    """The rollout cannot start; the message says why and what to do."""


def add_rollout_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rollout",
        help="deploy an environment's changed instances in waves (canary first), each wave baked healthy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--environment", required=True, metavar="ENV")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--base", metavar="GIT_REV", help="deploy what changed since this revision")
    source.add_argument("--plan", type=Path, metavar="PLAN.json", help="deploy what `plan --json` wrote")
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    p.add_argument("--markdown", action="store_true", help="the report as markdown on stdout (a CI job summary)")
    p.add_argument("--abandon", action="store_true", help="start even if another change's rollout is unfinished")
    p.add_argument(
        "--state-url",
        metavar="URL",
        help=f"where rollout state and deploy locks live (default: ${STATE_URL_ENV}, else build/foundry-state.db in "
        "the agents tree's repository): sqlite:///PATH, dynamodb:// (the platform's table) or dynamodb://TABLE",
    )
    p.add_argument("--runtime-image", metavar="URI", help="a prebuilt runtime image instead of building one")
    p.add_argument(
        "--assembly",
        type=Path,
        metavar="DIR",
        help="deploy from this cloud assembly (`python -m foundry synth --out DIR`, sharded or not, or a `cdk synth` "
        "output) instead of synthesizing; every stack the rollout deploys must be in it",
    )
    p.add_argument(
        "--no-instance-probe",
        action="store_true",
        help="judge health without calling each instance's own status tool (the local AWS runs no container)",
    )
    p.add_argument(
        "--health",
        choices=["full", "records"],
        default="full",
        help="full (default): what foundry.get_instance_status reads plus the instance probe; records: for an "
        "emulated AWS (moto) where no container runs: stack complete and ECS service ACTIVE only",
    )
    p.add_argument("--cdk-method", choices=["change-set", "direct"], default="change-set", help="cdk deploy --method")
    p.add_argument(
        "--offboard-removed",
        action="store_true",
        help="after the rollout completes, offboard every instance of the environment whose stack exists but which "
        "is no longer in the manifests (export its data, then delete its stack); without it they are only reported",
    )
    policy = p.add_argument_group("policy overrides for this run (default: the environment's rollout policy)")
    policy.add_argument("--canary-count", type=int, metavar="N")
    policy.add_argument("--growth-factor", type=float, metavar="F")
    policy.add_argument("--max-wave-size", type=int, metavar="N")
    policy.add_argument("--concurrency", type=int, metavar="N")
    policy.add_argument("--bake-seconds", type=int, metavar="S")
    sim = p.add_argument_group("simulation (virtual time; changes nothing in AWS)")
    sim.add_argument("--simulate", action="store_true", help="run the scheduler against a simulated AWS")
    sim.add_argument("--simulate-deploy-seconds", type=float, default=DEFAULT_DEPLOY_SECONDS, metavar="S")
    sim.add_argument("--simulate-jitter", type=float, default=DEFAULT_JITTER, metavar="FRACTION")
    sim.add_argument("--simulate-fail", action="append", default=[], metavar="ORG/DOMAIN/INSTANCE")
    sim.add_argument("--simulate-unhealthy", action="append", default=[], metavar="ORG/DOMAIN/INSTANCE")
    sim.add_argument(
        "--simulate-keep-state",
        action="store_true",
        help="remember the simulation (apart from real rollouts) so that the next --simulate resumes it",
    )
    sim.add_argument(
        "--simulate-instances", type=int, metavar="N", help="simulate N synthetic instances (sim/fleet/iNNNN)"
    )


# --- what to deploy --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    selectors: list[str]
    stacks: dict[str, str]
    fingerprints: dict[str, str]
    change: str
    notes: list[str]
    resolved: dict[str, ResolvedInstance]
    assemblies: AssemblySet | None = None
    """`--assembly DIR`, read and checked."""


def _fingerprint(instance: ResolvedInstance) -> str:
    digest = hashlib.sha256(instance.manifest.model_dump_json().encode())
    for path, data in sorted(instance.spec_files.items()):
        digest.update(path.encode() + b"\0" + data)
    return digest.hexdigest()[:16]


def _plan_section(
    plan: Mapping[str, Any], environment: str, source: str, *, simulated: bool
) -> tuple[list[str], list[str], str]:
    """(instances to deploy, notes, change label) for `environment` from a plan document. A real rollout reports
    removed instances itself, from the stacks it finds once it is done (_removed_instances: left, or offboarded with
    --offboard-removed); only a simulation repeats the plan's list of them."""
    if not isinstance(plan.get("environments"), list):
        raise RolloutError(f"{source} is not a change plan (`python -m foundry plan --json`): no 'environments' list")
    label = f"plan {plan.get('base', '?')} -> {plan.get('head', '?')}"
    for section in plan["environments"]:
        if section.get("environment") != environment:
            continue
        names = [i["instance"] for i in section.get("instances", []) if i.get("kind") in ("added", "changed")]
        notes = []
        platform = section.get("platform", {})
        if platform.get("kind") in ("added", "changed"):
            notes.append(
                f"the plan also changes the platform stack {platform.get('stack')}: it must be deployed before "
                "the instances (the deploy workflow does so); a rollout deploys instance stacks only"
            )
        if simulated and section.get("removed_stacks"):
            notes.append(f"removed instances are not touched: {' '.join(section['removed_stacks'])}")
        return names, notes, label
    return [], [f"the plan has no changes for {environment}"], label


def select_targets(args: argparse.Namespace) -> Targets:
    if args.simulate and args.simulate_instances is not None:
        if args.simulate_instances < 1:
            raise RolloutError("--simulate-instances must be at least 1")
        from foundry.rollout.simulator import simulated_selectors

        names = simulated_selectors(args.simulate_instances)
        return Targets(
            selectors=names,
            stacks={n: f"af-{args.environment}-{n.replace('/', '-')}" for n in names},
            fingerprints=dict.fromkeys(names, "synthetic"),
            change=f"{len(names)} synthetic instances",
            notes=[],
            resolved={},
        )
    fleet = load_fleet(args.agents_dir, environment=args.environment)
    by_selector = {i.key.selector: i for i in fleet.instances}
    notes: list[str] = []
    given = given_assembly(args.assembly) if args.assembly is not None else None
    if args.plan is not None:
        try:
            document = json.loads(args.plan.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RolloutError(f"cannot read the plan {args.plan}: {exc}") from exc
        names, notes, change = _plan_section(document, args.environment, str(args.plan), simulated=args.simulate)
    elif args.base is not None:
        plan = make_plan(args.agents_dir, args.base, environment=args.environment).as_dict()
        names, notes, change = _plan_section(
            plan, args.environment, f"the plan since {args.base}", simulated=args.simulate
        )
    elif given is not None:
        held = given.stacks
        names = sorted(s for s, i in by_selector.items() if i.manifest.spec.stack_name in held)
        change = f"every instance of {args.environment} in {given.root}"
    else:
        names, change = sorted(by_selector), "every instance"
    missing = [n for n in names if n not in by_selector]
    if missing:
        raise RolloutError(
            f"the plan names instances that {args.agents_dir} does not define in {args.environment}: "
            f"{', '.join(missing)}; make the plan from this working tree"
        )
    chosen = {n: by_selector[n] for n in sorted(names)}
    stacks = {n: i.manifest.spec.stack_name for n, i in chosen.items()}
    if given is not None:
        given.require(sorted(stacks.values()))
        # The change is what the assembly holds, not what the tree holds now.
        fingerprints = dict.fromkeys(chosen, given.digest)
    else:
        fingerprints = {n: _fingerprint(i) for n, i in chosen.items()}
    return Targets(
        selectors=sorted(chosen),
        stacks=stacks,
        fingerprints=fingerprints,
        change=change,
        notes=notes,
        resolved=chosen,
        assemblies=given,
    )


def effective_policy(args: argparse.Namespace, base: RolloutPolicy) -> RolloutPolicy:
    """The environment's policy with this run's overrides, validated like the file (prod keeps its canary)."""
    data = base.model_dump(mode="json")
    if args.canary_count is not None:
        data["canary"] = {
            "instances": data["canary"]["instances"] if args.canary_count else [],
            "count": args.canary_count,
        }
    for name in POLICY_OVERRIDES[1:]:
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    try:
        policy = RolloutPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise RolloutError(f"invalid policy override: {problems}") from exc
    if args.environment in PROD_ENVIRONMENTS and not policy.canary.enabled:
        raise RolloutError(f"{args.environment} is a production environment: a rollout there needs a canary wave")
    return policy


# --- running ----------------------------------------------------------------------------------------------------


def run_rollout(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        return _run(args, err)
    except (
        RolloutError,
        RolloutConflictError,
        PlanError,
        GitError,
        ValueError,
        LeaseLostError,
        StateStoreError,
        RolloutAssemblyError,
        AssemblySetError,
    ) as exc:
        return _error(args, str(exc))
    except ManifestError as exc:
        return _error(args, f"the manifests are invalid:\n{exc}")


def _error(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _run(args: argparse.Namespace, err: Console) -> int:
    for name in [*args.simulate_fail, *args.simulate_unhealthy]:
        parse_selector(name)
    simulate_only = args.simulate_fail or args.simulate_unhealthy or args.simulate_instances or args.simulate_keep_state
    if simulate_only and not args.simulate:
        raise RolloutError(
            "--simulate-fail, --simulate-unhealthy, --simulate-instances and --simulate-keep-state need --simulate"
        )
    if args.offboard_removed and args.simulate:
        raise RolloutError("--offboard-removed deletes stacks; --simulate changes nothing: give one or the other")
    if args.assembly is not None and args.simulate:
        raise RolloutError("--assembly deploys a cloud assembly; --simulate deploys nothing: give one or the other")
    if args.assembly is not None and args.runtime_image is not None:
        raise RolloutError(
            "--runtime-image with --assembly: the assembly already fixes the runtime image; synthesize it with "
            "`python -m foundry synth --runtime-image URI`"
        )
    fleet = load_fleet(args.agents_dir, environment=args.environment)
    settings = fleet.tree.platform.model.spec.environments[args.environment]
    policy = effective_policy(args, settings.rollout)
    if args.runtime_image is not None:
        # The same rule as the Foundry MCP server's deploy: the image runs with every tenant's task role and secrets.
        try:
            check_runtime_image(args.runtime_image, args.environment, settings)
        except ToolArgumentError as exc:
            raise RolloutError("--runtime-image" + str(exc).removeprefix("runtime_image")) from exc
    targets = select_targets(args)
    unknown = sorted(set(args.simulate_fail + args.simulate_unhealthy) - set(targets.selectors))
    if unknown:
        raise RolloutError(
            f"--simulate-fail/--simulate-unhealthy name instances this rollout does not deploy: {unknown}"
        )
    stores = StateStores.configured(args.agents_dir, _clients(), url=args.state_url)
    if args.simulate and not args.simulate_keep_state:
        store = RolloutStore(MemoryStateStore(), simulated=True)  # a simulation keeps nothing unless asked
    else:
        store = RolloutStore(stores.open(args.environment, settings.region), simulated=args.simulate)
    fresh = new_rollout(
        environment=args.environment,
        change_id=change_id(args.environment, targets.fingerprints, args.runtime_image),
        change=targets.change,
        policy=policy,
        waves=plan_waves(targets.selectors, policy),
        stacks=targets.stacks,
        simulated=args.simulate,
    )
    fresh.notes.extend(targets.notes)
    if args.health == "records" and not args.simulate:
        fresh.notes.append(RECORDS_SKIPPED)
    elif args.no_instance_probe and not args.simulate:
        fresh.notes.append(f"health without the instance probe ({NO_PROBE_REASON})")
    holder = rollout_holder(fresh.change_id, args.environment)
    closing = None if args.simulate else _removed_instances(args, fleet, settings.region, stores, holder)
    with store.hold(args.environment, holder):
        return _start(args, err, store, fresh, policy, fleet, targets, stores, holder, closing)


def _removed_instances(
    args: argparse.Namespace, fleet: Any, region: str, stores: StateStores, holder: str
) -> Callable[[Rollout], bool]:
    """What the rollout does with instances whose stacks remain after they left the manifests, once it is done:
    reports them, or (--offboard-removed, and only after a complete rollout) offboards them. False: one failed."""
    from foundry.deploy.locks import InstanceLocks
    from foundry.deploy.offboard import Offboarder

    clients = _clients()

    def closing(rollout: Rollout) -> bool:
        listed = {i.key.selector for i in fleet.instances}
        removed = RemovedInstances.find(clients, args.environment, region, listed)
        if not args.offboard_removed or not removed.stacks:
            note = removed.left_note()
            rollout.notes.extend([note] if note else [])
            return not args.offboard_removed or removed.unreadable is None
        if rollout.status != "complete":
            rollout.notes.append(
                f"removed instances were not offboarded ({', '.join(removed.stacks)}): the rollout did not complete; "
                "run it again to resume, and they are offboarded once it has"
            )
            return True
        offboarder = Offboarder(clients=clients, locks=InstanceLocks(stores, holder=holder))
        notes, ok = removed.offboard(offboarder)
        rollout.notes.extend(notes)
        return ok

    return closing


def _start(
    args: argparse.Namespace,
    err: Console,
    store: RolloutStore,
    fresh: Rollout,
    policy: RolloutPolicy,
    fleet: Any,
    targets: Targets,
    stores: StateStores,
    holder: str,
    closing: Callable[[Rollout], bool] | None = None,
) -> int:
    rollout, how = resume_or_start(store, fresh, abandon=args.abandon)
    quiet = args.json or args.markdown
    if not quiet:
        err.print(f"{how}: {rollout.environment}, {rollout.change} ({rollout.change_id}), {len(rollout.waves)} waves")
    if rollout.finished:
        _release_assembly(store, rollout)  # one an earlier run could not remove
        return _finish(args, rollout, closing=closing)
    if not rollout.instances:
        rollout.status = "complete"
        store.save(rollout)
        return _finish(args, rollout, closing=closing)
    runner = ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))
    assemblies = None if args.simulate else _assembly(args, err, store, rollout, targets, runner)

    def checkpoint(current: Rollout, boundary: bool) -> None:
        if boundary or not args.simulate:
            store.save(current)

    if args.simulate:
        fleet_ops = SimulatedFleet(
            deploy_seconds=args.simulate_deploy_seconds,
            jitter=args.simulate_jitter,
            fail=frozenset(args.simulate_fail),
            unhealthy=frozenset(args.simulate_unhealthy),
        )
        scheduler = Scheduler(policy=policy, ops=fleet_ops, checkpoint=checkpoint)

        async def simulate() -> Rollout:
            return await scheduler.run(rollout)

        run_in_virtual_time(simulate)
    else:
        aws = _aws_fleet(args, fleet, targets, policy, stores, holder, runner, assemblies)
        scheduler = Scheduler(policy=policy, ops=aws, checkpoint=checkpoint)
        try:
            if not quiet and err.is_terminal:
                with LiveView(scheduler, rollout, err):
                    asyncio.run(scheduler.run(rollout))
            else:
                scheduler.on_change = _plain_progress(err) if not quiet else None
                asyncio.run(scheduler.run(rollout))
        finally:
            aws.release_all()
    _release_assembly(store, rollout)
    return _finish(args, rollout, runner.runs, closing=closing)


def _release_assembly(store: RolloutStore, rollout: Rollout) -> None:
    """A complete rollout removes the assembly it synthesized itself; the note says so in the report and the state
    (a halted one keeps it: its resume deploys from it)."""
    note = release_own_assembly(rollout)
    if note is None:
        return
    rollout.notes.append(note)
    try:
        store.save(rollout)
    except (LeaseLostError, StateStoreError) as exc:
        rollout.notes.append(f"the rollout's state does not keep the note above: {exc}")


def _assembly(
    args: argparse.Namespace,
    err: Console,
    store: RolloutStore,
    rollout: Rollout,
    targets: Targets,
    runner: ProcessRunner,
) -> AssemblySet:
    """The assembly this run deploys from: the recorded one when resuming (checked unchanged; or `--assembly` when it
    has the recorded digest), else `--assembly`, else the change synthesized once now; a new one is recorded in the
    state before anything is deployed. Once its own is recorded, a synthesizing rollout prunes the folders of its
    environment that no unfinished rollout uses (the state it just wrote is the environment's only record)."""
    if rollout.assembly is not None:
        given = targets.assemblies
        if given is not None and given.digest == rollout.assembly_digest and given.root != Path(rollout.assembly):
            # The same assembly, byte for byte, in another folder (a CI artifact downloaded on another runner):
            # given, so never removed by the rollout.
            rollout.assembly, rollout.assembly_synthesized = str(given.root), False
            store.save(rollout)
            return given
        return recorded_assembly(rollout)
    assemblies = targets.assemblies
    out = own_assembly_dir(repository_of(args.agents_dir), rollout.environment, rollout.change_id)
    synthesized = assemblies is None
    if assemblies is None:
        if not (args.json or args.markdown):
            err.print(f"synthesizing the change once into {out}")
        assemblies = synthesize_change(
            out=out,
            agents_dir=args.agents_dir,
            environment=rollout.environment,
            selectors=list(rollout.instances),
            instance_stacks=[p.stack for p in rollout.instances.values()],
            runtime_image=args.runtime_image,
            cdk=CdkCli.of_repo(REPO_ROOT),
            runner=runner,
        )
    record(rollout, assemblies, args.agents_dir, synthesized=synthesized)
    store.save(rollout)
    if synthesized:
        pruned = prune_unreferenced(out.parent, rollout.environment, store)
        if pruned:
            rollout.notes.extend(pruned)
            store.save(rollout)
    return assemblies


def _plain_progress(err: Console) -> Any:
    """Without a terminal (CI logs): one line per finished instance and per wave phase."""
    seen: dict[str, str] = {}

    def on_change(rollout: Rollout) -> None:
        for selector, progress in rollout.instances.items():
            if seen.get(selector) != progress.state and progress.state not in ("not_started", "baking"):
                seen[selector] = progress.state
                err.print(
                    f"[{duration_text(rollout.elapsed_seconds)}] wave {progress.wave} {selector}: {progress.state}"
                )

    return on_change


def _clients() -> Any:
    from foundry.aws.clients import boto3_clients

    return boto3_clients


def _aws_fleet(
    args: argparse.Namespace,
    fleet: Any,
    targets: Targets,
    policy: RolloutPolicy,
    stores: StateStores,
    holder: str,
    runner: ProcessRunner,
    assemblies: AssemblySet | None,
) -> AwsFleet:
    from foundry.aws.clients import boto3_clients
    from foundry.aws.cloudformation import stack_events_failure
    from foundry.aws.instance_status import probe_instance_mcp
    from foundry.deploy.deployer import Deployer
    from foundry.deploy.locks import InstanceLocks

    deployer = Deployer(
        repo_root=REPO_ROOT,
        runner=runner,
        locks=InstanceLocks(stores, holder=holder),
        method=args.cdk_method,
        failure_lookup=stack_events_failure(boto3_clients),
        clients=boto3_clients,
    )
    return AwsFleet(
        instances=targets.resolved,
        deployer=deployer,
        agents_dir=args.agents_dir.resolve(),
        region=fleet.tree.platform.model.spec.environments[args.environment].region,
        clients=boto3_clients,
        probe=None if args.no_instance_probe or args.health == "records" else probe_instance_mcp,
        probe_skipped=NO_PROBE_REASON if args.no_instance_probe else None,
        scope=args.health,
        runtime_image=args.runtime_image,
        timeout_seconds=policy.deploy_timeout_seconds,
        holder=holder,
        assemblies=assemblies,
    )


def _finish(
    args: argparse.Namespace,
    rollout: Rollout,
    cdk_runs: Mapping[str, int] | None = None,
    *,
    closing: Callable[[Rollout], bool] | None = None,
) -> int:
    """The report; `cdk_runs`: the `cdk` commands this run started, by subcommand (a rollout synthesizes at most
    once, and only when it was given no assembly); `closing`: what is done with removed instances (its notes join
    the report's; False makes the exit code 1)."""
    closed = closing(rollout) if closing is not None else True
    runs = dict(sorted((cdk_runs or {}).items()))
    if args.json:
        print(json.dumps({**report(rollout), "cdk_runs": runs}, indent=2))
    elif args.markdown:
        sys.stdout.write(markdown(rollout))
    else:
        sys.stdout.write(summary_text(rollout))
        if runs:
            print("cdk runs this run: " + ", ".join(f"{name} {n}" for name, n in runs.items()))
    return EXIT_COMPLETE if rollout.status == "complete" and closed else EXIT_HALTED
