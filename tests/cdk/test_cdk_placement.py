"""Placement of instances on ALB shards: pure rules, the reviewed file, and `python -m foundry place`."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.cli import main
from foundry.fleet import placement
from foundry.fleet.placement import Slot
from foundry.manifests.problems import ManifestError


def names(count: int, prefix: str = "org/dom/i") -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(count)]


def test_new_instances_fill_the_lowest_shard_with_room_at_the_lowest_free_priority() -> None:
    placed = placement.assign({}, names(5), per_shard=2)
    assert [placed[n] for n in names(5)] == [Slot(0, 1), Slot(0, 2), Slot(1, 1), Slot(1, 2), Slot(2, 1)]


def test_adding_an_instance_never_moves_a_placed_one() -> None:
    before = placement.assign({}, names(250), per_shard=100)
    after = placement.assign(before, [*names(250), "aaa/first/in-sort-order"], per_shard=100)
    assert {n: after[n] for n in before} == before
    assert after["aaa/first/in-sort-order"] == Slot(2, 51)


def test_removing_an_instance_frees_its_slot_and_moves_nobody() -> None:
    before = placement.assign({}, names(6), per_shard=3)
    kept = [n for n in names(6) if n != "org/dom/i0001"]
    after = placement.assign(before, kept, per_shard=3)
    assert after == {n: before[n] for n in kept}
    refilled = placement.assign(after, [*kept, "zzz/new/one"], per_shard=3)
    assert refilled["zzz/new/one"] == before["org/dom/i0001"]


def test_lowering_instances_per_shard_keeps_placed_instances_and_places_new_ones_elsewhere() -> None:
    before = placement.assign({}, names(4), per_shard=4)
    after = placement.assign(before, [*names(4), "zzz/new/one"], per_shard=2)
    assert {n: after[n] for n in before} == before
    assert after["zzz/new/one"].shard == 1


def test_a_shard_never_holds_more_instances_than_an_alb_takes_target_groups() -> None:
    placed = placement.assign({}, names(1000), per_shard=100)
    per_shard: dict[int, int] = {}
    for slot in placed.values():
        per_shard[slot.shard] = per_shard.get(slot.shard, 0) + 1
    assert max(per_shard.values()) == 100 and len(per_shard) == 10
    assert len(set(placed.values())) == 1000


def test_instances_per_shard_over_the_alb_quota_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.100"):
        placement.assign({}, names(1), per_shard=101)


def test_two_instances_on_one_slot_are_reported() -> None:
    reasons = placement.check({"a/b/c": Slot(0, 7), "a/b/d": Slot(0, 7)})
    assert len(reasons) == 1
    assert "a/b/c" in reasons[0] and "a/b/d" in reasons[0] and "priority 7" in reasons[0]


def test_the_placement_file_round_trips(tmp_path: Path) -> None:
    placed = placement.assign({}, names(3), per_shard=100)
    path = placement.placement_path(tmp_path, "dev")
    path.parent.mkdir()
    path.write_bytes(placement.render("dev", placed))
    assert placement.load_placement(tmp_path, "dev") == placed


def test_a_duplicated_slot_in_the_file_names_the_file(tmp_path: Path) -> None:
    path = placement.placement_path(tmp_path, "dev")
    path.parent.mkdir()
    path.write_bytes(placement.render("dev", {"a/b/c": Slot(0, 1), "a/b/d": Slot(0, 1)}))
    with pytest.raises(ManifestError) as caught:
        placement.load_placement(tmp_path, "dev")
    assert str(path) in str(caught.value) and "both have shard 0 priority 1" in str(caught.value)


def test_a_bad_priority_in_the_file_names_line_and_field(tmp_path: Path) -> None:
    path = placement.placement_path(tmp_path, "dev")
    path.parent.mkdir()
    path.write_bytes(placement.render("dev", {"a/b/c": Slot(0, 1)}).replace(b"priority: 1", b"priority: 0"))
    with pytest.raises(ManifestError) as caught:
        placement.load_placement(tmp_path, "dev")
    problem = caught.value.problems[0]
    assert problem.field == "spec.slots[0].priority" and problem.line is not None


def test_an_unplaced_instance_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        placement.require_placed(tmp_path, "dev", {}, ["acme/retail/dev"])
    assert "acme/retail/dev" in str(caught.value)
    assert "python -m foundry place --environment dev" in str(caught.value)


def test_the_example_fleet_is_placed(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["place", "--check", "--agents-dir", str(repo_root / "agents")]) == 0
    assert "up to date" in capsys.readouterr().out


def test_place_check_fails_on_a_new_instance_and_place_writes_its_slot(
    agents_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    placement_file = placement.placement_path(agents_copy, "dev")
    before = placement.load_placement(agents_copy, "dev")
    placement_file.write_bytes(placement.render("dev", {k: v for k, v in before.items() if k != "acme/retail/dev"}))
    assert main(["place", "--check", "--agents-dir", str(agents_copy)]) == 1
    assert "would place dev/acme/retail/dev" in capsys.readouterr().out
    assert main(["place", "--agents-dir", str(agents_copy)]) == 0
    after = placement.load_placement(agents_copy, "dev")
    assert after["default-org/default-domain/dev"] == before["default-org/default-domain/dev"]
    assert "acme/retail/dev" in after
    assert main(["place", "--check", "--agents-dir", str(agents_copy)]) == 0
