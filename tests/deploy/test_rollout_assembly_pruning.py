"""What becomes of the cloud assemblies rollouts synthesize into build/rollout-assemblies/: a complete rollout removes
its own, a synthesizing rollout removes its environment's that no unfinished rollout uses, and nothing else goes.
Real folders and a real rollout store on SQLite; the slow test synthesizes with the real CDK CLI (no AWS)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from foundry.cdk.process import ProcessRunner, tool_environment
from foundry.manifests.platform_settings import RolloutPolicy
from foundry.rollout.assembly import own_assembly_dir
from foundry.rollout.assembly_pruning import (
    own_assembly,
    prune_unreferenced,
    removed_note,
    unreferenced_assemblies,
)
from foundry.rollout.command import Targets, _assembly, _release_assembly
from foundry.rollout.scheduler import Rollout, RolloutStatus, new_rollout
from foundry.rollout.state import RolloutStore, change_id
from foundry.state.sqlite_store import SqliteStateStore
from tests.deploy.git_repos import REPO_ROOT, git, new_git_repo

OLD, NEW, OTHER = "0123456789abcdef", "fedcba9876543210", "00000000000000aa"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-foundry-runtime:1.0.0"
CANARY = "acme/retail/dev"


def a_rollout(
    cid: str = NEW,
    *,
    status: RolloutStatus = "complete",
    assembly: Path | None = None,
    synthesized: bool = True,
    revision: str | None = "abc123",
) -> Rollout:
    rollout = new_rollout(
        environment="dev",
        change_id=cid,
        change="test",
        policy=RolloutPolicy(),
        waves=[[CANARY]],
        stacks={CANARY: "af-dev-acme-retail-dev"},
    )
    rollout.status = status
    rollout.assembly = None if assembly is None else str(assembly)
    rollout.assembly_digest, rollout.git_revision, rollout.assembly_synthesized = "sha256:1f", revision, synthesized
    return rollout


def folder(path: Path) -> Path:
    (path / "app").mkdir(parents=True)
    (path / "app" / "manifest.json").write_text("{}")
    return path


# --- choosing: pure ---------------------------------------------------------------------------------------------


def test_only_folders_named_environment_dash_change_id_are_chosen():
    names = [
        f"dev-{OLD}",
        f"dev-eu-{OLD}",  # another environment whose name starts with dev-
        f"staging-{OLD}",
        f"dev-{OLD[:15]}",
        f"dev-{OLD.upper()}",
        f"dev-{OLD}-copy",
        f".dev-{OLD}.synth-4242",  # a synth's staging folder
        "notes",
        f"dev-{NEW}",
    ]
    assert unreferenced_assemblies(names, "dev", []) == [f"dev-{OLD}", f"dev-{NEW}"]
    assert unreferenced_assemblies(names, "dev-eu", []) == [f"dev-eu-{OLD}"]


def test_a_folder_an_unfinished_rollout_references_is_kept_wherever_its_recorded_path_points():
    names = [f"dev-{OLD}", f"dev-{NEW}"]
    here = f"/repo/build/rollout-assemblies/dev-{NEW}"
    assert unreferenced_assemblies(names, "dev", [here]) == [f"dev-{OLD}"]
    # Recorded from another checkout: the folder of the same name stays here too.
    assert unreferenced_assemblies(names, "dev", [f"/machine-a/repo/build/rollout-assemblies/dev-{OLD}"]) == [
        f"dev-{NEW}"
    ]


def test_a_complete_rollout_may_remove_only_the_folder_it_synthesized_where_rollouts_synthesize(tmp_path):
    own = own_assembly_dir(tmp_path, "dev", NEW)
    assert own_assembly(a_rollout(assembly=own)) == own
    assert own_assembly(a_rollout(assembly=own, status="halted")) is None
    assert own_assembly(a_rollout(assembly=own, status="interrupted")) is None
    assert own_assembly(a_rollout(assembly=own, synthesized=False)) is None  # given with --assembly
    assert own_assembly(a_rollout(assembly=tmp_path / "ci-artifact" / f"dev-{NEW}")) is None
    assert own_assembly(a_rollout(assembly=own_assembly_dir(tmp_path, "dev", OLD))) is None  # another change's
    assert own_assembly(a_rollout(assembly=None)) is None


def test_the_removal_note_says_how_the_same_assembly_is_made_again():
    path = Path("/repo/build/rollout-assemblies") / f"dev-{NEW}"
    committed = removed_note(a_rollout(revision="abc123"), path)
    assert f"removed the cloud assembly this rollout synthesized, {path}" in committed
    assert "digest sha256:1f" in committed
    assert "git revision abc123 synthesizes it again byte for byte" in committed
    assert "python -m foundry synth --environment dev --instances" in committed
    dirty = removed_note(a_rollout(revision="abc123-dirty"), path)
    assert "abc123 with uncommitted changes: only that revision with the same changes" in dirty
    assert "git revision was not recorded: only the same files" in removed_note(a_rollout(revision=None), path)


# --- removing: real folders, a real store ----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> RolloutStore:
    return RolloutStore(SqliteStateStore(tmp_path / "state.db"))


def recorded(store: RolloutStore, rollout: Rollout) -> None:
    with store.hold("dev", "a test"):
        store.save(rollout)


def test_pruning_removes_unreferenced_folders_and_keeps_what_an_unfinished_rollout_uses(tmp_path, store):
    root = tmp_path / "repo" / "build" / "rollout-assemblies"
    halted = folder(root / f"dev-{NEW}")
    left = folder(root / f"dev-{OLD}")
    others = [folder(root / f"staging-{OLD}"), folder(root / "notes"), folder(root / f".dev-{OLD}.synth-7")]
    outside = folder(tmp_path / "elsewhere")
    (root / f"dev-{OTHER}").symlink_to(outside, target_is_directory=True)
    (root / f"dev-{'1' * 16}").write_text("a file, not a folder")
    recorded(store, a_rollout(status="halted", assembly=halted))

    notes = prune_unreferenced(root, "dev", store)

    assert not left.exists()
    assert halted.is_dir() and all(o.is_dir() for o in others)
    assert (root / f"dev-{OTHER}").is_symlink() and (outside / "app" / "manifest.json").is_file()
    assert (root / f"dev-{'1' * 16}").is_file()
    assert notes == [
        f"removed 1 cloud assembly of dev that no unfinished rollout uses (left by finished, abandoned or crashed "
        f"rollouts) from {root}: dev-{OLD}"
    ]

    recorded(store, a_rollout(status="complete", assembly=halted))  # once complete, nothing needs it
    assert prune_unreferenced(root, "dev", store) and not halted.exists()
    assert prune_unreferenced(root, "dev", store) == []  # nothing left to say
    assert prune_unreferenced(tmp_path / "no-such-folder", "dev", store) == []


def test_an_unreadable_state_prunes_nothing_and_says_so(tmp_path, store):
    root = tmp_path / "build" / "rollout-assemblies"
    left = folder(root / f"dev-{OLD}")
    with store.hold("dev", "a test"):
        assert store.lease is not None
        store.lease.write(b"not a rollout")
    [note] = prune_unreferenced(root, "dev", store)
    assert left.is_dir()
    assert note.startswith(f"the cloud assemblies earlier rollouts of dev left in {root} were not pruned: ")
    assert "is not a readable rollout state" in note


def failing_for(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rmtree refuses `path` (this test runs as root, for whom no permission stops a removal)."""
    real: Callable[..., Any] = shutil.rmtree

    def rmtree(target: Path, *args: Any, **kwargs: Any) -> None:
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(path))
        real(target, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)


def test_a_folder_that_cannot_be_removed_is_a_note_and_the_others_still_go(tmp_path, store, monkeypatch):
    root = tmp_path / "build" / "rollout-assemblies"
    stuck, left = folder(root / f"dev-{OLD}"), folder(root / f"dev-{OTHER}")
    failing_for(stuck, monkeypatch)
    notes = prune_unreferenced(root, "dev", store)
    assert not left.exists() and stuck.is_dir()
    assert notes[0].endswith(f"from {root}: dev-{OTHER}")
    assert notes[1] == (
        f"the cloud assembly {stuck}, which no unfinished rollout uses, could not be removed: "
        f"[Errno 13] Permission denied: '{stuck}'"
    )


def test_a_complete_rollout_removes_its_own_assembly_and_keeps_the_note_in_its_state(tmp_path, store):
    own = folder(own_assembly_dir(tmp_path, "dev", NEW))
    rollout = a_rollout(assembly=own)
    with store.hold("dev", "a test"):
        _release_assembly(store, rollout)
    assert not own.exists()
    saved = store.load("dev")
    assert saved is not None and saved.notes == [removed_note(rollout, own)]
    assert saved.assembly == str(own) and saved.assembly_digest == "sha256:1f"  # what it was, for the record


@pytest.mark.parametrize(
    ("status", "synthesized"), [("halted", True), ("interrupted", True), ("running", True), ("complete", False)]
)
def test_a_halted_rollouts_assembly_and_a_given_one_stay(tmp_path, store, status, synthesized):
    own = folder(own_assembly_dir(tmp_path, "dev", NEW))
    rollout = a_rollout(assembly=own, status=status, synthesized=synthesized)
    with store.hold("dev", "a test"):
        _release_assembly(store, rollout)
    assert (own / "app" / "manifest.json").is_file() and rollout.notes == []


def test_a_complete_rollouts_assembly_that_cannot_be_removed_is_a_note_not_a_failure(tmp_path, store, monkeypatch):
    own = folder(own_assembly_dir(tmp_path, "dev", NEW))
    failing_for(own, monkeypatch)
    rollout = a_rollout(assembly=own)
    with store.hold("dev", "a test"):
        _release_assembly(store, rollout)
    assert own.is_dir() and rollout.status == "complete"
    [note] = rollout.notes
    assert note.startswith(f"the cloud assembly this rollout synthesized, {own}, could not be removed (")
    assert "remove it by hand, or the next rollout of dev that synthesizes does" in note


# --- through the rollout's own synth (real CDK CLI, no AWS) ---------------------------------------------------


@pytest.mark.slow
def test_a_rollout_synthesizes_prunes_what_no_rollout_uses_and_once_complete_removes_its_own(tmp_path):
    repo = new_git_repo(tmp_path / "repo")
    root = repo.root / "build" / "rollout-assemblies"
    abandoned, other_env = folder(root / f"dev-{OLD}"), folder(root / f"staging-{OLD}")
    store = RolloutStore(SqliteStateStore(tmp_path / "state.db"))
    args = argparse.Namespace(json=True, markdown=False, agents_dir=repo.agents, runtime_image=IMAGE)
    targets = Targets([CANARY], {CANARY: "af-dev-acme-retail-dev"}, {}, "test", [], {})
    cid = change_id("dev", {CANARY: "its fingerprint"}, IMAGE)

    def synthesized() -> tuple[Rollout, str, ProcessRunner]:
        rollout = a_rollout(cid, status="running", assembly=None, synthesized=False, revision=None)
        runner = ProcessRunner(cwd=REPO_ROOT, env=tool_environment(REPO_ROOT))
        with store.hold("dev", "a test"):
            digest = _assembly(args, Console(), store, rollout, targets, runner).digest
        return rollout, digest, runner

    rollout, digest, runner = synthesized()
    own = root / f"dev-{cid}"
    assert runner.runs == {"synth": 1} and rollout.assembly == str(own) and rollout.assembly_synthesized
    assert not abandoned.exists() and other_env.is_dir() and own.is_dir()
    saved = store.load("dev")
    assert saved is not None and saved.assembly_synthesized
    pruned = f"that no unfinished rollout uses (left by finished, abandoned or crashed rollouts) from {root}: "
    assert pruned in saved.notes[-1]

    rollout.status = "complete"
    with store.hold("dev", "a test"):
        _release_assembly(store, rollout)
    assert not own.exists() and other_env.is_dir()
    head = git(repo.root, "rev-parse", "HEAD")
    assert rollout.git_revision == head
    assert f"git revision {head} synthesizes it again byte for byte" in rollout.notes[-1]

    # What the note promises: the same tree synthesizes the same assembly again.
    again, digest_again, _ = synthesized()
    assert digest_again == digest == again.assembly_digest
