"""A shard of `python -m foundry synth` is the app's own process, given what `cdk synth` would give it.

With a stand-in app (a script cdk.json names) the tests see what the app received: its parent is the synth
itself (no CLI between them), the CLI's variables, and the context in the CLI's precedence. With the real app, each
shard's assembly is byte for byte the one `cdk synth` writes from the same context.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from foundry.cdk.app_synth import CdkApp
from foundry.cdk.cli import CdkCli
from foundry.cdk.cloud_assembly import assembly_digest
from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.fleet.load import load_fleet
from foundry.synth.synthesize import APP_SYNTH_LABEL, SynthError, SynthRequest, synthesize
from tests.deploy.git_repos import REPO_ROOT

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"

STAND_IN_APP = """
import json, os, sys
out = os.environ["CDK_OUTDIR"]
context = json.loads(os.environ["CDK_CONTEXT_JSON"])
cdk = {k: v for k, v in os.environ.items() if k.startswith("CDK_") or k == "PYTHONIOENCODING"}
with open(os.path.join(out, "received.json"), "w") as f:
    json.dump({"ppid": os.getppid(), "env": cdk, "context": context, "argv": sys.argv}, f)
missing = [{"key": context["lookup"], "provider": "availability-zones", "props": {}}] if "lookup" in context else []
if context.get("fail"):
    print("the stand-in app failed on purpose", file=sys.stderr)
    sys.exit(3)
manifest = {"version": "55.0.0", "artifacts": {}, "missing": missing}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f)
"""


def stand_in_repo(root: Path, *, context: dict[str, Any], saved: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stand_in_app.py").write_text(STAND_IN_APP)
    (root / "cdk.json").write_text(json.dumps({"app": "python stand_in_app.py --flag", "context": context}))
    if saved is not None:
        (root / "cdk.context.json").write_text(json.dumps(saved))
    return root


def run(repo: Path, user_defaults: Path, out: Path, **request: Any) -> dict[str, Any]:
    runner = ProcessRunner(cwd=repo, env=tool_environment(REPO_ROOT))
    app = CdkApp.of_repo(repo, user_defaults=user_defaults)
    req = SynthRequest(out=out, agents_dir=repo, shards=1, jobs=2, **request)
    result = asyncio.run(synthesize(req, CdkCli("no-cdk-cli-here"), runner, instance_stacks=["af-dev-x"], app=app))
    received = {name: json.loads((out / name / "received.json").read_text()) for name in result.assemblies.assemblies}
    return {"runs": dict(runner.runs), "received": received}


def test_a_shard_runs_as_the_apps_own_process_with_the_clis_environment_and_context(tmp_path):
    repo = stand_in_repo(
        tmp_path / "repo",
        context={"fromProject": "cdk.json", "shared": "cdk.json", "environment": "from-cdk-json"},
        saved={"fromSaved": "cdk.context.json", "shared": "cdk.context.json"},
    )
    user = tmp_path / "home-cdk.json"
    user.write_text(
        json.dumps({"context": {"fromUser": "~/.cdk.json", "shared": "~/.cdk.json"}, "versionReporting": False})
    )
    found = run(repo, user, tmp_path / "out", environment="dev", runtime_image=IMAGE)

    # No CLI: the synth started only the app, once per assembly, and the app's parent is the synth itself.
    assert found["runs"] == {APP_SYNTH_LABEL: 2}
    assert set(found["received"]) == {"platform", "shard-0"}
    for name, got in found["received"].items():
        assert got["ppid"] == os.getpid()
        assert got["argv"] == ["stand_in_app.py", "--flag"]
        env = got["env"]
        # The assembly was written in the synth's staging folder, then moved to out/NAME.
        out = Path(env["CDK_OUTDIR"])
        assert out.name == name and out.parent.name.startswith(".out.synth-") and out.parent.parent == tmp_path
        assert env["PYTHONIOENCODING"] == "utf-8"
        assert env["CDK_ERROR_FILE"] == str(out / "error.txt")
        assert env["CDK_PERF_COUNTERS_FILE"] == str(out / "performance-counters.json")
        assert "CDK_CLI_VERSION" not in env  # no CLI installed beside the stand-in app
        context = got["context"]
        # The command line over cdk.json over cdk.context.json over ~/.cdk.json, as the CLI merges them.
        assert context["environment"] == "dev" and context["runtimeImage"] == IMAGE
        assert context["agentsDir"] == str(repo.resolve())
        assert context["shard"] == ("platform" if name == "platform" else "0/1")
        assert (context["fromProject"], context["fromSaved"], context["fromUser"]) == (
            "cdk.json",
            "cdk.context.json",
            "~/.cdk.json",
        )
        assert context["shared"] == "cdk.json"
        # The keys the CLI derives from its settings (versionReporting off in ~/.cdk.json).
        assert context["aws:cdk:enable-path-metadata"] is True
        assert context["aws:cdk:enable-asset-metadata"] is True
        assert context["aws:cdk:disable-version-reporting"] is True and "aws:cdk:version-reporting" not in context
        assert context["aws:cdk:bundling-stacks"] == ["**"]
        assert context["@aws-cdk/core:failSynthOnValidationErrors"] is False


def test_a_shard_that_needs_a_lookup_or_fails_is_refused_by_name_and_nothing_is_written(tmp_path):
    repo = stand_in_repo(tmp_path / "repo", context={"lookup": "availability-zones:account=1:region=eu-west-1"})
    with pytest.raises(SynthError, match=r"needs context it was not given .*availability-zones:account=1") as caught:
        run(repo, tmp_path / "none.json", tmp_path / "out")
    assert "run `cdk synth` once" in str(caught.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.synth-*"))

    repo = stand_in_repo(tmp_path / "failing", context={"fail": True})
    with pytest.raises(
        SynthError, match=r"`python stand_in_app.py` of the assembly '(platform|shard-0)' exited with code 3"
    ):
        run(repo, tmp_path / "none.json", tmp_path / "out")


def test_the_cli_versions_are_those_of_the_installed_cli():
    """What `cdk synth` sets: its package's version, and `<revision>.0.0` of the schema its bundle carries (the
    cloud-assembly-schema it was built with is at least the one its package.json names)."""
    app = CdkApp.of_repo(REPO_ROOT)
    package = json.loads((REPO_ROOT / "node_modules/aws-cdk/package.json").read_text())
    assert app.command == ("python", "-O", "app.py") and app.cli_version == package["version"]
    assert app.schema_version is not None and re.fullmatch(r"\d+\.0\.0", app.schema_version)
    built_with = package["devDependencies"]["@aws-cdk/cloud-assembly-schema"].lstrip(">=^")
    assert int(app.schema_version.split(".")[0]) == int(built_with.split(".")[0])


def test_a_cdk_json_without_an_app_is_named(tmp_path):
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {}}))
    runner = ProcessRunner(cwd=tmp_path, env=tool_environment(REPO_ROOT))
    request = SynthRequest(out=tmp_path / "out", agents_dir=tmp_path, shards=2)
    with pytest.raises(SynthError, match=r"cannot be run for the shards: .*cdk.json: 'app' must be the command"):
        asyncio.run(synthesize(request, CdkCli("cdk"), runner, instance_stacks=["af-dev-x"]))
    assert runner.started == 0


@pytest.mark.slow
def test_each_shard_of_the_real_app_is_byte_for_byte_what_cdk_synth_writes(tmp_path):
    """The digest covers every file of the assembly (templates, assets, manifest, tree), so equal digests mean
    `cdk deploy --app` reads the same assembly either way."""
    runner = ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))
    cdk = CdkCli.of_repo(REPO_ROOT)
    request = SynthRequest(
        out=tmp_path / "sharded",
        agents_dir=REPO_ROOT / "agents",
        environment="dev",
        shards=2,
        jobs=2,
        runtime_image=IMAGE,
    )
    stacks = [i.manifest.spec.stack_name for i in load_fleet(REPO_ROOT / "agents", environment="dev").instances]
    result = asyncio.run(synthesize(request, cdk, runner, instance_stacks=stacks))
    assert runner.runs == {APP_SYNTH_LABEL: len(result.assemblies.assemblies)}  # no `cdk` process was started

    jobs = request.jobs_to_run(stacks)
    assert set(jobs) == set(result.assemblies.assemblies)
    for name, context in jobs.items():
        by_cli = tmp_path / "cli" / name
        done = asyncio.run(
            runner.run(cdk.synth_app(context=context, output=by_cli), timeout_seconds=900, on_line=_ignore)
        )
        assert done.ok, "\n".join(done.lines)
        assert assembly_digest(by_cli) == result.assemblies.assemblies[name].digest, name
    assert runner.runs["synth"] == len(jobs)


async def _ignore(line: str) -> None:
    return None
