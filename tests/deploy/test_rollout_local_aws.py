"""`python -m foundry rollout` for real: the CLI in a subprocess, the real CDK CLI, moto's server as the AWS.

Each rollout runs from its own copy of the repository in its own folder, with `FOUNDRY_STATE_URL=dynamodb://`:
nothing is shared between them but the local AWS (the platform stack's deploy-state table), as two CI runners or
two engineers' machines share nothing but the account. The Foundry MCP server runs as its own process too.

moto keeps ECS services, target groups and DNS as records and runs no container, so the rollout runs with
`--health records`: the gate reads the stack (complete, no rollback) and the ECS service (ACTIVE) through
`foundry.aws.instance_status`, and says in the report what it could not read there (tasks, targets, the probe).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from foundry.aws.clients import boto3_clients
from foundry.cdk.cloud_assembly import read_templates
from foundry.cdk.process import tool_environment
from foundry.deploy.locks import InstanceLocks, LockTarget
from foundry.local.aws import LocalAws, default_runtime_image
from foundry.local.server import ServerState, aws_environment, using_aws_environment
from foundry.rollout.state import RolloutConflictError, RolloutStore
from foundry.state.locations import parse_state_url
from foundry.state.sqlite_store import SqliteStateStore
from foundry.state.store import StateStore, this_process
from foundry.state.stores import StateStores
from tests.deploy.git_repos import REPO_ROOT, git, new_git_repo
from tests.mcp.foundry_mcp_process_helpers import http_server

TIMEOUT_S = 900
BLOCKED = "default-org/default-domain/dev"
CANARY = "acme/retail/dev"
SHARED_STATE = {"FOUNDRY_STATE_URL": "dynamodb://"}
"""The environment's deploy-state table, found through the platform's SSM parameter."""
TOKEN = "rollout-lock-token-0123456789"


def copy_of_the_repository(folder: Path) -> Path:
    """Another checkout of this repository's working tree in its own folder (its tracked and new files; the shared
    virtualenv and node_modules linked, as every worktree here has them)."""
    listed = git(REPO_ROOT, "ls-files", "-co", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file() and not source.is_symlink():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    for linked in (".venv", "node_modules"):
        (folder / linked).symlink_to((REPO_ROOT / linked).resolve())
    return folder


@pytest.fixture
def local_aws(tmp_path: Path) -> Iterator[LocalAws]:
    local = LocalAws(state_dir=tmp_path / "local-aws", agents_dir=REPO_ROOT / "agents", cdk_timeout_s=TIMEOUT_S)
    try:
        yield local
    finally:
        local.down()


def start_rollout(state: ServerState, checkout: Path, *extra: str) -> subprocess.Popen[str]:
    """The rollout CLI of `checkout`, run from it, with the deploy state in the local AWS's platform table."""
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    image = default_runtime_image(state.account, state.region)  # the environment's own ECR: the allowed default
    argv += ["--cdk-method", "direct", "--bake-seconds", "15", "--json", *extra]
    if "--assembly" not in extra:  # an assembly fixed its runtime image when it was synthesized
        argv += ["--runtime-image", image]
    env = tool_environment(checkout, {**aws_environment(state), **SHARED_STATE})
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(argv, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    assert stdout, stderr
    return process.returncode, json.loads(stdout)


def rollout(state: ServerState, checkout: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    return finished(start_rollout(state, checkout, *extra))


def shared_store(state: ServerState, tmp_path: Path) -> StateStores:
    """The deploy state as any deployer opens it: FOUNDRY_STATE_URL=dynamodb:// against the local AWS."""
    with using_aws_environment(aws_environment(state)):
        stores = StateStores(parse_state_url("dynamodb://", tmp_path), boto3_clients)
        stores.open("dev", state.region)
    return stores


def wait_for_holder(store: StateStore, key: str, prefix: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        info = store.holder(key)
        if info is not None and info.holder.startswith(prefix):
            return info.holder
        assert process.poll() is None, f"the rollout ended before it held {key}: {process.communicate()}"
        time.sleep(0.2)
    raise AssertionError(f"nobody took {key}")


async def mcp_deploy(url: str, instance: str) -> tuple[bool, str]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(300)) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=300) as client,
    ):
        result = await client.call_tool("foundry.deploy_instance", {"environment": "dev", "instance": instance})
    return result.is_error, " ".join(getattr(c, "text", "") for c in result.content)


def rollout_in(state: ServerState, state_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """From this checkout, with the deploy state in a SQLite file in `state_dir`. `extra` with `--assembly DIR`
    deploys that assembly (whose runtime image was fixed when it was synthesized)."""
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    if "--assembly" not in extra:
        # The environment's own ECR: the allowed default.
        argv += ["--runtime-image", default_runtime_image(state.account, state.region)]
    argv += ["--cdk-method", "direct", "--bake-seconds", "15", *extra]
    argv += ["--state-url", f"sqlite:///{state_dir / 'foundry-state.db'}", "--json"]
    env = tool_environment(REPO_ROOT, aws_environment(state))
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def take_listener_priority(state: ServerState, selector: str) -> tuple[str, str]:
    """A hand-made listener rule on the instance's shard, at the instance's priority: its stack cannot create."""
    slots = yaml.safe_load((REPO_ROOT / "agents" / "placement" / "dev.yaml").read_text())["spec"]["slots"]
    [slot] = [s for s in slots if s["instance"] == selector]
    with using_aws_environment(aws_environment(state)):
        elbv2 = boto3.client("elbv2", region_name=state.region)
        balancers = elbv2.describe_load_balancers()["LoadBalancers"]
        assert slot["shard"] == 0 and len(balancers) == 1
        [listener] = elbv2.describe_listeners(LoadBalancerArn=balancers[0]["LoadBalancerArn"])["Listeners"]
        group = elbv2.create_target_group(
            Name="hand-made", Protocol="HTTP", Port=80, VpcId=balancers[0]["VpcId"], TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        rule = elbv2.create_rule(
            ListenerArn=listener["ListenerArn"],
            Priority=slot["priority"],
            Conditions=[{"Field": "host-header", "Values": ["hand-made.example"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": group}],
        )["Rules"][0]["RuleArn"]
    return rule, group


@pytest.mark.slow
async def test_a_rollout_halted_from_one_clone_resumes_from_another_and_refuses_and_is_refused_by_mcp_deploys(
    local_aws, tmp_path
):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    rule, group = take_listener_priority(state, BLOCKED)
    clone_a = copy_of_the_repository(tmp_path / "machine-a" / "repo")
    clone_b = copy_of_the_repository(tmp_path / "machine-b" / "repo")
    # What an abandoned rollout of dev left on machine A: no rollout uses it, the first synthesizing one removes it.
    left = clone_a / "build" / "rollout-assemblies" / "dev-0123456789abcdef"
    (left / "app").mkdir(parents=True)
    stores = shared_store(state, tmp_path)
    aws_env = {**aws_environment(state), **SHARED_STATE}

    with http_server(TOKEN, extra_env=aws_env) as server, using_aws_environment(aws_environment(state)):
        store = stores.open("dev", state.region)
        first = start_rollout(state, clone_a)
        holder = wait_for_holder(store, LockTarget("dev", CANARY, None).key, "rollout ", first)
        refused, text = await mcp_deploy(server.url, CANARY)  # the Foundry MCP server, while the rollout holds it
        code, report = finished(first)
    assert refused, text
    assert f"held by rollout {report['change_id']} of dev on " in text and holder in text
    assert "refused, not queued" in text

    assert code == 1, report
    assert [w["size"] for w in report["waves"]] == [1, 1]
    rows = {r["instance"]: r for r in report["instances"]}
    assert rows[CANARY] | {"reason": None} == {
        "instance": CANARY,
        "stack": "af-dev-acme-retail-dev",
        "wave": 1,
        "state": "deployed",
        "reason": None,
        "deploys": 1,
    }
    assert rows[BLOCKED]["wave"] == 2 and rows[BLOCKED]["state"] == "failed"
    assert "PriorityInUse" in rows[BLOCKED]["reason"]
    assert report["halted_wave"] == 2 and report["status"] == "halted"
    assert report["totals"] == {"instances": 2, "deployed": 1, "failed": 1, "rolled_back": 0, "not_started": 0}
    assert any("no container runs" in note for note in report["notes"])
    # The change was synthesized once, before the canary, into the clone's build/rollout-assemblies/; no deploy
    # synthesized.
    assert report["cdk_runs"] == {"deploy": 2, "synth": 1}
    assembly = Path(report["assembly"])
    assert assembly.parent == clone_a / "build" / "rollout-assemblies" and report["assembly_digest"].startswith(
        "sha256:"
    )
    assert report["git_revision"] is None  # a copy of the files without .git: no revision to record (the assembly
    # test below runs from a git repository and checks the recorded revision)
    assert not left.exists() and assembly.is_dir()  # halted: its own stays for the resume
    assert any(n.startswith("removed 1 cloud assembly of dev") and n.endswith(left.name) for n in report["notes"])

    with using_aws_environment(aws_environment(state)):
        # The fix: the hand-made rule goes, and so does the half-created stack (real CloudFormation leaves a failed
        # create in ROLLBACK_COMPLETE, which cdk replaces by itself; moto leaves it CREATE_IN_PROGRESS for good).
        elbv2 = boto3.client("elbv2", region_name=state.region)
        elbv2.delete_rule(RuleArn=rule)
        elbv2.delete_target_group(TargetGroupArn=group)
        cloudformation = boto3.client("cloudformation", region_name=state.region)
        cloudformation.delete_stack(StackName=rows[BLOCKED]["stack"])
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=rows[BLOCKED]["stack"], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        # The Foundry MCP server deploys the blocked instance (its lock, as serve.py names it): the rollout from
        # the other machine must not deploy over it.
        mcp_locks = InstanceLocks(stores, holder=f"the Foundry MCP server on {this_process()}")
        held = mcp_locks.acquire(LockTarget("dev", BLOCKED, state.region), BLOCKED)
    try:
        code, refused_by_mcp = rollout(state, clone_b)
    finally:
        with using_aws_environment(aws_environment(state)):
            held.release()
    assert code == 1, refused_by_mcp
    assert refused_by_mcp["change_id"] == report["change_id"] and refused_by_mcp["runs"] == 2
    blocked = {r["instance"]: r for r in refused_by_mcp["instances"]}[BLOCKED]
    assert blocked["state"] == "failed"
    assert f"held by the Foundry MCP server on {this_process()}" in blocked["reason"]

    # A resume deploys only the assembly it recorded: altered or missing, it is refused and nothing is deployed.
    [template] = assembly.glob(f"*/{rows[BLOCKED]['stack']}.template.json")
    original = template.read_bytes()
    template.write_bytes(original.replace(b'"Resources"', b'"Resources" '))
    code, altered = rollout(state, clone_b)
    assert code == 2 and "was altered" in altered["error"], altered
    assert "a resumed rollout deploys only the assembly it started with" in altered["error"]
    template.write_bytes(original)
    assembly.rename(tmp_path / "moved")
    code, missing = rollout(state, clone_b)
    assert code == 2 and f"is missing: {assembly}" in missing["error"], missing
    (tmp_path / "moved").rename(assembly)

    code, resumed = rollout(state, clone_b)
    assert code == 0, resumed["instances"]
    assert resumed["cdk_runs"] == {"deploy": 1}  # the recorded assembly: no second synth
    assert resumed["assembly"] == report["assembly"] and resumed["assembly_digest"] == report["assembly_digest"]
    assert resumed["runs"] == 3 and resumed["change_id"] == report["change_id"]
    # Complete: the assembly it synthesized goes (its digest stays in the state), and the report says so.
    assert not assembly.exists()
    removed = f"removed the cloud assembly this rollout synthesized, {assembly}"
    assert any(n.startswith(removed) for n in resumed["notes"])
    assert {r["instance"]: (r["state"], r["deploys"]) for r in resumed["instances"]} == {
        CANARY: ("deployed", 1),
        BLOCKED: ("deployed", 3),
    }
    assert (
        not (clone_a / "build" / "foundry-state.db").exists() and not (clone_b / "build" / "foundry-state.db").exists()
    )
    final = local_aws.status()
    assert final["ok"], final


CANARY_ALARM = "af-dev-acme-retail-dev-runtime-error-rate"


def wait_until_baking(state_file: Path, rollout: subprocess.Popen[str], selector: str) -> None:
    """Until the rollout's record says `selector`'s wave bakes (it read healthy once; the bake has begun). Polls the
    deploy state the rollout writes at every step (a subprocess: there is nothing else to wait on)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert rollout.poll() is None, "the rollout ended before the canary baked"
        saved = None
        if state_file.exists():
            with contextlib.suppress(RolloutConflictError):
                saved = RolloutStore(SqliteStateStore(state_file)).load("dev")
        if saved is not None and saved.instances[selector].state == "baking" and saved.bake_ends_at_seconds is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"{selector} never baked")


@pytest.mark.slow
def test_a_canary_whose_alarm_fires_during_the_bake_halts_the_rollout_naming_the_alarm(local_aws, tmp_path):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    state_file = tmp_path / "rollouts" / "foundry-state.db"
    argv = [sys.executable, "-m", "foundry", "rollout", "--environment", "dev", "--health", "records"]
    argv += ["--cdk-method", "direct", "--runtime-image", default_runtime_image(state.account, state.region)]
    argv += ["--bake-seconds", "120", "--state-url", f"sqlite:///{state_file}", "--json"]
    env = tool_environment(REPO_ROOT, aws_environment(state))
    with subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            wait_until_baking(state_file, run, CANARY)
            with using_aws_environment(aws_environment(state)):
                cloudwatch = boto3.client("cloudwatch", region_name=state.region)
                cloudwatch.set_alarm_state(
                    AlarmName=CANARY_ALARM, StateValue="ALARM", StateReason="Threshold Crossed: errors at 40%"
                )
            stdout, stderr = run.communicate(timeout=TIMEOUT_S)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 1, stderr
    report = json.loads(stdout)
    assert report["status"] == "halted" and report["halted_wave"] == 1
    rows = {r["instance"]: r for r in report["instances"]}
    assert rows[CANARY]["state"] == "failed", rows[CANARY]
    assert rows[CANARY]["reason"] == (
        f"unhealthy during the bake: alarm {CANARY_ALARM} is ALARM: Threshold Crossed: errors at 40%"
    )
    assert CANARY_ALARM in report["halt_reason"]
    assert rows["default-org/default-domain/dev"]["state"] == "not_started", "the next wave never starts"


def deployed_templates(state: ServerState, stacks: list[str]) -> dict[str, dict[str, Any]]:
    with using_aws_environment(aws_environment(state)):
        cloudformation = boto3.client("cloudformation", region_name=state.region)
        bodies = {s: cloudformation.get_template(StackName=s)["TemplateBody"] for s in stacks}
    return {s: body if isinstance(body, dict) else json.loads(body) for s, body in bodies.items()}


def synth(agents: Path, out: Path, image: str, *extra: str) -> None:
    argv = [sys.executable, "-m", "foundry", "synth", "--agents-dir", str(agents), "--environment", "dev"]
    argv += ["--out", str(out), "--runtime-image", image, *extra]
    env = tool_environment(REPO_ROOT)
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def set_templates(root: Path) -> dict[str, dict[str, Any]]:
    index = json.loads((root / "index.json").read_text())
    return {stack: read_templates(root / name)[stack] for stack, name in index["stacks"].items()}


@pytest.mark.slow
def test_a_rollout_deploys_the_assembly_it_is_given_not_the_tree_and_synthesizes_nothing(local_aws, tmp_path):
    state = local_aws.up()
    assert local_aws.deploy(platform_only=True) == ["af-dev-platform"]
    repo = new_git_repo(tmp_path / "repo")
    image = default_runtime_image(state.account, state.region)
    synth(repo.agents, tmp_path / "planned", image, "--shards", "2", "--jobs", "2")
    # The tree moves on after the synth: an agent spec changes (every instance's bundle with it).
    spec = repo.agents / "specs" / "system" / "coherence-agent.yaml"
    spec.write_text(spec.read_text().replace("Merge the workers' answers", "Reconcile the workers' answers"))
    synth(repo.agents, tmp_path / "moved-on", image, "--shards", "2", "--jobs", "2")
    planned, moved_on = set_templates(tmp_path / "planned"), set_templates(tmp_path / "moved-on")
    instance_stacks = sorted(s for s in planned if s != "af-dev-platform")
    assert len(instance_stacks) == 2 and all(planned[s] != moved_on[s] for s in instance_stacks)

    with_agents = ("--agents-dir", str(repo.agents))
    code, report = rollout_in(state, tmp_path / "rollouts", *with_agents, "--assembly", str(tmp_path / "planned"))
    assert code == 0, report
    assert report["totals"]["deployed"] == 2
    assert report["cdk_runs"] == {"deploy": 2}  # no `cdk synth`: every deploy used the assembly as it is
    assert report["assembly"] == str(tmp_path / "planned")
    assert (tmp_path / "planned" / "index.json").is_file()  # given, so never removed
    assert report["git_revision"].endswith("-dirty")  # the spec edit is not committed
    assert deployed_templates(state, instance_stacks) == {s: planned[s] for s in instance_stacks}

    # A stack the assembly does not hold is refused before anything is deployed.
    (tmp_path / "plan.json").write_text(
        json.dumps(
            {
                "environments": [
                    {"environment": "dev", "instances": [{"instance": "acme/retail/dev", "kind": "changed"}]}
                ]
            }
        )
    )
    only_platform = tmp_path / "platform-only"
    synth(repo.agents, only_platform, image, "--instances", "")
    code, refused = rollout_in(
        state,
        tmp_path / "other-rollouts",
        *with_agents,
        "--plan",
        str(tmp_path / "plan.json"),
        "--assembly",
        str(only_platform),
    )
    assert code == 2 and "does not hold 1 stack(s) this rollout must deploy: af-dev-acme-retail-dev" in refused["error"]
