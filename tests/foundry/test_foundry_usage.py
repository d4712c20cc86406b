"""`python -m foundry usage` and `foundry.get_instance_usage` against served instances: real runtime processes
(secured by a local issuer, calling a local Bedrock Converse endpoint through boto3) whose stacks in moto's
CloudFormation name their endpoints, one instance whose endpoint is down, ECS Container Insights figures in moto's
CloudWatch for one instance, and prices of the test's own in a copied platform.yaml; every figure is checked
against what the invokes reported and the prices, computed here by hand. Also the pricing rules (pure)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.deploy.deployer import Deployer
from foundry.deploy.locks import InstanceLocks
from foundry.manifests import naming
from foundry.manifests.platform_settings import ModelPrices, PricingSettings
from foundry.mcp.server import FoundryConfig, build_server
from foundry.plan.compute_cost import tasks_hour_price
from foundry.usage.cost import estimated_compute, model_cost
from instance_contract.schema import DeploySettings
from instance_contract.usage import ModelUsage
from oauth_resource.dev_issuer import RunningIssuer, serve_issuer
from runtime.auth import READ_SCOPE
from tests.foundry.fake_bedrock import fake_bedrock
from tests.foundry.manifest_edits import edit
from tests.mcp.foundry_mcp_local_aws import LocalAws, moto_server
from tests.mcp.foundry_mcp_process_helpers import free_port
from tests.runtime.runtime_harness import (
    REPO_ROOT,
    BuiltBundle,
    RuntimeProcess,
    auth_env,
    copy_agents,
    mcp_client,
    serve,
    write_bundles,
)

UTC = datetime.UTC
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PRICE_IN, PRICE_OUT, VCPU_HOUR, GB_HOUR = 2.0, 10.0, 0.05, 0.005
"""The test's own prices (USD per million tokens; per vCPU-hour and GB-hour), written into platform.yaml."""
SERVED_A, SERVED_B, DOWN = "acme/retail/us-east-1", "globex/billing/eu-west-1", "globex/support/tenant-123"
"""The prod instances (each 2 tasks of 1 vCPU and 2 GB minimum, on demand)."""
TASK_HOUR = 1 * VCPU_HOUR + 2 * GB_HOUR


# --- pricing rules (pure) -------------------------------------------------------------------------------------


def test_a_model_without_a_price_costs_unknown_and_the_offline_provider_costs_nothing() -> None:
    pricing = PricingSettings(models={HAIKU: ModelPrices(input_per_million=0.25, output_per_million=1.25)})
    priced = model_cost(
        ModelUsage(provider="bedrock", model=HAIKU, calls=2, input_tokens=4000, output_tokens=1000), pricing
    )
    assert priced.cost == pytest.approx(4000 * 0.25 / 1e6 + 1000 * 1.25 / 1e6)
    unknown = model_cost(ModelUsage(provider="bedrock", model="meta.llama3-8b", input_tokens=10), pricing)
    assert unknown.cost is None
    offline = model_cost(ModelUsage(provider="offline", model=HAIKU, input_tokens=10**6), pricing)
    assert offline.cost == 0.0


def test_platform_yaml_ships_token_prices_for_the_bedrock_models_people_use() -> None:
    from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet

    models = load_fleet(DEFAULT_AGENTS_DIR).tree.platform.model.spec.pricing.models
    assert models[HAIKU] == ModelPrices(input_per_million=0.25, output_per_million=1.25)
    assert "amazon.nova-lite-v1:0" in models


def _deploy(**changes: Any) -> DeploySettings:
    return DeploySettings.model_validate({"cpu": 512, "memory": 1024, "min_tasks": 2, "max_tasks": 4, **changes})


def test_the_compute_estimate_is_the_minimum_tasks_over_the_elapsed_hours_and_nothing_when_paused() -> None:
    since = datetime.datetime(2026, 12, 1, tzinfo=UTC)
    until = datetime.datetime(2027, 1, 1, tzinfo=UTC)
    now = datetime.datetime(2026, 12, 2, 12, tzinfo=UTC)  # 36 hours into the month
    pricing = PricingSettings()
    active = estimated_compute(_deploy(), "on_demand", pricing, since=since, until=until, now=now, why="test")
    assert (active.source, active.task_hours, active.vcpu_hours, active.gb_hours) == ("estimate", 72, 36, 72)
    assert active.cost == pytest.approx(72 * (0.5 * 0.04048 + 1 * 0.004445))
    paused = estimated_compute(
        _deploy(state="paused"), "on_demand", pricing, since=since, until=until, now=now, why="t"
    )
    assert (paused.task_hours, paused.cost) == (0, 0)
    assert "paused" in paused.note


def test_spot_with_fallback_prices_the_first_task_on_demand_and_the_rest_on_spot() -> None:
    pricing = PricingSettings()
    on_demand = 0.25 * 0.04048 + 0.5 * 0.004445
    spot = 0.25 * 0.01214 + 0.5 * 0.00133
    assert tasks_hour_price(2.5, 256, 512, "spot_with_fallback", pricing) == pytest.approx(on_demand + 1.5 * spot)
    assert tasks_hour_price(0.5, 256, 512, "spot_with_fallback", pricing) == pytest.approx(0.5 * on_demand)


# --- served instances -----------------------------------------------------------------------------------------


@dataclass
class Served:
    agents: Path
    bundles: dict[str, BuiltBundle]
    runtimes: dict[str, RuntimeProcess]
    reported: dict[str, tuple[int, int, int]]
    """instance -> (requests, input tokens, output tokens) as the invokes' answers reported them."""
    since: datetime.datetime
    until: datetime.datetime
    token_file: Path
    aws: LocalAws
    bedrock_url: str
    all_bundles: list[BuiltBundle]


def _stack_template(endpoint: str, cluster: str, service: str) -> str:
    """The parts of an InstanceStack usage reads: an ECS service and the contract outputs."""
    return json.dumps(
        {
            "Resources": {
                "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": cluster}},
                "TaskDefinition": {
                    "Type": "AWS::ECS::TaskDefinition",
                    "Properties": {
                        "Family": service,
                        "ContainerDefinitions": [{"Name": "runtime", "Image": "runtime:test", "Memory": 2048}],
                    },
                },
                "Service": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {
                        "Cluster": {"Ref": "Cluster"},
                        "ServiceName": service,
                        "TaskDefinition": {"Ref": "TaskDefinition"},
                        "DesiredCount": 2,
                    },
                },
            },
            "Outputs": {
                "ClusterName": {"Value": cluster},
                "ServiceName": {"Value": service},
                "InstanceEndpoint": {"Value": endpoint},
            },
        }
    )


def _priced_agents(root: Path) -> Path:
    agents = copy_agents(root / "agents")

    def bedrock(doc: dict[str, Any]) -> None:
        doc["spec"]["mcp"].update(model_provider="bedrock", bedrock_model_id=HAIKU)

    def prices(doc: dict[str, Any]) -> None:
        doc["spec"]["pricing"] = {
            "taken": "2026-11-30",
            "fargate": {"vcpu_hour": VCPU_HOUR, "gb_hour": GB_HOUR},
            "fargate_spot": {"vcpu_hour": 0.01, "gb_hour": 0.001},
            "models": {HAIKU: {"input_per_million": PRICE_IN, "output_per_million": PRICE_OUT}},
        }

    edit(agents / "manifests" / "manifest.instance-template.yaml", bedrock)
    edit(agents / "platform.yaml", prices)
    return agents


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    with serve_issuer(tmp_path_factory.mktemp("issuer")) as running:
        yield running


async def _invoke(runtime: RuntimeProcess, token: str | None, count: int) -> tuple[int, int, int]:
    """`count` invokes; (requests, input tokens, output tokens) as their answers reported them."""
    totals = [0, 0, 0]
    async with mcp_client(runtime.url, token) as client:
        for i in range(count):
            done = await client.call_tool("invoke", {"message": f"plan release {i} " + "in detail " * i})
            body = done.structured_content
            assert body is not None and body["ok"], body
            assert [m["model"] for m in body["usage"]["models"]] == [HAIKU]
            totals = [
                totals[0] + 1,
                totals[1] + body["usage"]["input_tokens"],
                totals[2] + body["usage"]["output_tokens"],
            ]
    return totals[0], totals[1], totals[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, issuer: RunningIssuer) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("usage")
    agents = _priced_agents(root)
    built = write_bundles(agents, root / "bundles")
    bundles = {b.instance.key.selector: b for b in built if b.instance.environment == "prod"}
    with moto_server() as aws, fake_bedrock() as bedrock_url:
        runtimes: dict[str, RuntimeProcess] = {}
        try:
            for name in (SERVED_A, SERVED_B):
                runtimes[name] = serve(
                    {
                        **bundles[name].identity_env(),
                        **auth_env(issuer.url),
                        "STATE_URL": f"sqlite:///{root / name.replace('/', '.')}.db",
                        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_url,
                        "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1",
                    }
                )
            reported = {
                name: asyncio.run(_invoke(runtimes[name], bundles[name].token(issuer.issuer), count))
                for name, count in ((SERVED_A, 3), (SERVED_B, 2))
            }
            cloudformation = aws.client("cloudformation")
            endpoints = {**{n: r.url for n, r in runtimes.items()}, DOWN: f"http://127.0.0.1:{free_port()}/mcp"}
            for index, (name, endpoint) in enumerate(sorted(endpoints.items())):
                key = bundles[name].instance.key
                cloudformation.create_stack(
                    StackName=naming.instance_stack_name("prod", key),
                    TemplateBody=_stack_template(endpoint, f"af-prod-{index}", f"svc-{index}"),
                )
            now = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            since, until = now - datetime.timedelta(hours=4), now + datetime.timedelta(hours=1)
            a_cluster, a_service = (
                f"af-prod-{sorted(endpoints).index(SERVED_A)}",
                f"svc-{sorted(endpoints).index(SERVED_A)}",
            )
            aws.client("cloudwatch").put_metric_data(
                Namespace="ECS/ContainerInsights",
                MetricData=[
                    {
                        "MetricName": "RunningTaskCount",
                        "Dimensions": [
                            {"Name": "ClusterName", "Value": a_cluster},
                            {"Name": "ServiceName", "Value": a_service},
                        ],
                        "Timestamp": since + datetime.timedelta(hours=hour, minutes=30),
                        "Value": value,
                    }
                    for hour, value in ((0, 2.0), (1, 2.0), (2, 3.0))
                ],
            )
            tokens = {
                name: bundles[name].token(issuer.issuer, subject="ops", scopes=(READ_SCOPE,)) for name in runtimes
            }
            token_file = root / "tokens.json"
            token_file.write_text(json.dumps(tokens))
            yield Served(agents, bundles, runtimes, reported, since, until, token_file, aws, bedrock_url, built)
        finally:
            for runtime in runtimes.values():
                if runtime.process.poll() is None:
                    runtime.process.kill()
                    runtime.process.wait(timeout=10)


def _foundry_usage(served: Served, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "foundry", "usage", "--environment", "prod", "--agents-dir", str(served.agents),
        "--since", served.since.isoformat(), "--until", served.until.isoformat(),
        "--token-file", str(served.token_file), *extra,
    ]  # fmt: skip
    env = {**os.environ, **served.aws.env, "COLUMNS": "200"}
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)


def _elapsed_task_hours(since: datetime.datetime, moment: float) -> float:
    """The estimate's task-hours at `moment`: 2 minimum tasks over the window's elapsed hours."""
    return 2 * (moment - since.timestamp()) / 3600


@pytest.mark.slow
def test_foundry_usage_reports_every_instance_priced_by_hand_and_the_down_one_as_unreachable(served: Served) -> None:
    before = time.time()
    done = _foundry_usage(served, "--json")
    after = time.time()
    assert done.returncode == 1, done.stderr  # partial: one instance is down
    report = json.loads(done.stdout)
    rows = {row["instance"]: row for row in report["instances"]}
    assert list(rows) == sorted([SERVED_A, SERVED_B, DOWN])

    for name in (SERVED_A, SERVED_B):
        requests, tokens_in, tokens_out = served.reported[name]
        row = rows[name]
        assert row["status"] == "ok" and row["usage"]["requests"] == requests
        assert (row["usage"]["input_tokens"], row["usage"]["output_tokens"]) == (tokens_in, tokens_out)
        assert [(m["provider"], m["model"], m["calls"]) for m in row["models"]] == [("bedrock", HAIKU, requests)]
        expected_tokens = tokens_in * PRICE_IN / 1e6 + tokens_out * PRICE_OUT / 1e6
        assert row["token_cost"] == pytest.approx(expected_tokens)
        assert row["total_cost"] == pytest.approx(expected_tokens + row["compute"]["cost"])

    measured = rows[SERVED_A]["compute"]
    assert (measured["source"], measured["task_hours"], measured["vcpu_hours"], measured["gb_hours"]) == (
        "measured", 7.0, 7.0, 14.0,
    )  # fmt: skip
    assert measured["cost"] == pytest.approx(7 * TASK_HOUR)
    for name in (SERVED_B, DOWN):
        estimate = rows[name]["compute"]
        assert estimate["source"] == "estimate" and "no Container Insights data" in estimate["note"]
        low, high = _elapsed_task_hours(served.since, before), _elapsed_task_hours(served.since, after)
        assert low - 1e-6 <= estimate["task_hours"] <= high + 1e-6
        assert estimate["cost"] == pytest.approx(estimate["task_hours"] * TASK_HOUR)

    down = rows[DOWN]
    assert down["status"] == "unreachable" and down["usage"] is None
    assert "could not answer usage" in down["error"] and down["token_cost"] is None and down["total_cost"] is None

    totals = report["totals"]
    all_in = sum(served.reported[n][1] for n in (SERVED_A, SERVED_B))
    all_out = sum(served.reported[n][2] for n in (SERVED_A, SERVED_B))
    assert (totals["requests"], totals["input_tokens"], totals["output_tokens"]) == (5, all_in, all_out)
    assert totals["token_cost"] == pytest.approx(all_in * PRICE_IN / 1e6 + all_out * PRICE_OUT / 1e6)
    compute = sum(rows[n]["compute"]["cost"] for n in rows)
    assert totals["compute_cost"] == pytest.approx(compute)
    assert totals["total_cost"] == pytest.approx(totals["token_cost"] + compute)
    assert totals["complete"] is False and report["partial"] is True
    assert report["pricing_taken"] == "2026-11-30"


@pytest.mark.slow
def test_foundry_usage_prints_a_table_with_the_rows_and_the_totals(served: Served) -> None:
    done = _foundry_usage(served)
    assert done.returncode == 1, done.stderr
    text = done.stdout
    for expected in (SERVED_A, SERVED_B, DOWN, "UNREACHABLE", "total", "(estimate)", "Prices of 2026-11-30"):
        assert expected in text, text
    assert f"{HAIKU}: {served.reported[SERVED_A][1]:,} / {served.reported[SERVED_A][2]:,}" in text


@pytest.mark.slow
def test_a_window_that_ends_before_it_starts_is_a_usage_error(served: Served) -> None:
    argv = [sys.executable, "-m", "foundry", "usage", "--environment", "prod", "--agents-dir", str(served.agents),
            "--since", "2026-11-30", "--until", "2026-11-01"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "until (2026-11-01) must be after since (2026-11-30)" in done.stderr


@pytest.mark.slow
async def test_the_foundry_mcp_tool_answers_one_instances_usage_and_says_when_it_is_down(
    served: Served, tmp_path: Path
) -> None:
    deployer = Deployer(
        repo_root=REPO_ROOT,
        runner=ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT)),
        locks=InstanceLocks(),
        work_root=tmp_path / "deploys",
        clients=served.aws.client,
    )
    server = build_server(
        FoundryConfig(
            repo_root=REPO_ROOT, agents_dir=served.agents, deployer=deployer, clients=served.aws.client, probe=None
        )
    )
    token = json.loads(served.token_file.read_text())[SERVED_B]
    window = {"since": served.since.isoformat(), "until": served.until.isoformat()}
    async with Client(server) as client:
        answered = await client.call_tool(
            "foundry.get_instance_usage",
            {"environment": "prod", "instance": SERVED_B, "instance_token": token, **window},
        )
        without_token = await client.call_tool(
            "foundry.get_instance_usage", {"environment": "prod", "instance": SERVED_B}
        )
        down = await client.call_tool("foundry.get_instance_usage", {"environment": "prod", "instance": DOWN})
        bad = await client.call_tool(
            "foundry.get_instance_usage", {"environment": "prod", "instance": SERVED_B, "since": "yesterday"}
        )
    assert not answered.is_error and answered.structured_content is not None
    row = answered.structured_content
    requests, tokens_in, tokens_out = served.reported[SERVED_B]
    assert (row["status"], row["usage"]["requests"], row["usage"]["input_tokens"]) == ("ok", requests, tokens_in)
    assert row["token_cost"] == pytest.approx(tokens_in * PRICE_IN / 1e6 + tokens_out * PRICE_OUT / 1e6)
    refused = without_token.structured_content
    assert refused is not None and refused["status"] == "refused"
    assert "no token was given for this instance" in refused["error"]
    assert down.structured_content is not None and down.structured_content["status"] == "unreachable"
    bad_text = " ".join(getattr(c, "text", "") for c in bad.content)
    assert bad.is_error and "since 'yesterday' is not an ISO 8601 date" in bad_text


@pytest.mark.slow
def test_an_instance_served_locally_is_asked_at_the_endpoint_given_and_without_a_token_where_auth_is_off(
    served: Served, tmp_path: Path
) -> None:
    dev = next(b for b in served.all_bundles if b.instance.key.selector == "default-org/default-domain/dev")
    runtime = serve(
        {
            **dev.identity_env(),
            "STATE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": served.bedrock_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    )  # AUTH_MODE=none, as the dev environment's auth says
    try:
        requests, tokens_in, tokens_out = asyncio.run(_invoke(runtime, None, 2))
        argv = [
            sys.executable, "-m", "foundry", "usage", "--environment", "dev", "--agents-dir", str(served.agents),
            "--endpoint", f"default-org/default-domain/dev={runtime.url}", "--json",
        ]  # fmt: skip
        env = {**os.environ, **served.aws.env}
        done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    finally:
        runtime.terminate()
    assert done.returncode == 1, done.stderr  # the other dev instance is not deployed
    rows = {row["instance"]: row for row in json.loads(done.stdout)["instances"]}
    local = rows["default-org/default-domain/dev"]
    assert (local["status"], local["endpoint"], local["usage"]["requests"]) == ("ok", runtime.url, requests)
    assert (local["usage"]["input_tokens"], local["usage"]["output_tokens"]) == (tokens_in, tokens_out)
    assert local["compute"]["source"] == "estimate" and "a locally served instance" in local["compute"]["note"]
    assert local["token_cost"] == pytest.approx(tokens_in * PRICE_IN / 1e6 + tokens_out * PRICE_OUT / 1e6)
    other = rows["acme/retail/dev"]
    assert (other["status"], other["compute"]["source"], other["token_cost"]) == ("not_deployed", "none", None)
