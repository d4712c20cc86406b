"""Sharded synth benchmark: `python -m foundry synth` over generated fleets, unsharded and in shards, measuring each
synth process's peak memory and the wall time.

Each `cdk synth` the command starts is one synth process: the CDK CLI (node), the app it runs (python app.py) and
the app's jsii node process. Its peak is the largest total RSS of that process tree, sampled every 50 ms; the app's
share (python and jsii, without the CLI) is shown beside it. Cases:

* 1 instance, unsharded: the base cost of one synth (for the cost per added instance stack);
* 1,000 instances unsharded, and with `--shards 4 --jobs 2`;
* 2,000 instances with `--shards 8 --jobs 2` (the same shard size as 1,000 in 4).

Targets (issue 23): the largest sharded process at most 65 % of the unsharded peak; at a fixed shard size, doubling
the fleet moves the largest peak by at most 10 %; sharded wall time at most 0.7x unsharded on a 2-core machine; cost
per added instance stack at most 70 ms.

    .venv/bin/python benchmarks/shard_synth_benchmark.py [--skip-2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.fleet_generator import generate_fleet  # noqa: E402
from benchmarks.synth_benchmark import IMAGE, load_average  # noqa: E402

SAMPLE_SECONDS = 0.05
TARGETS = {"shard_peak_share": 0.65, "doubling_drift": 0.10, "wall_share": 0.7, "per_stack_ms": 70.0}


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(children(current))
    return pids


def is_app(pid: int) -> bool:
    try:
        return b"app.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Peaks:
    """Per synth process (a direct child of `foundry synth`): the peak of its whole tree and of the app's subtree."""

    whole: dict[int, int] = field(default_factory=dict)
    app: dict[int, int] = field(default_factory=dict)

    def sample(self, root: int) -> None:
        for child in children(root):
            pids = tree(child)
            self.whole[child] = max(self.whole.get(child, 0), sum(rss(p) for p in pids))
            # The CLI starts the app through a shell: both name app.py, so the subtrees are joined, not added.
            app_pids = {p for a in pids if is_app(a) for p in tree(a)}
            app_total = sum(rss(p) for p in app_pids)
            self.app[child] = max(self.app.get(child, 0), app_total)


def run_synth(agents: Path, out: Path, *extra: str) -> tuple[float, Peaks, dict[str, object]]:
    argv = [sys.executable, "-m", "foundry", "synth", "--agents-dir", str(agents), "--out", str(out)]
    argv += ["--runtime-image", IMAGE, "--json", *extra]
    env = dict(os.environ, JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1", CDK_DISABLE_CLI_TELEMETRY="true")
    env["PATH"] = os.pathsep.join(
        [str(REPO_ROOT / ".venv" / "bin"), str(REPO_ROOT / "node_modules" / ".bin"), env["PATH"]]
    )
    peaks = Peaks()
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()
    outputs: list[bytes] = []

    def read() -> None:
        assert process.stdout is not None and process.stderr is not None
        outputs.extend([process.stdout.read(), process.stderr.read()])
        done.set()

    threading.Thread(target=read, daemon=True).start()
    while process.poll() is None:
        peaks.sample(process.pid)
        time.sleep(SAMPLE_SECONDS)
    done.wait()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}:\n{outputs[0].decode()}{outputs[1].decode()}")
    return wall, peaks, json.loads(outputs[0])


def mib(value: int) -> str:
    return f"{value / 1024**2:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-2000", action="store_true", help="leave out the 2,000-instance case")
    args = parser.parse_args()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    print(
        f"machine: {os.cpu_count()} cpus, {cpu}, Python {platform.python_version()}; load {load_average()}", flush=True
    )
    cases = [
        ("1 instance, unsharded", 1, ()),
        ("1,000 unsharded", 1000, ()),
        ("1,000 --shards 4 --jobs 2", 1000, ("--shards", "4", "--jobs", "2")),
        ("2,000 --shards 8 --jobs 2", 2000, ("--shards", "8", "--jobs", "2")),
    ]
    if args.skip_2000:
        cases = cases[:-1]
    results: dict[str, tuple[float, int, int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="shard-bench-", dir=REPO_ROOT / "build") as tmp:
        root = Path(tmp)
        for label, count, extra in cases:
            agents = root / f"fleet{count}" / "agents"
            if not agents.exists():
                generate_fleet(agents, count)
            before = load_average()
            wall, peaks, summary = run_synth(agents, root / f"out-{count}-{len(results)}", *extra)
            largest = max(peaks.whole.values())
            largest_app = max(peaks.app.values())
            results[label] = (wall, largest, largest_app, int(str(summary["processes"])))
            each = ", ".join(mib(v) for v in sorted(peaks.whole.values(), reverse=True))
            print(
                f"{label:<28} wall {wall:7.1f} s  largest process {mib(largest):>10} (app {mib(largest_app)})  "
                f"{summary['processes']} process(es) [{each}]  load {before} -> {load_average()}",
                flush=True,
            )
            shutil_rm(root / f"out-{count}-{len(results) - 1}")
    single, whole, sharded = (
        results[k] for k in ("1 instance, unsharded", "1,000 unsharded", "1,000 --shards 4 --jobs 2")
    )
    share, app_share = sharded[1] / whole[1], sharded[2] / whole[2]
    print(
        f"largest sharded process / unsharded peak: {share:.0%} (app alone {app_share:.0%}) "
        f"{'PASS' if share <= TARGETS['shard_peak_share'] else 'FAIL'} (target <= 65 %)"
    )
    wall_share = sharded[0] / whole[0]
    verdict = "PASS" if wall_share <= TARGETS["wall_share"] else "FAIL"
    print(f"sharded wall / unsharded wall: {wall_share:.2f}x {verdict} (target <= 0.7x)")
    per_stack = (whole[0] - single[0]) / 999 * 1000
    print(
        f"cost per added instance stack (unsharded 1,000 vs 1, wall): {per_stack:.1f} ms "
        f"{'PASS' if per_stack <= TARGETS['per_stack_ms'] else 'FAIL'} (target <= 70 ms)"
    )
    if "2,000 --shards 8 --jobs 2" in results:
        doubled = results["2,000 --shards 8 --jobs 2"]
        drift = doubled[1] / sharded[1] - 1
        print(
            f"fixed shard size, fleet doubled: largest peak moves {drift:+.1%} "
            f"(app {doubled[2] / sharded[2] - 1:+.1%}) "
            f"{'PASS' if abs(drift) <= TARGETS['doubling_drift'] else 'FAIL'} (target within 10 %)"
        )
    print(f"load average at end: {load_average()}")
    return 0


def shutil_rm(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
