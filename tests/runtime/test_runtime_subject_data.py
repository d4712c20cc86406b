"""Data-subject requests: a secured runtime process (real tokens from a local issuer) keeps threads of two
subjects in a SQLite file or a DynamoDB table of moto's server; `python -m runtime state export|delete --org --sub
[--thread]` finds them by the subjects' own names, erases every trace of one (the raw store is read afterwards) and
says 0 as 0, with a non-zero exit. The same through the instance's own MCP tools, which need agentfoundry/admin.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oauth_resource.dev_issuer import RunningIssuer
from runtime.auth import ADMIN_SCOPE, INSTANCE_SCOPES, READ_SCOPE, Caller, thread_key
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    auth_env,
    mcp_client,
    runtime_env,
    serve,
)
from tests.runtime.state_table import create_state_table

pytestmark = pytest.mark.slow
INSTANCE = "default-org/default-domain/dev"
ORG = "default-org"


@dataclass(frozen=True)
class Store:
    kind: str
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


@pytest.fixture
def built(example_bundles: list[BuiltBundle]) -> BuiltBundle:
    return next(b for b in example_bundles if b.instance.key.selector == INSTANCE)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", f"sqlite:///{tmp_path / 'threads.db'}", {})
    moto: LocalAws = request.getfixturevalue("moto")
    name = f"af-subject-{tmp_path.name[-20:].strip('_')}"
    url = create_state_table(moto.client("dynamodb"), name)
    return Store("dynamodb", url, dict(moto.env))


@pytest.fixture
def runtime(
    built: BuiltBundle, store: Store, local_issuer: RunningIssuer, runtime_factory: list[RuntimeProcess]
) -> RuntimeProcess:
    process = serve({**built.identity_env(), **auth_env(local_issuer.url), **store.env, "STATE_URL": store.url})
    runtime_factory.append(process)
    return process


async def invoke(runtime: RuntimeProcess, token: str, message: str, thread: str) -> None:
    async with mcp_client(runtime.url, token) as client:
        result = await client.call_tool("invoke", {"message": message, "thread_id": thread})
    assert not result.is_error, result.content


async def converse(runtime: RuntimeProcess, built: BuiltBundle, issuer: RunningIssuer) -> None:
    """alice writes two threads, bob one (with the same thread id as one of alice's)."""
    alice, bob = (built.token(issuer.issuer, subject=s) for s in ("alice", "bob"))
    await invoke(runtime, alice, "plan the launch of ACME-7", "t1")
    await invoke(runtime, alice, "plan the hiring", "t2")
    await invoke(runtime, bob, "plan bob's holiday", "t1")


def state(built: BuiltBundle, store: Store, *arguments: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "state", *arguments, "--bundle", str(built.path), "--state", store.url],
        cwd=REPO_ROOT,
        env=runtime_env(store.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def keys_in_store(store: Store, moto: LocalAws | None) -> str:
    """Everything the store holds, as one text to search for a thread's key."""
    if store.kind == "sqlite":
        with sqlite3.connect(store.url.removeprefix("sqlite:///")) as db:
            rows = [*db.execute("SELECT thread_id FROM checkpoints"), *db.execute("SELECT * FROM af_threads")]
            rows += list(db.execute("SELECT thread_id FROM writes"))
        return json.dumps([list(map(str, row)) for row in rows])
    assert moto is not None
    items = moto.client("dynamodb").scan(TableName=store.url.removeprefix("dynamodb://"))["Items"]
    return json.dumps(items, default=str)


def key(subject: str, thread: str) -> str:
    return thread_key(Caller(ORG, subject, frozenset()), thread)


async def test_state_export_and_delete_find_one_subjects_threads_by_their_own_names_and_erase_every_trace(
    built: BuiltBundle,
    store: Store,
    runtime: RuntimeProcess,
    local_issuer: RunningIssuer,
    request: pytest.FixtureRequest,
) -> None:
    await converse(runtime, built, local_issuer)
    moto = request.getfixturevalue("moto") if store.kind == "dynamodb" else None

    code, threads, _ = state(built, store, "export", "--org", ORG, "--sub", "alice")
    assert code == 0
    assert sorted(t["thread_id"] for t in threads) == ["t1", "t2"]
    assert {(t["organization"], t["subject"]) for t in threads} == {(ORG, "alice")}
    by_thread = {t["thread_id"]: t for t in threads}
    assert by_thread["t1"]["messages"][0] == {"role": "user", "content": "plan the launch of ACME-7"}
    assert by_thread["t1"]["key"] == key("alice", "t1")
    code, only, _ = state(built, store, "export", "--org", ORG, "--sub", "alice", "--thread", "t2")
    assert (code, [t["thread_id"] for t in only]) == (0, ["t2"])

    code, answer, _ = state(built, store, "delete", "--org", ORG, "--sub", "alice", "--thread", "t1")
    assert (code, answer) == (0, [{"erased": 1, "organization": ORG, "subject": "alice", "thread_id": "t1"}])
    code, answer, _ = state(built, store, "delete", "--org", ORG, "--sub", "alice")
    assert (code, answer[0]["erased"]) == (0, 1)
    everything = keys_in_store(store, moto)
    assert key("alice", "t1") not in everything and key("alice", "t2") not in everything
    assert key("bob", "t1") in everything

    code, answer, stderr = state(built, store, "delete", "--org", ORG, "--sub", "alice")
    assert (code, answer[0]["erased"]) == (1, 0)
    assert "runtime state delete: no threads of subject 'alice' in organization 'default-org'" in stderr
    code, threads, stderr = state(built, store, "export", "--org", ORG, "--sub", "alice")
    assert (code, threads) == (1, [])
    assert "no threads of subject 'alice'" in stderr
    code, threads, _ = state(built, store, "export", "--org", ORG, "--sub", "bob")
    assert (code, [(t["thread_id"], t["messages"][0]["content"]) for t in threads]) == (
        0,
        [("t1", "plan bob's holiday")],
    )
    assert runtime.terminate() == 0


def test_delete_needs_the_subject_not_a_bare_thread_id(built: BuiltBundle, tmp_path: Path) -> None:
    store = Store("sqlite", f"sqlite:///{tmp_path / 'threads.db'}", {})
    code, _, stderr = state(built, store, "delete", "--thread", "t1")
    assert code == 2
    assert "--org and --sub go together, and --thread needs both" in stderr
    code, _, stderr = state(built, store, "delete")
    assert code == 2 and "--org ORG --sub SUB are required" in stderr


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_the_instances_data_subject_tools_need_the_admin_scope(
    built: BuiltBundle, store: Store, runtime: RuntimeProcess, local_issuer: RunningIssuer
) -> None:
    await converse(runtime, built, local_issuer)
    tenant = built.token(local_issuer.issuer, subject="alice", scopes=INSTANCE_SCOPES)
    operator = built.token(local_issuer.issuer, subject="ops", scopes=(READ_SCOPE, ADMIN_SCOPE))

    async with mcp_client(runtime.url, tenant) as client:
        for tool in ("export_subject_data", "erase_subject_data"):
            refused = await client.call_tool(tool, {"subject": "alice"})
            assert refused.is_error
            assert "insufficient_scope: this call needs the agentfoundry/admin scope" in refused.content[0].text  # type: ignore[union-attr]

    async with mcp_client(runtime.url, operator) as client:
        exported = await client.call_tool("export_subject_data", {"subject": "alice"})
        assert not exported.is_error, exported.content
        body = exported.structured_content
        assert body is not None and (body["organization"], body["subject"]) == (ORG, "alice")
        assert sorted(t["thread_id"] for t in body["threads"]) == ["t1", "t2"]
        erased = await client.call_tool("erase_subject_data", {"subject": "alice", "thread_id": "t2"})
        assert erased.structured_content is not None and erased.structured_content["erased"] == 1
        erased = await client.call_tool("erase_subject_data", {"subject": "alice"})
        assert erased.structured_content is not None and erased.structured_content["erased"] == 1
        again = await client.call_tool("erase_subject_data", {"subject": "alice"})
        assert again.is_error
        assert "erased 0 threads: no threads of subject 'alice' in organization 'default-org'" in again.content[0].text  # type: ignore[union-attr]
        bob = await client.call_tool("export_subject_data", {"subject": "bob"})
        assert bob.structured_content is not None and [t["thread_id"] for t in bob.structured_content["threads"]] == [
            "t1"
        ]
    async with mcp_client(runtime.url, tenant) as client:  # alice's next turn starts afresh
        result = await client.call_tool("invoke", {"message": "plan again", "thread_id": "t1"})
    assert result.structured_content is not None and "ACME-7" not in str(result.structured_content["answer"])
