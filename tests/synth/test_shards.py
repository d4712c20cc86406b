"""Shard keys and assembly sets without the CDK: stable shards, digests that see every byte, refused alterations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foundry.cdk.cloud_assembly import assembly_digest
from foundry.fleet.shards import ShardSelection, shard_of
from foundry.synth.assembly_set import AssemblySet, AssemblySetError, describe_assembly, open_assembly_set


def test_adding_instances_never_moves_another_and_shards_are_balanced():
    names = [f"af-dev-org{i}-dom-inst{i}" for i in range(1000)]
    before = {n: shard_of(n, 4) for n in names}
    more = names + [f"af-dev-new{i}-dom-inst" for i in range(200)]
    after = {n: shard_of(n, 4) for n in more}
    assert all(after[n] == before[n] for n in names)
    sizes = [list(before.values()).count(k) for k in range(4)]
    assert min(sizes) > 200 and max(sizes) < 300, sizes


def test_shard_selection_parses_and_names_a_bad_value():
    assert ShardSelection.parse("platform").platform
    selection = ShardSelection.parse("2/4")
    assert (selection.index, selection.count, str(selection)) == (2, 4, "2/4")
    assert selection.holds("af-x") == (shard_of("af-x", 4) == 2)
    for bad in ("4/4", "a/b", "1", "-1/3"):
        with pytest.raises(ValueError, match=r"-c shard="):
            ShardSelection.parse(bad)


def _assembly(folder: Path, stacks: list[str]) -> None:
    folder.mkdir(parents=True)
    artifacts = {
        s: {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{s}.template.json"}} for s in stacks
    }
    (folder / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    for s in stacks:
        (folder / f"{s}.template.json").write_text(json.dumps({"Resources": {"R": {"Type": "AWS::SNS::Topic"}}}))


def test_a_set_reads_back_and_refuses_an_altered_assembly(tmp_path):
    _assembly(tmp_path / "platform", ["af-dev-platform"])
    _assembly(tmp_path / "shard-1", ["af-dev-a", "af-dev-b"])
    entries = {n: describe_assembly(tmp_path, n) for n in ("platform", "shard-1")}
    AssemblySet(root=tmp_path, assemblies=entries, shards=2, indexed=True).write_index()
    # Locks and timings the CLI and aws-cdk-lib leave do not count.
    (tmp_path / "shard-1" / "read.123.1.lock").write_text("")
    (tmp_path / "shard-1" / "performance-counters.json").write_text("{}")

    opened = open_assembly_set(tmp_path)
    assert opened.stacks == {"af-dev-platform": "platform", "af-dev-a": "shard-1", "af-dev-b": "shard-1"}
    assert opened.assembly_of("af-dev-b") == tmp_path / "shard-1"
    digest = opened.digest
    with pytest.raises(AssemblySetError, match=r"does not hold 1 stack\(s\).*af-dev-c"):
        opened.require(["af-dev-a", "af-dev-c"])

    template = tmp_path / "shard-1" / "af-dev-b.template.json"
    template.write_text(template.read_text() + " ")
    with pytest.raises(AssemblySetError, match=r"shard-1 was altered after it was synthesized"):
        open_assembly_set(tmp_path)
    template.write_text(template.read_text()[:-1])
    assert open_assembly_set(tmp_path).digest == digest


def test_a_plain_cloud_assembly_is_a_set_of_one_and_its_digest_sees_every_file(tmp_path):
    _assembly(tmp_path / "cdk.out", ["af-dev-a"])
    plain = open_assembly_set(tmp_path / "cdk.out")
    assert not plain.indexed and plain.digest == assembly_digest(tmp_path / "cdk.out")
    (tmp_path / "cdk.out" / "asset.abc.tar.gz").write_bytes(b"\0")
    assert open_assembly_set(tmp_path / "cdk.out").digest != plain.digest
    with pytest.raises(AssemblySetError, match=r"is not a cloud assembly"):
        open_assembly_set(tmp_path)
    with pytest.raises(AssemblySetError, match=r"does not exist"):
        open_assembly_set(tmp_path / "missing")
