"""The fleet cache gives the same fleet as reading the files, any change to an input or the code misses it, and
its entries are data that is validated on the way back in: a planted file never runs and is never believed."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from foundry.bundles.archive import build_bundle
from foundry.files.repo import PACKAGE_DIR
from foundry.fleet import cache as fleet_cache
from foundry.fleet.load import load_fleet
from foundry.manifests.problems import ManifestError
from tests.foundry.manifest_edits import edit, entries


def _hashes(agents: Path, cache: Path | None) -> dict[str, str]:
    fleet = load_fleet(agents, cache_dir=cache)
    return {f"{i.environment}/{i.key.selector}": build_bundle(i).content_hash for i in fleet.instances}


def test_a_cached_fleet_equals_the_one_read_from_the_files(agents_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fresh = load_fleet(agents_copy, cache_dir=None)
    first = load_fleet(agents_copy, cache_dir=cache)
    assert len(list(cache.glob("fleet-*.json"))) == 1
    cached = load_fleet(agents_copy, cache_dir=cache)
    assert cached.tree.template.doc.root is None, "the second load came from the cache"
    assert cached.instances == fresh.instances == first.instances
    assert cached.tree.platform.model == fresh.tree.platform.model
    assert sorted(cached.tree.environments) == sorted(fresh.tree.environments)
    assert _hashes(agents_copy, cache) == _hashes(agents_copy, None)


def test_selection_works_on_a_cached_fleet(agents_copy: Path, tmp_path: Path) -> None:
    load_fleet(agents_copy, cache_dir=tmp_path)
    (only,) = load_fleet(agents_copy, cache_dir=tmp_path, instance="globex/support/tenant-123").instances
    assert only.environment == "prod"
    with pytest.raises(ValueError, match="unknown instance"):
        load_fleet(agents_copy, cache_dir=tmp_path, instance="globex/support/nowhere")


def test_editing_a_spec_misses_the_cache(agents_copy: Path, tmp_path: Path) -> None:
    before = _hashes(agents_copy, tmp_path)
    edit(agents_copy / "specs/workers/qa-agent.yaml", lambda d: d["spec"].update(prompt="You test things."))
    after = _hashes(agents_copy, tmp_path)
    assert after != before
    assert after == _hashes(agents_copy, None)


def test_an_invalid_tree_is_never_cached(agents_copy: Path, tmp_path: Path) -> None:
    edit(agents_copy / "manifests/manifest.dev.yaml", lambda d: entries(d)[0].update(version="one"))
    for _ in range(2):
        with pytest.raises(ManifestError, match="semantic version"):
            load_fleet(agents_copy, cache_dir=tmp_path)
    assert not list(tmp_path.glob("fleet-*.json"))


def test_a_corrupt_entry_is_a_miss_not_an_error(agents_copy: Path, tmp_path: Path) -> None:
    load_fleet(agents_copy, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("fleet-*.json")
    entry.write_bytes(b"\x80\x05garbage")
    assert load_fleet(agents_copy, cache_dir=tmp_path).instances == load_fleet(agents_copy, cache_dir=None).instances


def test_the_key_changes_with_the_code_and_the_location(
    agents_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = fleet_cache.cache_key(agents_copy)
    moved = tmp_path / "elsewhere"
    shutil.copytree(agents_copy, moved)
    assert fleet_cache.cache_key(moved) != key
    code = tmp_path / "code"
    shutil.copytree(fleet_cache._PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fleet_cache, "_PACKAGE_DIR", code)
    assert fleet_cache.cache_key(agents_copy) == key
    (code / "manifests/resolve.py").write_text((code / "manifests/resolve.py").read_text() + "\n# a rule changed\n")
    assert fleet_cache.cache_key(agents_copy) != key
    monkeypatch.setattr(fleet_cache, "_PACKAGE_DIR", PACKAGE_DIR)
    contract = tmp_path / "contract"
    shutil.copytree(fleet_cache._CONTRACT_DIR, contract, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fleet_cache, "_CONTRACT_DIR", contract)
    assert fleet_cache.cache_key(agents_copy) == key
    (contract / "schema.py").write_text((contract / "schema.py").read_text() + "\n# a shared model changed\n")
    assert fleet_cache.cache_key(agents_copy) != key, "the models the runtime shares are part of the rules"


def test_old_entries_are_pruned(agents_copy: Path, tmp_path: Path) -> None:
    for index in range(fleet_cache.KEEP_ENTRIES + 3):
        prompt = f"version {index}"
        edit(agents_copy / "specs/workers/qa-agent.yaml", lambda d: d["spec"].update(prompt=prompt))  # noqa: B023
        load_fleet(agents_copy, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("fleet-*.json"))) == fleet_cache.KEEP_ENTRIES


class _Exploit:
    """Unpickling this creates `marker`: what a planted pickle could do with the deploy credentials instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_is_never_executed_and_the_fleet_is_read_from_the_files(
    agents_copy: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "pwned"
    key = fleet_cache.cache_key(agents_copy)
    payload = pickle.dumps(_Exploit(marker))
    for name in (f"fleet-{key}.pickle", f"fleet-{key}.json"):
        (cache / name).write_bytes(payload)
    fleet = load_fleet(agents_copy, cache_dir=cache)
    assert not marker.exists(), "the cache file was run as code"
    assert fleet.tree.template.doc.root is not None, "the planted entry was a miss: the files were read"
    assert fleet.instances == load_fleet(agents_copy, cache_dir=None).instances
    assert not list(cache.glob("fleet-*.pickle")), "leftover pickles are removed when the entry is rewritten"
    assert json.loads((cache / f"fleet-{key}.json").read_bytes())["key"] == key


def _entry(cache: Path) -> tuple[Path, dict[str, Any]]:
    (path,) = cache.glob("fleet-*.json")
    data = json.loads(path.read_bytes())
    assert isinstance(data, dict)
    return path, data


def test_an_entry_whose_models_do_not_validate_is_a_miss(agents_copy: Path, tmp_path: Path) -> None:
    load_fleet(agents_copy, cache_dir=tmp_path)
    path, data = _entry(tmp_path)
    data["instances"][0]["manifest"]["spec"]["deploy"]["cpu"] = 3  # not a Fargate size: the schema refuses it
    data["instances"][0]["manifest"]["spec"]["stack_name"] = "planted"
    path.write_text(json.dumps(data))
    fleet = load_fleet(agents_copy, cache_dir=tmp_path)
    assert fleet.tree.template.doc.root is not None, "the tampered entry was not believed"
    assert "planted" not in {i.manifest.spec.stack_name for i in fleet.instances}
    assert fleet.instances == load_fleet(agents_copy, cache_dir=None).instances


def test_an_entry_naming_another_key_or_directory_is_a_miss(agents_copy: Path, tmp_path: Path) -> None:
    load_fleet(agents_copy, cache_dir=tmp_path)
    path, data = _entry(tmp_path)
    for field, value in (("key", "0" * 64), ("root", "/elsewhere/agents")):
        path.write_text(json.dumps({**data, field: value}))
        assert load_fleet(agents_copy, cache_dir=tmp_path).tree.template.doc.root is not None
