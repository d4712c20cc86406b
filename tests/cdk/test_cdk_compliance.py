"""Whole-app checks over the example fleet: cdk-nag AwsSolutions, cfn-lint, and syrupy snapshots of every template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from foundry.fleet.load import load_fleet
from stacks.fleet_app import FleetSelection, build_fleet
from tests.cdk.cdk_harness import CDK_CONTEXT, Synthesized, synth

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"
STACKS = sorted(
    [f"af-{env}-platform" for env in ("dev", "prod", "staging")]
    + [i.manifest.spec.stack_name for i in load_fleet(REPO_AGENTS).instances]
)
IMAGE_TAG = re.compile(r"(container-assets-[^\"]*?:)[0-9a-f]{64}")


@pytest.fixture(scope="module")
def nagged(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The whole example app as every synth builds it (cdk-nag's AwsSolutions pack included), with CDK's built-in
    template validation."""
    return synth(tmp_path_factory.mktemp("nag") / "cdk.out", validation=True)


def report(app: Synthesized) -> dict[str, Any]:
    reports = json.loads((app.outdir / "validation-report.json").read_text())["pluginReports"]
    return {r["pluginName"]: r for r in reports}


def test_cdk_nag_finds_no_unacknowledged_problem_in_the_whole_app(nagged: Synthesized) -> None:
    nag = report(nagged).get("AwsSolutions")
    assert nag is not None, "cdk-nag acknowledged findings are always reported; a missing report means it did not run"
    assert nag["violations"] == []


def test_every_cdk_nag_acknowledgement_carries_its_reason(nagged: Synthesized) -> None:
    acknowledged = report(nagged)["AwsSolutions"]["suppressedViolations"]
    assert acknowledged
    for finding in acknowledged:
        assert len(finding["reason"]) >= 40, finding["ruleName"]
    assert {f["ruleName"] for f in acknowledged} <= {
        "AwsSolutions-S1",
        "AwsSolutions-EC23",
        "AwsSolutions-SMG4",
        "AwsSolutions-ECS2",
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-COG2",
        "AwsSolutions-COG8",
        "AwsSolutions-DDB3",
        # the Cognito org-claim trigger reads the organizations' client id parameters under one path
        *(
            f"AwsSolutions-IAM5[Resource::arn:aws:ssm:us-east-1:{account}:parameter/agentfoundry/{env}/platform/"
            "identity/organizations/*]"
            for env, account in (("staging", "222222222222"), ("prod", "333333333333"))
        ),
    }


def test_cdk_nag_checks_the_instance_resources_built_the_default_way(nagged: Synthesized) -> None:
    """Every instance's secrets, task definition and roles are constructs cdk-nag sees (their acknowledgements
    show it ran over them)."""
    acknowledged = report(nagged)["AwsSolutions"]["suppressedViolations"]
    paths = {c["constructPath"] for f in acknowledged for c in f["violatingConstructs"]}
    for stack in STACKS:
        if not stack.endswith("-platform"):
            assert f"{stack}/Instance/TaskDefinition/Resource" in paths, stack


def test_cdk_built_in_template_validation_reports_no_problem(nagged: Synthesized) -> None:
    assert report(nagged).get("CloudFormation Validate", {"violations": []})["violations"] == []


def test_no_construct_warning_is_left_unacknowledged(nagged: Synthesized) -> None:
    assert report(nagged).get("Construct Annotations", {"violations": []})["violations"] == []


@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint_finds_no_error_in_the_template(nagged: Synthesized, stack: str) -> None:
    template = (nagged.outdir / f"{stack}.template.json").read_text()
    errors = [m for m in lint(template, config=ManualArgs(regions=["us-east-1"])) if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(str(m) for m in errors)


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", STACKS)
def test_the_template_matches_its_snapshot(nagged: Synthesized, stack: str, json_snapshot: SnapshotAssertion) -> None:
    """The runtime image's tag is the hash of runtime/ and foundry/ sources: normalised so that only a change of
    the template's own meaning fails this. Bundle keys stay: they change exactly when an instance's manifest does."""
    text = IMAGE_TAG.sub(r"\1<runtime-image-hash>", (nagged.outdir / f"{stack}.template.json").read_text())
    assert json.loads(text) == json_snapshot


def test_an_unacknowledged_cdk_nag_finding_fails_the_synth(tmp_path: Path) -> None:
    """cdk-nag runs in every synth (build_fleet adds it): a user's bucket without TLS enforcement or access logs
    added to an instance stops the synth and is named in the report."""
    app = App(outdir=str(tmp_path / "cdk.out"), context={**CDK_CONTEXT, "instance": "acme/retail/dev"})
    stacks = build_fleet(app, FleetSelection.from_context(app), bundle_dir=tmp_path / "bundles")
    s3.Bucket(stacks.instances["af-dev-acme-retail-dev"].instance, "UserBucket")
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed: ERROR .*AwsSolutions-S10"):
        app.synth()
    nag = {
        r["pluginName"]: r
        for r in json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())["pluginReports"]
    }["AwsSolutions"]
    paths = {c["constructPath"] for v in nag["violations"] for c in v["violatingConstructs"]}
    assert "af-dev-acme-retail-dev/Instance/UserBucket/Resource" in paths
