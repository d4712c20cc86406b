"""A local-AWS rollout of a 20-instance dev fleet, before and after synth-once: `cdk` runs and CPU seconds.

"Before" is the code at a git revision that synthesized every instance again before deploying it (default
7c27df9, the last one); "after" is this checkout (one synth, then every deploy from that assembly). Each is exported
with `git archive` into its own folder sharing this checkout's .venv and node_modules, except that its `cdk` is a
shim that records each run's subcommand; each runs against its own fresh moto server (`foundry.local`) whose
platform stack is deployed first and not counted. CPU seconds are the rollout process's and every process it
reaped (cdk, node, the app, jsii; not the moto server), user plus system.

    .venv/bin/python benchmarks/rollout_assembly_benchmark.py [--before REV] [--instances 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.synth_benchmark import load_average  # noqa: E402
from foundry.cdk.process import tool_environment  # noqa: E402
from foundry.local.aws import LocalAws, default_runtime_image  # noqa: E402
from foundry.local.server import aws_environment  # noqa: E402
from tests.foundry.manifest_edits import add_instance  # noqa: E402

ENVIRONMENT = "dev"


def export(revision: str, dest: Path, calls: Path) -> Path:
    """The tree at `revision` in `dest`, with this checkout's .venv and node_modules, and a recording `cdk`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout
    dest.mkdir(parents=True)
    tar_path = dest.parent / f"{dest.name}.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")
    real_modules = (REPO_ROOT / "node_modules").resolve()
    modules = dest / "node_modules"
    (modules / ".bin").mkdir(parents=True)
    for entry in real_modules.iterdir():
        if entry.name != ".bin":
            (modules / entry.name).symlink_to(entry)
    for entry in (real_modules / ".bin").iterdir():
        if entry.name != "cdk":
            (modules / ".bin" / entry.name).symlink_to(entry)
    shim = modules / ".bin" / "cdk"
    shim.write_text(f'#!/usr/bin/env bash\necho "$1" >> "{calls}"\nexec "{real_modules / ".bin" / "cdk"}" "$@"\n')
    shim.chmod(0o755)
    return dest


def dev_fleet(target: Path, count: int) -> Path:
    """The example tree with its dev environment grown to `count` instances (copies of acme/retail/dev), placed.
    (The generated fleets' platform settings do not deploy on moto; the example dev environment does.)"""
    shutil.copytree(REPO_ROOT / "agents", target, ignore=shutil.ignore_patterns("schemas"))
    for index in range(count - 2):
        add_instance(target, ENVIRONMENT, "bench", "fleet", f"i{index:03d}", like=("acme", "retail", "dev"))
    place = [sys.executable, "-m", "foundry", "place", "--agents-dir", str(target), "--environment", ENVIRONMENT]
    subprocess.run(place, cwd=REPO_ROOT, check=True, capture_output=True)
    return target


def one_rollout(tree: Path, agents: Path, work: Path, calls: Path) -> dict[str, object]:
    local = LocalAws(state_dir=work / "local-aws", agents_dir=agents, repo_root=tree, cdk_timeout_s=1800)
    try:
        state = local.up(environment=ENVIRONMENT)
        local.deploy(platform_only=True)
        calls.write_text("")
        argv = [sys.executable, "-m", "foundry", "rollout", "--environment", ENVIRONMENT, "--agents-dir", str(agents)]
        argv += ["--health", "records", "--cdk-method", "direct", "--bake-seconds", "0", "--concurrency", "4"]
        argv += ["--runtime-image", default_runtime_image(state.account, state.region)]
        argv += ["--state-dir", str(work / "rollouts"), "--json"]
        env = tool_environment(tree, aws_environment(state))
        started, cpu_before = time.perf_counter(), cpu_of_children()
        process = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = process.communicate(timeout=7200)
        wall, cpu = time.perf_counter() - started, cpu_of_children() - cpu_before
        report = json.loads(stdout) if stdout.strip() else {"error": stderr.decode()[-2000:]}
    finally:
        local.down()
    runs = collections.Counter(line for line in calls.read_text().split() if line)
    return {"wall": wall, "cpu": cpu, "report": report, "cdk_runs": dict(runs)}


def cpu_of_children() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="7c27df9", help="the revision that synthesized per instance")
    parser.add_argument("--instances", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cpus, {platform.machine()}, load {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-", dir=REPO_ROOT / "build") as tmp:
        root = Path(tmp)
        agents = dev_fleet(root / "agents", args.instances)
        # "after" is the committed HEAD of this checkout (commit first).
        for label, revision in (("before", args.before), ("after", "HEAD")):
            calls = root / f"{label}.calls"
            tree = export(revision, root / label, calls)
            result = one_rollout(tree, agents, root / f"{label}-work", calls)
            report = result["report"]
            assert isinstance(report, dict)
            totals = report.get("totals", report)
            print(
                f"{label:<6} ({revision[:12]}): status {report.get('status')}, {totals}; "
                f"cdk runs {result['cdk_runs']}; "
                f"wall {result['wall']:.0f} s; CPU {result['cpu']:.0f} s (the rollout and everything it ran); "
                f"load {load_average()}",
                flush=True,
            )
            shutil.rmtree(root / label, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
