"""Synth benchmark: wall time and peak memory of the CDK app over generated fleets of 1, 100 and 1,000 instances,
and of synthesizing one selected instance out of 1,000.

Each case runs the app exactly as `cdk synth` runs it (`python -O app.py` with CDK_OUTDIR and CDK_CONTEXT_JSON
holding cdk.json's context plus the context the CLI adds by default: path metadata, asset metadata, version
reporting), in a fresh process, without the CLI's own start-up; peak memory is the largest total RSS of the app's
process tree (Python plus the jsii Node process), sampled every 20 ms. The median of `--runs` runs is reported.
`load_fleet` (the foundation's manifest loading, not the CDK part) is timed in a separate fresh process and shown
apart, so that both parts can be tracked.

    .venv/bin/python benchmarks/synth_benchmark.py [--runs 3] [--no-validation]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.fleet_generator import generate_fleet  # noqa: E402

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"
CLI_CONTEXT = {
    # What `cdk synth` adds to the app's context with default settings (aws-cdk CLI contextFromSettings).
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
    "aws:cdk:bundling-stacks": ["**"],
}
TARGETS = {"full_1000_seconds": 25.0, "full_1000_bytes": 1.5 * 1024**3, "selected_vs_single": 1.2}


def tree_rss_bytes(pid: int) -> int:
    """Sum of VmRSS over a process and its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


def load_seconds(agents: Path, selection: dict[str, str]) -> float:
    """Wall time of `foundry.fleet.load_fleet` alone, in a fresh process (imports excluded)."""
    code = (
        "import sys, time; from pathlib import Path; from foundry.fleet import load_fleet; t = time.perf_counter(); "
        f"load_fleet(Path({str(agents)!r}), instance={selection.get('instance')!r}); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def run_app(context: dict[str, object], outdir: Path, validation: bool) -> tuple[float, int]:
    env = dict(os.environ)
    env.update(
        CDK_OUTDIR=str(outdir), CDK_CONTEXT_JSON=json.dumps(context), JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1"
    )
    if not validation:
        env["CDK_VALIDATION"] = "false"
    env["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-O", "app.py"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(process.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"app failed ({process.returncode}):\n{stderr[-2000:]}")
    return elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--no-validation", action="store_true", help="skip CDK's built-in template validation")
    args = parser.parse_args()
    cdk_context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    results: dict[str, tuple[float, int]] = {}
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        root = Path(tmp)
        cases: list[tuple[str, int, dict[str, str]]] = [
            ("full synth, 1 instance", 1, {}),
            ("full synth, 100 instances", 100, {}),
            ("full synth, 1,000 instances", 1000, {}),
            ("1 selected instance of 1,000", 1000, {"instance": "org00/dom0/i0000"}),
        ]
        for label, count, selection in cases:
            agents = root / f"fleet{count}" / "agents"
            if not agents.exists():
                generate_fleet(agents, count)
            context = {**cdk_context, **CLI_CONTEXT, "agentsDir": str(agents), "runtimeImage": IMAGE, **selection}
            runs = [
                run_app(context, root / f"out-{count}-{len(results)}-{run}", not args.no_validation)
                for run in range(args.runs)
            ]
            median = (statistics.median(r[0] for r in runs), int(statistics.median(r[1] for r in runs)))
            results[label] = median
            loads[label] = statistics.median(load_seconds(agents, selection) for _ in range(args.runs))
            print(
                f"{label:<32} {median[0]:7.2f} s  {median[1] / 1024**2:8.0f} MiB  "
                f"(load_fleet {loads[label]:5.2f} s, rest {median[0] - loads[label]:6.2f} s; "
                f"runs: {', '.join(f'{r[0]:.2f}' for r in runs)} s)",
                flush=True,
            )
    full = results["full synth, 1,000 instances"]
    ratio = results["1 selected instance of 1,000"][0] / results["full synth, 1 instance"][0]
    print(
        f"full 1,000: {'PASS' if full[0] <= TARGETS['full_1000_seconds'] else 'FAIL'} time (target 25 s), "
        f"{'PASS' if full[1] <= TARGETS['full_1000_bytes'] else 'FAIL'} memory (target 1.5 GB)"
    )
    print(f"selected/single: {ratio:.2f}x {'PASS' if ratio <= TARGETS['selected_vs_single'] else 'FAIL'} (target 1.2x)")
    selected, single = (results[k][0] - loads[k] for k in ("1 selected instance of 1,000", "full synth, 1 instance"))
    print(f"selected/single without load_fleet: {selected / single:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
