"""Threads outlive processes: real runtime processes on one SQLite file, and on one DynamoDB table of moto's
server, answer turns of the same thread; history is read back with `python -m runtime state export`."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from instance_contract.thread_state import DYNAMODB_TTL_ATTRIBUTE
from runtime.auth import anonymous_caller, thread_key
from runtime.store.usage_ledger import USAGE_PARTITION
from tests.mcp.foundry_mcp_local_aws import moto_server
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    copy_agents,
    runtime_env,
    serve,
    start_runtime,
    write_bundles,
)
from tests.runtime.state_table import create_state_table

pytestmark = pytest.mark.slow
INSTANCE = "default-org/default-domain/dev"


@dataclass(frozen=True)
class Store:
    url: str
    env: dict[str, str]


@pytest.fixture
def built(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == INSTANCE)


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    with moto_server() as local:
        yield local


def _dynamodb_store(moto: Any, name: str) -> Store:
    client = moto.client("dynamodb")
    create_state_table(client, name)
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": DYNAMODB_TTL_ATTRIBUTE}
    )
    return Store(f"dynamodb://{name}", dict(moto.env))


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'state' / 'threads.db'}", {})
    return _dynamodb_store(request.getfixturevalue("moto"), f"af-test-{tmp_path.name[-20:].strip('_')}")


def _serve(built: BuiltBundle, store: Store, factory: list[RuntimeProcess], **extra: str) -> RuntimeProcess:
    runtime = serve({**built.identity_env(), **store.env, "STATE_URL": store.url, **extra})
    factory.append(runtime)
    return runtime


async def _invoke(runtime: RuntimeProcess, message: str, thread_id: str) -> dict[str, Any]:
    async with Client(runtime.url) as client:
        result = await client.call_tool("invoke", {"message": message, "thread_id": thread_id})
    body = result.structured_content
    assert body is not None
    assert not result.is_error, body
    return dict(body)


def _export(bundle: Path, store: Store) -> dict[str, list[dict[str, str]]]:
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "state", "export", "--bundle", str(bundle), "--state", store.url],
        cwd=REPO_ROOT,
        env=runtime_env(store.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {t["key"]: t["messages"] for t in map(json.loads, done.stdout.splitlines())}


def _key(thread_id: str) -> str:
    """The store keys a thread by its caller (runtime.auth.thread_key); these runtimes serve the anonymous caller."""
    return thread_key(anonymous_caller(INSTANCE.split("/")[0]), thread_id)


async def test_two_processes_answer_alternating_turns_and_a_later_process_continues_the_thread(
    built: BuiltBundle, store: Store, runtime_factory: list[RuntimeProcess]
) -> None:
    first, second = _serve(built, store, runtime_factory), _serve(built, store, runtime_factory)
    answers = []
    for turn, runtime in enumerate([first, second, first, second], start=1):
        body = await _invoke(runtime, f"plan step-{turn}", "shared")
        if turn > 1:  # the worker saw the thread from its first message, whichever process wrote it
            assert "Earlier in this thread" in body["answer"] and "step-1" in body["answer"], body["answer"]
        answers.append(body["answer"])
    assert first.terminate() == 0 and second.terminate() == 0

    later = _serve(built, store, runtime_factory)
    answers.append((await _invoke(later, "plan step-5", "shared"))["answer"])
    assert later.terminate() == 0

    history = _export(built.path, store)[_key("shared")]
    assert history == [
        message
        for turn, answer in enumerate(answers, start=1)
        for message in ({"role": "user", "content": f"plan step-{turn}"}, {"role": "assistant", "content": answer})
    ]


async def test_six_concurrent_turns_through_two_processes_all_end_up_in_the_history(
    built: BuiltBundle, store: Store, runtime_factory: list[RuntimeProcess]
) -> None:
    # a slow model keeps every turn in flight while the others arrive: they must queue, not overwrite. The last
    # one waits for five turns; a wait of 120 s keeps a loaded machine from turning the queue into thread_busy.
    runtimes = [
        _serve(built, store, runtime_factory, OFFLINE_MODEL_LATENCY_MS="150", THREAD_WAIT_SECONDS="120")
        for _ in range(2)
    ]
    bodies = await asyncio.gather(*(_invoke(runtimes[i % 2], f"plan task-{i}", "busy") for i in range(6)))
    assert all(body["ok"] for body in bodies)
    for runtime in runtimes:
        assert runtime.terminate() == 0

    history = _export(built.path, store)[_key("busy")]
    assert sorted(m["content"] for m in history if m["role"] == "user") == [f"plan task-{i}" for i in range(6)]
    assert [m["role"] for m in history] == ["user", "assistant"] * 6
    assert sorted(m["content"] for m in history if m["role"] == "assistant") == sorted(b["answer"] for b in bodies)


async def test_a_redeployed_bundle_keeps_the_threads(
    built: BuiltBundle, tmp_path: Path, runtime_factory: list[RuntimeProcess]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'threads.db'}", {})
    old = _serve(built, store, runtime_factory)
    first = await _invoke(old, "plan the launch of ACME-7", "customer-1")
    assert old.terminate() == 0

    agents = copy_agents(tmp_path / "agents")
    spec = agents / "specs" / "workers" / "pm-agent.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("prompt: ", "prompt: (revised) ", 1), encoding="utf-8")
    (new_bundle,) = write_bundles(agents, tmp_path / "bundles", instance=INSTANCE)
    assert new_bundle.content_hash != built.content_hash

    new = _serve(new_bundle, store, runtime_factory)
    second = await _invoke(new, "and the milestones?", "customer-1")
    assert "ACME-7" in second["answer"]
    assert new.terminate() == 0
    history = _export(new_bundle.path, store)[_key("customer-1")]
    assert [m["content"] for m in history] == [
        "plan the launch of ACME-7",
        first["answer"],
        "and the milestones?",
        second["answer"],
    ]


def test_serve_with_nothing_set_keeps_threads_in_a_file_under_build_state(
    built: BuiltBundle, tmp_path: Path, runtime_factory: list[RuntimeProcess]
) -> None:
    runtime = serve({**built.identity_env(), "STATE_URL": ""}, cwd=tmp_path)
    runtime_factory.append(runtime)
    expected = tmp_path / "build" / "state" / "dev" / f"{built.instance.manifest.metadata.name}.db"
    opened = runtime.wait_for_line(r'"event": "state.opened", "store": "sqlite", "where": "([^"]+)"')
    assert opened.group(1) == str(expected)
    assert expected.is_file()
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600  # the tenants' conversations: owner-only
    assert stat.S_IMODE((tmp_path / "build").stat().st_mode) == 0o700
    assert runtime.terminate() == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://db/x", "STATE_URL='postgres://db/x' is not a state store; allowed: sqlite:///PATH"),
        ("sqlite://relative.db", "is not a state store; allowed:"),
        ("sqlite:///", "a sqlite URL needs a file path"),
        ("dynamodb://a", "'a' is not a DynamoDB table name"),
    ],
)
def test_a_bad_state_url_is_a_start_up_error_naming_the_setting(built: BuiltBundle, url: str, expected: str) -> None:
    runtime = start_runtime({**built.identity_env(), "STATE_URL": url})
    assert runtime.process.wait(timeout=60) == 1
    assert "runtime: cannot start: " in runtime.stderr_text()
    assert expected in runtime.stderr_text()


def test_a_missing_dynamodb_table_is_a_start_up_error(built: BuiltBundle, moto: Any) -> None:
    runtime = start_runtime({**built.identity_env(), **moto.env}, "--state", "dynamodb://no-such-table")
    assert runtime.process.wait(timeout=60) == 1
    assert (
        "runtime: cannot start: STATE_URL=dynamodb://no-such-table: cannot use DynamoDB table 'no-such-table' "
        "in us-east-1 (ResourceNotFoundException); the instance stack creates it"
    ) in runtime.stderr_text()


async def test_a_turn_on_a_thread_busy_elsewhere_for_longer_than_the_wait_is_refused_with_thread_busy(
    built: BuiltBundle, tmp_path: Path, runtime_factory: list[RuntimeProcess]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'threads.db'}", {})
    slow = _serve(built, store, runtime_factory, OFFLINE_MODEL_LATENCY_MS="3000")
    impatient = _serve(built, store, runtime_factory, THREAD_WAIT_SECONDS="0.3")

    async def refused() -> dict[str, Any]:
        await asyncio.sleep(1.0)  # the slow turn holds the thread by now
        async with Client(impatient.url) as client:
            result = await client.call_tool("invoke", {"message": "plan again", "thread_id": "t1"})
        assert result.is_error and result.structured_content is not None
        return dict(result.structured_content)

    answered, busy = await asyncio.gather(_invoke(slow, "plan the roadmap", "t1"), refused())
    assert answered["ok"]
    assert busy["error"]["code"] == "thread_busy"
    assert "thread 't1' has had a turn in progress for over 0.3 s (THREAD_WAIT_SECONDS)" in busy["error"]["message"]
    assert [m["content"] for m in _export(built.path, store)[_key("t1")]] == ["plan the roadmap", answered["answer"]]


async def test_every_dynamodb_item_of_a_thread_carries_the_ttl_from_the_manifest(
    built: BuiltBundle, moto: Any, runtime_factory: list[RuntimeProcess]
) -> None:
    store = _dynamodb_store(moto, "af-test-ttl")
    runtime = _serve(built, store, runtime_factory)
    before = time.time()
    await _invoke(runtime, "plan the roadmap", "t1")
    await _invoke(runtime, "and the milestones?", "t1")
    assert runtime.terminate() == 0
    ttl_seconds = built.instance.manifest.spec.mcp.thread_ttl_hours * 3600
    items = moto.client("dynamodb").scan(TableName="af-test-ttl")["Items"]
    items = [i for i in items if i["PK"]["S"] != USAGE_PARTITION]  # the usage ledger's hours keep their own TTL
    assert {item["PK"]["S"].split("_", 1)[0] for item in items} == {"AF", "CHECKPOINT", "CHUNK"}
    assert len([i for i in items if i["PK"]["S"].startswith("CHECKPOINT_")]) == 1  # the superseded one was pruned
    for item in items:
        assert before + ttl_seconds - 5 <= float(item["ttl"]["N"]) <= time.time() + ttl_seconds + 5, item


async def test_a_store_that_stops_answering_gives_state_unavailable_and_the_process_stays_up(
    built: BuiltBundle, moto: Any, runtime_factory: list[RuntimeProcess]
) -> None:
    store = _dynamodb_store(moto, "af-test-gone")
    runtime = _serve(built, store, runtime_factory)
    moto.client("dynamodb").delete_table(TableName="af-test-gone")
    async with Client(runtime.url) as client:
        result = await client.call_tool("invoke", {"message": "plan the roadmap", "thread_id": "t1"})
        status = await client.call_tool("status", {})
    assert result.is_error and result.structured_content is not None
    error = result.structured_content["error"]
    assert error["code"] == "state_unavailable"
    assert "the thread state store did not answer (ResourceNotFoundException" in error["message"]
    assert status.structured_content is not None and status.structured_content["ready"] is True
    assert runtime.terminate() == 0
