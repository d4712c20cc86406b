"""Every example instance, served by a real runtime process secured by a local token issuer, and called over
streamable HTTP with the SDK client presenting a token the issuer signed for that instance."""

from __future__ import annotations

import httpx
import pytest

from oauth_resource.dev_issuer import RunningIssuer
from tests.runtime.runtime_harness import BuiltBundle, RuntimeProcess, auth_env, mcp_client, serve

pytestmark = pytest.mark.slow

INSTANCE_IDS = [
    "dev/acme/retail/dev",
    "dev/default-org/default-domain/dev",
    "prod/acme/retail/us-east-1",
    "prod/globex/billing/eu-west-1",
    "prod/globex/support/tenant-123",
    "staging/acme/retail/us-east-1",
    "staging/globex/support/us-east-1",
]


def _pick(bundles: list[BuiltBundle], key: str) -> BuiltBundle:
    for built in bundles:
        if f"{built.instance.environment}/{built.instance.key.selector}" == key:
            return built
    raise AssertionError(f"no example bundle {key}; have {[b.instance.key.selector for b in bundles]}")


def test_the_example_fleet_has_the_seven_instances_this_module_covers(example_bundles: list[BuiltBundle]) -> None:
    assert sorted(f"{b.instance.environment}/{b.instance.key.selector}" for b in example_bundles) == INSTANCE_IDS


@pytest.mark.parametrize("key", INSTANCE_IDS)
async def test_invoke_runs_the_whole_graph_of_each_example_instance(
    key: str, example_bundles: list[BuiltBundle], runtime_factory: list[RuntimeProcess], local_issuer: RunningIssuer
) -> None:
    built = _pick(example_bundles, key)
    runtime = serve({**built.identity_env(), **auth_env(local_issuer.url)})
    runtime_factory.append(runtime)
    nodes = {a.role: a.agent_id for a in built.instance.manifest.spec.system_agents}
    workers = sorted(a.agent_id for a in built.instance.manifest.spec.custom_agents)
    target = workers[-1]
    keyword = built.instance.specs[
        next(a.spec_path for a in built.instance.manifest.spec.custom_agents if a.agent_id == target)
    ].spec.routing.keywords[0]  # type: ignore[union-attr]

    async with httpx.AsyncClient(base_url=runtime.base) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "draining": False}  # nothing internal for the load balancer

    async with mcp_client(runtime.url, built.token(local_issuer.issuer)) as client:
        result = await client.call_tool("invoke", {"message": f"please help: {keyword} for ACME-42", "thread_id": "t1"})
        described = await client.call_tool("describe", {})

    assert not result.is_error, result
    body = result.structured_content
    assert body is not None
    assert body["ok"] is True
    assert body["workers"] == [target]
    assert body["agents"] == [
        nodes["io"],
        nodes["governance"],
        nodes["context"],
        nodes["supervisor"],
        target,
        nodes["coherence"],
        nodes["observability"],
        nodes["io"],
    ]
    assert [step["node"] for step in body["trace"]] == [
        "io_in", "governance", "context", "supervisor", target, "coherence", "observability", "io_out",
    ]  # fmt: skip
    assert all(step["status"] == "ok" and step["ms"] >= 0 for step in body["trace"])
    assert f"[{target}]" in body["answer"] and "ACME-42" in body["answer"]
    assert len(body["trace_id"]) == 32

    info = described.structured_content
    assert info is not None
    assert info["bundle_hash"] == built.content_hash
    assert info["identity"]["instance_id"] == built.instance.key.instance_id
    assert sorted(w["agent_id"] for w in info["workers"]) == workers

    assert runtime.terminate() == 0
