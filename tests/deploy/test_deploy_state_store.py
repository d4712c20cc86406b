"""The deploy state's leases and fenced writes, the same tests on both stores: a SQLite file, and the platform's
DynamoDB table (the construct's real template, created by moto's CloudFormation on its server) found through its
SSM parameter as `FOUNDRY_STATE_URL=dynamodb://` finds it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest

from constructs.af_deploy_state import AfDeployState
from foundry.deploy.locks import DeployInProgressError, InstanceLocks, LockTarget
from foundry.rollout.scheduler import InstanceProgress, Rollout
from foundry.rollout.state import RolloutConflictError, RolloutStore, rollout_holder
from foundry.state.leases import Lease, LeaseLostError
from foundry.state.locations import StateUrlError, parse_state_url, platform_table_parameter, repository_of
from foundry.state.store import LeaseHeldError, StateStore, StateStoreError
from foundry.state.stores import StateStores
from tests.deploy.git_repos import REPO_ROOT, new_git_repo
from tests.mcp.foundry_mcp_local_aws import REGION, LocalAws, moto_server

SHORT_TTL = 0.6


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


def deploy_state_table(moto: LocalAws, environment: str) -> None:
    """The platform's deploy-state construct, deployed by moto's CloudFormation from its synthesized template."""
    app = cdk.App()
    stack = cdk.Stack(app, f"af-{environment}-state", synthesizer=cdk.BootstraplessSynthesizer())
    AfDeployState(stack, "DeployState", parameter_name=platform_table_parameter(environment))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    moto.client("cloudformation").create_stack(StackName=stack.stack_name, TemplateBody=json.dumps(template))


@dataclass(frozen=True)
class Shared:
    stores: StateStores
    environment: str
    env: dict[str, str]
    """What another process needs to open the same store (FOUNDRY_STATE_URL, the local AWS)."""


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.slow)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    """One environment's store as a deployer opens it: a SQLite file, or the platform's table through SSM."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        return Shared(StateStores(parse_state_url(url, tmp_path)), "dev", {"FOUNDRY_STATE_URL": url})
    moto: LocalAws = request.getfixturevalue("moto")
    environment = f"e{time.monotonic_ns()}"  # a platform table of its own per test
    deploy_state_table(moto, environment)
    stores = StateStores(parse_state_url("dynamodb://", tmp_path), moto.client)
    return Shared(stores, environment, {**moto.env, "FOUNDRY_STATE_URL": "dynamodb://"})


@pytest.fixture
def store(shared: Shared) -> StateStore:
    return shared.stores.open(shared.environment, REGION)


def test_a_lease_is_exclusive_and_a_refusal_names_the_holder_and_what_it_does(store: StateStore) -> None:
    token = store.acquire("deploy-lock/dev/a/b/c", "rollout 1a2b of dev on ci-7 (pid 9)", "deploying", 30)
    with pytest.raises(LeaseHeldError) as held:
        store.acquire("deploy-lock/dev/a/b/c", "the Foundry MCP server on laptop (pid 3)", "started", 30)
    assert (held.value.info.holder, held.value.info.description) == ("rollout 1a2b of dev on ci-7 (pid 9)", "deploying")
    store.release("deploy-lock/dev/a/b/c", token)
    assert store.holder("deploy-lock/dev/a/b/c") is None
    store.release("deploy-lock/dev/a/b/c", store.acquire("deploy-lock/dev/a/b/c", "next", "started", 30))


def test_a_crashed_holders_lease_expires_and_its_late_writes_are_refused(store: StateStore) -> None:
    crashed = store.acquire("rollout/dev", "rollout dead of dev", "running", SHORT_TTL)  # never renewed again
    assert store.write("rollout/dev", crashed, b"before the crash")
    with pytest.raises(LeaseHeldError):
        store.acquire("rollout/dev", "rollout next of dev", "running", 30)
    time.sleep(SHORT_TTL + 0.3)
    assert store.holder("rollout/dev") is None
    taker = store.acquire("rollout/dev", "rollout next of dev", "running", 30)
    assert not store.write("rollout/dev", crashed, b"late write"), "a holder that lost its lease wrote"
    assert not store.renew("rollout/dev", crashed, 30)
    assert store.read("rollout/dev") == b"before the crash", "taking a lease keeps the record"
    assert store.write("rollout/dev", taker, b"after")
    assert store.read("rollout/dev") == b"after" and store.keys("rollout/") == ["rollout/dev"]
    store.release("rollout/dev", taker)
    assert store.read("rollout/dev") == b"after", "releasing a lease keeps the record"


def test_a_live_holder_keeps_its_lease_past_its_time_to_live_by_renewing_it(store: StateStore) -> None:
    lease = Lease.take(store, "deploy-lock/dev/x/y/z", "the Foundry MCP server on a (pid 1)", "started", SHORT_TTL)
    try:
        time.sleep(SHORT_TTL * 2.5)
        with pytest.raises(LeaseHeldError):
            store.acquire("deploy-lock/dev/x/y/z", "someone else", "started", 30)
        lease.write(b"still mine")
    finally:
        lease.release()
    with pytest.raises(LeaseLostError):
        lease.write(b"after release")


CRASHING_HOLDER = """
import sys, time
from foundry.aws.clients import boto3_clients
from foundry.deploy.locks import InstanceLocks, LockTarget
from foundry.state.stores import StateStores
from pathlib import Path
locks = InstanceLocks(StateStores.configured(Path("agents"), boto3_clients), holder="a deployer that crashes",
                      ttl_seconds=float(sys.argv[2]))
locks.acquire(LockTarget(sys.argv[1], "acme/retail/dev", "us-east-1"), "acme/retail/dev")
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holders_lock_is_taken_once_its_lease_expires(shared: Shared) -> None:
    target = LockTarget(shared.environment, "acme/retail/dev", REGION)
    env = {**os.environ, **shared.env}
    argv = [sys.executable, "-c", CRASHING_HOLDER, shared.environment, str(SHORT_TTL * 2)]
    holder = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(SHORT_TTL * 3)  # it renews while it lives
        locks = InstanceLocks(shared.stores, holder="the Foundry MCP server on laptop (pid 3)")
        with pytest.raises(DeployInProgressError, match="held by a deployer that crashes"):
            locks.acquire(target, "acme/retail/dev")
    finally:
        holder.kill()  # SIGKILL: no release, no more renewals
        holder.wait()
    deadline = time.monotonic() + 30
    while True:
        try:
            locks.acquire(target, "acme/retail/dev").release()
            break
        except DeployInProgressError:
            assert time.monotonic() < deadline, "the killed holder's lease never expired"
            time.sleep(0.2)


def test_an_mcp_deploy_and_a_rollout_refuse_each_others_instances_naming_the_holder(shared: Shared) -> None:
    """Two deployers on two machines: each opens the environment's store itself."""
    stores, environment = shared.stores, shared.environment
    other_machine = StateStores(stores.location, stores.clients)
    server = InstanceLocks(stores, holder="the Foundry MCP server on laptop (pid 3)")
    rollout = InstanceLocks(other_machine, holder=rollout_holder("0123456789abcdef", environment))
    mine, theirs = LockTarget(environment, "acme/retail/dev", REGION), LockTarget(environment, "o/d/i", REGION)

    held = rollout.acquire(mine, "acme/retail/dev")
    with pytest.raises(DeployInProgressError, match=r"held by rollout 0123456789abcdef of "):
        server.acquire(mine, "acme/retail/dev")
    assert server.reason(mine) is not None and "rollout 0123456789abcdef" in server.reason(mine)  # type: ignore[operator]
    held.release()

    by_server = server.acquire(theirs, "o/d/i")
    with pytest.raises(DeployInProgressError, match=r"held by the Foundry MCP server on laptop \(pid 3\)"):
        rollout.acquire(theirs, "o/d/i")
    by_server.release()
    rollout.acquire(theirs, "o/d/i").release()


def test_one_rollout_of_an_environment_at_a_time_and_a_halted_one_is_read_from_another_machine(
    shared: Shared,
) -> None:
    stores, environment = shared.stores, shared.environment
    first = RolloutStore(stores.open(environment, REGION))
    second = RolloutStore(StateStores(stores.location, stores.clients).open(environment, REGION))
    record = Rollout(
        environment=environment,
        change_id="c1",
        change="every instance",
        policy={},
        waves=[["a/b/c"]],
        instances={"a/b/c": InstanceProgress(instance="a/b/c", stack="s", wave=1, state="failed")},
        status="halted",
    )
    with first.hold(environment, "rollout c1 on machine one"):
        first.save(record)
        refused = pytest.raises(RolloutConflictError, match="already running \\(held by rollout c1 on machine one")
        with refused, second.hold(environment, "rollout c1 on machine two"):
            pass
    loaded = second.load(environment)
    assert loaded is not None and loaded.instances["a/b/c"].state == "failed" and loaded.status == "halted"
    with pytest.raises(LeaseLostError):
        second.save(record)  # without holding the environment's lease nothing is written


def test_the_default_store_is_a_file_beside_the_agents_trees_repository_created_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_git_repo(tmp_path / "fleet-repo")
    stores = StateStores.configured(repo.agents, environ={})
    assert stores.location.path == repo.root / "build" / "foundry-state.db"
    assert repository_of(repo.agents) == repo.root
    elsewhere = tmp_path / "working-directory"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    stores.open("dev", None)
    relative = StateStores.configured(repo.agents, environ={"FOUNDRY_STATE_URL": "sqlite:///state/x.db"})
    assert relative.location.path == repo.root / "state" / "x.db", "relative to the repository, not the cwd"
    assert not any(elsewhere.iterdir())
    mode = stat.S_IMODE((repo.root / "build" / "foundry-state.db").stat().st_mode)
    assert mode == 0o600


@pytest.mark.parametrize(
    ("url", "wrong"),
    [("postgres://x", "is not a deploy state store"), ("dynamodb://a b", "is not a DynamoDB table name")],
)
def test_a_state_url_that_names_no_store_is_refused_with_the_allowed_forms(url: str, wrong: str) -> None:
    with pytest.raises(StateUrlError, match=wrong) as refused:
        parse_state_url(url, Path("/repo"))
    assert "FOUNDRY_STATE_URL=" in str(refused.value) and "dynamodb://TABLE" in str(refused.value)


@pytest.mark.slow
def test_dynamodb_without_the_platforms_table_names_the_parameter_and_the_stack_to_deploy(
    moto: LocalAws, tmp_path: Path
) -> None:
    stores = StateStores(parse_state_url("dynamodb://", tmp_path), moto.client)
    with pytest.raises(StateStoreError) as missing:
        stores.open("nowhere", REGION)
    assert platform_table_parameter("nowhere") in str(missing.value)
    assert "deploy the platform stack af-nowhere-platform" in str(missing.value)


def test_a_rollout_recorded_running_whose_lease_expired_is_reported_interrupted(shared: Shared) -> None:
    environment = shared.environment
    store = shared.stores.open(environment, REGION)
    records = RolloutStore(store)
    key, holder = records.key(environment), "rollout c2 on a machine that is killed"
    # A lease nobody renews: what a rollout killed with SIGKILL leaves behind.
    records.lease = Lease(store, key, holder, store.acquire(key, holder, "running", SHORT_TTL), SHORT_TTL)
    records.save(Rollout(environment=environment, change_id="c2", change="all", policy={}, waves=[], instances={}))
    assert records.load_as_is(environment).status == "running"  # type: ignore[union-attr]
    time.sleep(SHORT_TTL + 0.3)
    found = records.load_as_is(environment)
    assert found is not None and found.status == "interrupted"
    assert "no rollout holds the environment's lease" in found.notes[-1]


def test_a_commands_state_url_wins_over_the_environment_and_a_bad_one_is_named_as_the_option(tmp_path: Path) -> None:
    repo = new_git_repo(tmp_path / "fleet-repo")
    environ = {"FOUNDRY_STATE_URL": "sqlite:///from-env.db"}
    given = StateStores.configured(repo.agents, environ=environ, url="sqlite:///state/given.db")
    assert given.location.path == repo.root / "state" / "given.db"
    with pytest.raises(StateUrlError, match="--state-url='postgres://x'"):
        StateStores.configured(repo.agents, environ=environ, url="postgres://x")
