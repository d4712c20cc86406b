"""`python -m foundry synth --out DIR`: the cloud assembly of the fleet, an environment or a few of its instances.

    synth --out DIR [--environment ENV] [--instances SEL,...] [--shards N] [--jobs J] [--runtime-image URI]

`--shards N` splits the instance stacks into N shards (a stable key: adding an instance never moves another), each
synthesized in its own process, at most J at once (default: the number of cores); the platform stacks once.
DIR gets `index.json` (stack -> assembly, each assembly's digest) beside the assemblies; `rollout --assembly DIR`
deploys exactly that set.

Exit codes: 0 written, 1 the manifests are invalid or a synth failed (cdk's own words are shown), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.manifests.problems import ManifestError
from foundry.synth.synthesize import SynthError, SynthRequest, SynthResult, synthesize

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_synth_parser(sub: Any) -> None:
    p = sub.add_parser(
        "synth",
        help="write the cloud assembly (optionally in shards) that a rollout deploys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the assembly set goes")
    p.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    p.add_argument("--environment", metavar="ENV", help="only this environment")
    p.add_argument(
        "--instances",
        metavar="SEL,...",
        help="only these ORG/DOMAIN/INSTANCE selectors of --environment (empty: its platform stack alone)",
    )
    p.add_argument("--shards", type=int, metavar="N", help="instance stacks in N shards, one process each")
    p.add_argument("--jobs", type=int, metavar="J", default=os.cpu_count() or 1, help="processes at once")
    p.add_argument("--runtime-image", metavar="URI", help="a prebuilt runtime image instead of building one")
    p.add_argument("--json", action="store_true", help="the result as JSON on stdout")


def request_of(args: argparse.Namespace) -> SynthRequest:
    instances = None
    if args.instances is not None:
        instances = tuple(sorted({s.strip() for s in args.instances.split(",") if s.strip()}))
    return SynthRequest(
        out=args.out,
        agents_dir=args.agents_dir,
        environment=args.environment,
        instances=instances,
        shards=args.shards,
        jobs=args.jobs,
        runtime_image=args.runtime_image,
    )


def run_synth(args: argparse.Namespace) -> int:
    try:
        request = request_of(args)
        # The manifests are checked here first, so a bad file is named once, not once per shard process.
        fleet = load_fleet(args.agents_dir, environment=args.environment)
        wanted = set(request.instances) if request.instances is not None else None
        stacks = [i.manifest.spec.stack_name for i in fleet.instances if wanted is None or i.key.selector in wanted]
    except ManifestError as exc:
        return _error(args, f"the manifests are invalid:\n{exc}", EXIT_FAILED)
    except ValueError as exc:
        return _error(args, str(exc), EXIT_USAGE)
    runner = ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))
    # A stopped synth (a CI job cancelled, SIGTERM) stops its cdk processes and leaves no half-written folder:
    # the signal becomes KeyboardInterrupt, asyncio cancels the synth, and the runner stops each process group.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = asyncio.run(synthesize(request, CdkCli.of_repo(REPO_ROOT), runner, instance_stacks=stacks))
    except SynthError as exc:
        return _error(args, str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _error(args, "stopped: no assembly was written", EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print(args, result)
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def summary(result: SynthResult) -> dict[str, Any]:
    assemblies = result.assemblies
    return {
        "ok": True,
        "out": str(assemblies.root),
        "index": str(result.index),
        "digest": assemblies.digest,
        "shards": assemblies.shards,
        "processes": result.processes,
        "seconds": round(result.seconds, 2),
        "assemblies": {e.name: {"digest": e.digest, "stacks": len(e.stacks)} for e in assemblies.assemblies.values()},
    }


def _print(args: argparse.Namespace, result: SynthResult) -> None:
    data = summary(result)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    for name, entry in data["assemblies"].items():
        print(f"wrote {Path(data['out']) / name}  {entry['stacks']} stack(s)  {entry['digest']}")
    print(f"wrote {data['index']}  {data['digest']}  ({data['processes']} process(es), {data['seconds']} s)")


def _error(args: argparse.Namespace, message: str, code: int) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code
