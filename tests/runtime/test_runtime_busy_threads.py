"""The busy-thread policies across tasks: two real runtime processes on one store (a SQLite file; a DynamoDB table
of moto's server) and one thread. The first process's model is slow; a turn there streams its progress, so the test
knows when that turn is inside its model call (holding the thread) before it sends the second message to the other
process. What each policy must give:

- enqueue: the second turn waits, both are answered, the history holds both in order;
- reject: the second is refused with thread_busy at once, the first is answered and alone in the history;
- interrupt: the second is answered without waiting, the first fails with `interrupted`, and only the second is in
  the history (nothing of the interrupted turn is written).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from runtime.auth import anonymous_caller, thread_key
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    copy_agents,
    runtime_env,
    serve,
    write_bundles,
)
from tests.runtime.state_table import create_state_table

pytestmark = pytest.mark.slow
INSTANCE = "default-org/default-domain/dev"
SLOW_MODEL_MS = 4000


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalAws]:
    with moto_server() as local:
        yield local


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltBundle]:
    """The example dev instance once per policy, set the way a user sets it: the template's `mcp.on_busy`."""
    built = {}
    for policy in ("enqueue", "reject", "interrupt"):
        agents = copy_agents(tmp_path_factory.mktemp(policy) / "agents")
        template = agents / "manifests" / "manifest.instance-template.yaml"
        text = template.read_text()
        assert "    on_busy: enqueue\n" in text
        template.write_text(text.replace("    on_busy: enqueue\n", f"    on_busy: {policy}\n"))
        (built[policy],) = write_bundles(agents, tmp_path_factory.mktemp(f"{policy}-bundle"), INSTANCE)
    return built


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'threads.db'}", {}
    moto: LocalAws = request.getfixturevalue("moto")
    name = f"af-busy-{tmp_path.name[-20:].strip('_')}"
    create_state_table(moto.client("dynamodb"), name)
    return f"dynamodb://{name}", dict(moto.env)


def _pair(
    built: BuiltBundle, store: tuple[str, dict[str, str]], factory: list[RuntimeProcess]
) -> tuple[RuntimeProcess, RuntimeProcess]:
    """A process whose model takes SLOW_MODEL_MS, and a fast one, on the same store."""
    url, env = store
    base = {**built.identity_env(), **env, "STATE_URL": url}
    slow = serve({**base, "OFFLINE_MODEL_LATENCY_MS": str(SLOW_MODEL_MS), "OFFLINE_MODEL_SLOW_AGENTS": "pm-agent"})
    factory.append(slow)
    fast = serve(base)
    factory.append(fast)
    return slow, fast


async def _first_turn(runtime: RuntimeProcess, in_model: asyncio.Event) -> dict[str, Any]:
    """A turn that streams, setting `in_model` once its worker node (the slow model call) has started."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and json.loads(message) == {"event": "node", "node": "pm-agent", "agent_id": "pm-agent"}:
            in_model.set()

    async with Client(runtime.url) as client:
        result = await client.call_tool(
            "invoke", {"message": "plan the first step", "thread_id": "shared"}, progress_callback=on_progress
        )
    assert result.structured_content is not None
    return dict(result.structured_content)


async def _second_turn(runtime: RuntimeProcess, in_model: asyncio.Event) -> tuple[dict[str, Any], float]:
    await asyncio.wait_for(in_model.wait(), timeout=30)
    started = time.perf_counter()
    async with Client(runtime.url) as client:
        result = await client.call_tool("invoke", {"message": "plan the second step", "thread_id": "shared"})
    assert result.structured_content is not None
    return dict(result.structured_content), time.perf_counter() - started


async def _both(slow: RuntimeProcess, fast: RuntimeProcess) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """Both turns' answers, how long the second took, and how long the first went on after its model call began."""
    in_model = asyncio.Event()
    first_done: list[float] = []

    async def first_turn() -> dict[str, Any]:
        answer = await _first_turn(slow, in_model)
        first_done.append(time.perf_counter())
        return answer

    async def second_turn() -> tuple[dict[str, Any], float, float]:
        await asyncio.wait_for(in_model.wait(), timeout=30)
        began = time.perf_counter()
        answer, waited = await _second_turn(fast, in_model)
        return answer, waited, began

    first, (second, waited, began) = await asyncio.gather(first_turn(), second_turn())
    return first, second, waited, first_done[0] - began


def _history(built: BuiltBundle, store: tuple[str, dict[str, str]]) -> list[str]:
    url, env = store
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "state", "export", "--bundle", str(built.path), "--state", url],
        cwd=REPO_ROOT,
        env=runtime_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key = thread_key(anonymous_caller(INSTANCE.split("/")[0]), "shared")
    threads = {t["key"]: t["messages"] for t in map(json.loads, done.stdout.splitlines())}
    return [m["content"] for m in threads.get(key, [])]


async def test_enqueue_makes_the_second_turn_wait_for_the_first_and_keeps_both(
    bundles: dict[str, BuiltBundle], store: tuple[str, dict[str, str]], runtime_factory: list[RuntimeProcess]
) -> None:
    built = bundles["enqueue"]
    first, second, _, _ = await _both(*_pair(built, store, runtime_factory))
    assert first["ok"] and second["ok"], (first, second)
    assert "plan the first step" in second["answer"]  # it ran after the first and read it from the history
    assert _history(built, store) == [
        "plan the first step", first["answer"], "plan the second step", second["answer"],
    ]  # fmt: skip


async def test_reject_refuses_the_second_turn_at_once_and_the_first_is_answered(
    bundles: dict[str, BuiltBundle], store: tuple[str, dict[str, str]], runtime_factory: list[RuntimeProcess]
) -> None:
    built = bundles["reject"]
    first, second, waited, _ = await _both(*_pair(built, store, runtime_factory))
    assert first["ok"], first
    assert not second["ok"] and second["error"]["code"] == "thread_busy", second
    assert "busy policy is reject" in second["error"]["message"]
    assert waited < SLOW_MODEL_MS / 1000 / 2  # refused at once, not after the first turn
    assert _history(built, store) == ["plan the first step", first["answer"]]


async def test_interrupt_stops_the_running_turn_writes_nothing_of_it_and_answers_the_new_one(
    bundles: dict[str, BuiltBundle], store: tuple[str, dict[str, str]], runtime_factory: list[RuntimeProcess]
) -> None:
    built = bundles["interrupt"]
    first, second, waited, first_went_on = await _both(*_pair(built, store, runtime_factory))
    assert second["ok"], second
    assert waited < SLOW_MODEL_MS / 1000 / 2  # it did not wait for the slow turn
    assert "plan the first step" not in second["answer"]  # the interrupted turn left no history behind
    assert not first["ok"] and first["error"]["code"] == "interrupted", first
    assert "interrupted by a newer message" in first["error"]["message"]
    # the interrupted turn stopped: its answer came well before its model call would have ended
    assert first_went_on < SLOW_MODEL_MS / 1000 / 2
    assert _history(built, store) == ["plan the second step", second["answer"]]
