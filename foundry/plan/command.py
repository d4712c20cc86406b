"""`python -m foundry plan`: the change plan between a git revision and the working tree.

Exit codes: 0 no change, 1 changes, 2 error (bad revision, invalid manifests at either revision, failed synth).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from foundry.cdk.cli import CdkCli
from foundry.cdk.cloud_assembly import read_templates
from foundry.cdk.process import ProcessRunner, run_blocking, tool_environment
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR
from foundry.manifests.problems import ManifestError
from foundry.plan import snapshot as plan_snapshot
from foundry.plan.changes import plan_fleets, plan_templates
from foundry.plan.git_revision import (
    GitError,
    changed_paths,
    describe,
    export_tree,
    path_exists,
    repo_root,
    resolve_revision,
)
from foundry.plan.model import EMPTY_FLEET, FleetState, Plan, fleet_state
from foundry.plan.render import render_table
from foundry.plan.snapshot import snapshot

EXIT_NO_CHANGES, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
SYNTH_TIMEOUT_S = 1800
SNAPSHOT_TIMEOUT_S = 300


class PlanError(Exception):
    """Anything that stops a plan from being made; the message says what and where."""


def add_plan_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="which instances a change adds, changes, removes or leaves alone, per environment, and why",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument("--base", default="HEAD", metavar="GIT_REV", help="compare against this revision (default: HEAD)")
    p.add_argument(
        "--templates", action="store_true", help="also synthesize both revisions with the CDK CLI and compare templates"
    )
    p.add_argument("--environment", metavar="ENV", help="only this environment")
    p.add_argument("--json", action="store_true", help="machine-readable plan on stdout")
    p.add_argument("--markdown", action="store_true", help="GitHub-flavoured markdown (for a job summary)")
    p.add_argument("--all", action="store_true", help="also list unchanged instances")


def make_plan(agents_dir: Path, base: str, *, templates: bool = False, environment: str | None = None) -> Plan:
    agents_dir = agents_dir.resolve()
    repo = repo_root(agents_dir)
    relative = agents_dir.relative_to(repo).as_posix()
    commit = resolve_revision(repo, base)
    where = f"revision {base} ({commit[:12]})"
    with tempfile.TemporaryDirectory(prefix="foundry-plan-") as tmp:
        base_root = Path(tmp) / "base"
        if path_exists(repo, commit, relative):
            export_tree(repo, commit, base_root)
            # The base revision is read in a subprocess while this process reads the working tree.
            with _BaseSnapshot(base_root, base_root / relative) as pending:
                head_state = _load(agents_dir, f"the working tree ({agents_dir})")
                base_state = pending.result(where)
        else:
            head_state, base_state = _load(agents_dir, f"the working tree ({agents_dir})"), EMPTY_FLEET
    if environment is not None:
        base_state, head_state = _only(base_state, environment), _only(head_state, environment)
    plan = plan_fleets(
        base_state,
        head_state,
        base_label=f"{base} ({describe(repo, commit)})",
        head_label="working tree",
        changed_paths=changed_paths(repo, commit),
    )
    if not templates:
        return plan
    with tempfile.TemporaryDirectory(prefix="foundry-plan-synth-") as tmp:
        out = Path(tmp)
        base_root = out / "base"
        export_tree(repo, commit, base_root)
        base_templates = synthesize(base_root, base_root / relative, out / "base.out", repo, environment)
        head_templates = synthesize(repo, agents_dir, out / "head.out", repo, environment)
    return plan_templates(plan, base_templates, head_templates)


def _load(agents_dir: Path, where: str) -> FleetState:
    """The working tree's fleet, loaded by this code."""
    try:
        return fleet_state(snapshot(agents_dir))
    except (ManifestError, ValueError) as exc:
        raise PlanError(f"the manifests at {where} are invalid:\n{exc}") from exc


class _BaseSnapshot:
    """A past revision's fleet, loaded and bundled by that revision's own `foundry` package (its schema and
    bundle builder) in a subprocess run from the exported tree; by this code if the revision has no `foundry/`."""

    def __init__(self, project: Path, agents_dir: Path) -> None:
        has_code = (project / "foundry" / "__init__.py").is_file()
        code_root = project if has_code else REPO_ROOT
        source = Path(plan_snapshot.__file__).read_text(encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-c", source, str(agents_dir)],
            cwd=code_root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(code_root), "PYTHONDONTWRITEBYTECODE": "1"},
        )

    def __enter__(self) -> _BaseSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def result(self, where: str) -> FleetState:
        try:
            stdout, stderr = self._process.communicate(timeout=SNAPSHOT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise PlanError(f"reading the fleet at {where} took longer than {SNAPSHOT_TIMEOUT_S}s") from exc
        try:
            result = json.loads(stdout)
        except ValueError:
            tail = "\n".join(stderr.decode("utf-8", "replace").strip().splitlines()[-10:])
            raise PlanError(f"could not read the fleet at {where} with that revision's code:\n{tail}") from None
        if "error" in result:
            raise PlanError(f"the manifests at {where} are invalid:\n{result['error']}")
        return fleet_state(result)


def _only(state: FleetState, environment: str) -> FleetState:
    return FleetState(
        instances={k: v for k, v in state.instances.items() if k[0] == environment},
        environments={k: v for k, v in state.environments.items() if k == environment},
        manifest_files={k: v for k, v in state.manifest_files.items() if k == environment},
        pricing=state.pricing,
    )


TOOLS_ROOT = REPO_ROOT
"""The checkout whose `.venv` and `node_modules` (Python, Node, the pinned CDK CLI) run every synth."""


def synthesize(
    project: Path, agents_dir: Path, out: Path, context_from: Path, environment: str | None = None
) -> dict[str, dict[str, Any]]:
    """Runs `cdk synth` for the app in `project` into `out` and returns stack name -> template.
    A revision without a CDK app (no cdk.json) has no stacks."""
    if not (project / "cdk.json").is_file():
        return {}
    tools_from = TOOLS_ROOT
    context_file = project / "cdk.context.json"
    if not context_file.exists() and (context_from / "cdk.context.json").is_file():
        # Lookups (AZs, imported VPCs) are facts about the accounts, not code: a revision that did not commit
        # them yet is synthesized with today's, so both sides compare templates, not lookups (offline too).
        shutil.copyfile(context_from / "cdk.context.json", context_file)
    cdk = CdkCli.installed(tools_from)
    if cdk is None:
        raise PlanError("the CDK CLI is not installed (run ./dev setup)")
    context = {"agentsDir": str(agents_dir)}
    if environment is not None:
        context["environment"] = environment
    runner = ProcessRunner(cwd=project, env=tool_environment(tools_from))
    done = run_blocking(runner, cdk.synth_app(context=context, output=out), timeout_seconds=SYNTH_TIMEOUT_S)
    if done.timed_out:
        raise PlanError(f"`cdk synth` in {project} took longer than {SYNTH_TIMEOUT_S}s")
    if done.exit_code != 0:
        tail = "\n".join("\n".join(done.lines).strip().splitlines()[-20:])
        raise PlanError(f"`cdk synth` failed in {project}:\n{tail}")
    return read_templates(out)


def run_plan(args: argparse.Namespace) -> int:
    try:
        plan = make_plan(args.agents_dir, args.base, templates=args.templates, environment=args.environment)
    except (GitError, PlanError, ValueError, OSError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({"ok": True, **plan.as_dict()}, indent=2))
    else:
        sys.stdout.write(render_table(plan, markdown=args.markdown, show_unchanged=args.all))
    return EXIT_CHANGES if plan.has_changes else EXIT_NO_CHANGES
