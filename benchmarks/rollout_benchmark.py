"""The rollout scheduler's own cost, and each environment's projected rollout time, for 1,000 instances.

For every environment of agents/platform.yaml: `python -m foundry rollout --environment ENV --simulate
--simulate-instances 1000 --json` in a subprocess, timed end to end (interpreter start, loading agents/, wave
planning, the whole scheduler over virtual time, the JSON report). Prints one markdown row per run plus the
projected wall time the simulation reports under the environment's default policy.

    .venv/bin/python benchmarks/rollout_benchmark.py [--runs 3] [--instances 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")


def one_run(environment: str, instances: int) -> tuple[float, dict[str, object]]:
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", environment, "--simulate"]
    argv += ["--simulate-instances", str(instances), "--json"]  # a simulation keeps no state
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    report: dict[str, object] = json.loads(done.stdout)
    return wall, report


def hours(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    return f"{h}h {rest // 60:02d}m"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"date {when}, load average {os.getloadavg()}, cpus {os.cpu_count()}")
    print("| environment | policy | waves | projected wall time | --simulate wall time (median of runs) | runs |")
    print("|---|---|---|---|---|---|")
    for environment in ENVIRONMENTS:
        walls: list[float] = []
        report: dict[str, object] = {}
        for _ in range(args.runs):
            wall, report = one_run(environment, args.instances)
            walls.append(wall)
        policy = report["policy"]
        assert isinstance(policy, dict)
        waves = [w["size"] for w in report["waves"]]  # type: ignore[attr-defined]
        canary = policy["canary"]["instances"] or f"first {policy['canary']['count']}"
        described = (
            f"canary {canary}, x{policy['growth_factor']:g}, concurrency {policy['concurrency']}, "
            f"bake {policy['bake_seconds']}s"
        )
        elapsed = float(report["elapsed_seconds"])  # type: ignore[arg-type]
        runs = ", ".join(f"{w:.2f} s" for w in walls)
        print(
            f"| {environment} | {described} | {len(waves)} ({'/'.join(map(str, waves))}) | {hours(elapsed)} "
            f"| {statistics.median(walls):.2f} s | {runs} |"
        )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
