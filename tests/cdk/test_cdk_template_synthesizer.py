"""How an InstanceStack's rendered resources reach its template: the merge (pure), and the two ways of building
(FragmentStackSynthesizer by default, L1 constructs through CfnInclude for cdk-nag) giving the same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from stacks.template_synthesizer import merge_template, template_text
from tests.cdk.cdk_harness import Synthesized, synth

CDK_OWN: dict[str, Any] = {
    "Description": "Agent Foundry instance dev/acme/retail/dev",
    "Resources": {"CDKMetadata": {"Type": "AWS::CDK::Metadata", "Properties": {"Analytics": "v2:..."}}},
    "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}},
    "Rules": {"CheckBootstrapVersion": {"Assertions": []}},
}
FRAGMENT: dict[str, Any] = {
    "Parameters": {"VpcId": {"Type": "AWS::SSM::Parameter::Value<String>"}},
    "Resources": {"RuntimeLogs040130CF": {"Type": "AWS::Logs::LogGroup", "Properties": {}}},
    "Outputs": {"Hostname": {"Value": "dev-acme-retail-dev.example.internal"}},
}


def test_the_fragment_comes_first_in_each_section_as_if_its_constructs_were_made_first() -> None:
    merged = merge_template(CDK_OWN, FRAGMENT)
    assert list(merged) == ["Description", "Parameters", "Resources", "Outputs", "Rules"]
    assert list(merged["Parameters"]) == ["VpcId", "BootstrapVersion"]
    assert list(merged["Resources"]) == ["RuntimeLogs040130CF", "CDKMetadata"]


def test_the_merge_changes_neither_input() -> None:
    own, fragment = json.loads(json.dumps(CDK_OWN)), json.loads(json.dumps(FRAGMENT))
    merge_template(own, fragment)
    assert (own, fragment) == (CDK_OWN, FRAGMENT)


def test_a_logical_id_in_both_the_fragment_and_cdks_template_is_refused() -> None:
    fragment = {"Resources": {"CDKMetadata": {"Type": "AWS::SNS::Topic", "Properties": {}}}}
    with pytest.raises(ValueError, match=r"both define Resources \['CDKMetadata'\]"):
        merge_template(CDK_OWN, fragment)


def test_a_fragment_section_other_than_parameters_resources_outputs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not \['Conditions'\]"):
        merge_template(CDK_OWN, {**FRAGMENT, "Conditions": {"IsProd": {}}})


def test_templates_are_written_as_cdk_writes_them() -> None:
    assert template_text({"A": {"b": [1, "é"]}}) == '{\n "A": {\n  "b": [\n   1,\n   "é"\n  ]\n }\n}'


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthesized, Synthesized]:
    """The example app with path metadata (the CLI's default), built both ways."""
    synthesizer = synth(tmp_path_factory.mktemp("synthesizer") / "cdk.out", path_metadata=True)
    constructs = synth(tmp_path_factory.mktemp("constructs") / "cdk.out", path_metadata=True, instanceConstructs="true")
    return synthesizer, constructs


def template_bytes(app: Synthesized, stack: str) -> bytes:
    return (app.outdir / f"{stack}.template.json").read_bytes()


def test_both_ways_give_every_instance_stack_the_same_template_bytes(both_ways: tuple[Synthesized, ...]) -> None:
    """cdk-nag and the snapshots see the construct way; deployments use the synthesizer way."""
    synthesizer, constructs = both_ways
    assert sorted(synthesizer.stacks.instances) == sorted(constructs.stacks.instances)
    for stack in synthesizer.stacks.instances:
        assert template_bytes(synthesizer, stack) == template_bytes(constructs, stack), stack
        resources = synthesizer.templates[stack]["Resources"]
        paths = {body["Metadata"]["aws:cdk:path"] for body in resources.values()}
        assert f"{stack}/Runtime/Service" in paths


def test_both_ways_give_the_same_asset_manifests(both_ways: tuple[Synthesized, ...]) -> None:
    """Same template bytes, so the same template asset (hash, file, display name) and the same bundle asset."""
    synthesizer, _ = both_ways
    for stack in synthesizer.stacks.instances:
        assets = [json.loads((app.outdir / f"{stack}.assets.json").read_text()) for app in both_ways]
        assert assets[0] == assets[1], stack
        assert f"{stack} Template" in {entry.get("displayName") for entry in assets[0]["files"].values()}


def test_the_template_asset_is_named_by_the_hash_of_the_merged_bytes(both_ways: tuple[Synthesized, ...]) -> None:
    """CDK publishes the template file under this hash; a stale hash would deploy or skip the wrong template."""
    synthesizer, _ = both_ways
    for stack in synthesizer.stacks.instances:
        digest = hashlib.sha256(template_bytes(synthesizer, stack)).hexdigest()
        assets = json.loads((synthesizer.outdir / f"{stack}.assets.json").read_text())["files"]
        assert assets[digest]["source"]["path"] == f"{stack}.template.json"
        url = synthesizer.manifest["artifacts"][stack]["properties"]["stackTemplateAssetObjectUrl"]
        assert url.endswith(f"/{digest}.json")


def test_no_construct_of_an_instance_stack_remains_for_its_resources(both_ways: tuple[Synthesized, ...]) -> None:
    """The point of the synthesizer way: an instance stack is a Stack with its bundle and image assets (plus what
    CDK itself adds at synth)."""
    synthesizer, _ = both_ways
    for stack in synthesizer.stacks.instances.values():
        ours = {c.node.id for c in stack.node.children} - {"BootstrapVersion", "CheckBootstrapVersion", "CDKMetadata"}
        assert ours == {"Bundle", "RuntimeImage"}


def test_construct_mode_writes_its_fragments_content_addressed(both_ways: tuple[Synthesized, ...]) -> None:
    _, constructs = both_ways
    fragments = sorted((Path(constructs.outdir).parent / "cdk-fragments").glob("*.json"))
    assert len(fragments) == len(constructs.stacks.instances)
    for path in fragments:
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
