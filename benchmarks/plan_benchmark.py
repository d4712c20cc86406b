"""Times the change plan's fast path over a generated 1,000-instance fleet (target: <= 5 s).

Builds a throwaway git repository holding the example `agents/` tree grown to 1,000 dev instances (each with the
seven system agents and one worker, plus a placement file), and a copy of `foundry/` so the base revision is
read by its own code, exactly as in this repository. Commits it, changes one worker spec and one instance's
placement in the working tree, then times `python -m foundry plan --base HEAD --json` end to end in-process.

Run: .venv/bin/python benchmarks/plan_benchmark.py [--instances N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from foundry.cli import main  # noqa: E402

TARGET_S = 5.0
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=120, env=GIT_ENV)


def generate(root: Path, count: int) -> None:
    shutil.copytree(REPO_ROOT / "agents", root / "agents", ignore=shutil.ignore_patterns("schemas"))
    shutil.copytree(REPO_ROOT / "foundry", root / "foundry", ignore=shutil.ignore_patterns("__pycache__"))
    manifest_path = root / "agents/manifests/manifest.dev.yaml"
    doc = yaml.safe_load(manifest_path.read_text())
    template = [e for e in doc["spec"]["entries"] if e["organization_id"] == "default-org"]
    template = [e for e in template if e["is_system_agent"] or e["agent_id"] == "pm-agent"]
    entries: list[dict[str, object]] = []
    slots: list[dict[str, object]] = []
    for n in range(count):
        org, domain = f"org-{n // 50:03d}", f"domain-{n % 50:02d}"
        for entry in template:
            e = copy.deepcopy(entry)
            e.update(organization_id=org, organization_name=f"Org {org}", domain_id=domain)
            e.update(domain_name=f"Domain {domain}", instance_id="dev")
            entries.append(e)
        slots.append({"instance": f"{org}/{domain}/dev", "shard": n // 100, "priority": n % 100 + 1})
    doc["spec"]["entries"] = entries
    manifest_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    slots.sort(key=lambda slot: str(slot["instance"]))
    placement = {"apiVersion": "agent-foundry/v1", "kind": "Placement", "spec": {"environment": "dev", "slots": slots}}
    (root / "agents/placement/dev.yaml").write_text(yaml.safe_dump(placement, sort_keys=False))


def change(root: Path) -> None:
    spec = root / "agents/specs/workers/pm-agent.yaml"
    spec.write_text(spec.read_text().replace("temperature: 0.2", "temperature: 0.3"))


def run(count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        root = Path(tmp)
        git(root, "init", "-q", "-b", "main")
        generate(root, count)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "fleet")
        change(root)
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = main(["plan", "--agents-dir", str(root / "agents"), "--base", "HEAD", "--json"])
        elapsed = time.perf_counter() - start
        plan = json.loads(out.getvalue())
        dev = next(e for e in plan["environments"] if e["environment"] == "dev")
        assert code == 1, plan
        assert dev["counts"]["changed"] == count, dev["counts"]
        return elapsed


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = sorted(run(args.instances) for _ in range(args.runs))
    best, median = times[0], times[len(times) // 2]
    verdict = "PASS" if median <= TARGET_S else "FAIL"
    print(
        f"plan fast path, {args.instances} dev instances (+6 example instances), {args.runs} runs: "
        f"best {best:.2f} s, median {median:.2f} s (target <= {TARGET_S:.0f} s) {verdict}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main_())
