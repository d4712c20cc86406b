"""Removing the cloud assemblies rollouts synthesized into `build/rollout-assemblies/` once no rollout needs them.

A complete rollout removes the folder it synthesized itself (never an `--assembly DIR` it was given); a rollout that
has just synthesized and recorded its own removes its environment's folders that no unfinished rollout's state
references (an abandoned rollout's, a crashed run's, a complete one's whose removal failed). A halted or interrupted
rollout's folder stays: its resume deploys from it (`foundry.rollout.assembly.recorded_assembly`).

Only the rollout's own environment is pruned: its record is the one it holds the lease of, and the others may live in
other stores (with `dynamodb://`, each environment's record is in its own platform's table, in its own region).
What goes is decided by pure functions over folder names and the paths the state references; removing is the edge,
where a failure is a note in the report, never a failed rollout.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from foundry.rollout.assembly import ASSEMBLIES_SUBDIR
from foundry.rollout.scheduler import Rollout
from foundry.rollout.state import RolloutConflictError, RolloutStore

CHANGE_ID = r"[0-9a-f]{16}"
"""What `foundry.rollout.state.change_id` makes: the first 16 hex digits of a SHA-256."""
NAMES_SHOWN = 5


def is_assembly_of(name: str, environment: str) -> bool:
    """`name` is `<environment>-<change id>`, exactly: `dev-eu-<id>` is not dev's, a staging or hidden folder is
    nobody's."""
    return re.fullmatch(re.escape(environment) + "-" + CHANGE_ID, name) is not None


def unreferenced_assemblies(names: Iterable[str], environment: str, referenced: Iterable[str]) -> list[str]:
    """The folder names, sorted, of `environment`'s synthesized assemblies that no path in `referenced` (the
    assemblies of unfinished rollouts) names. Compared by folder name, wherever the path points: a state recorded
    from another checkout keeps the folder of the same name here too."""
    kept = {Path(path).name for path in referenced}
    return sorted(name for name in set(names) if is_assembly_of(name, environment) and name not in kept)


def own_assembly(rollout: Rollout) -> Path | None:
    """The folder a complete rollout synthesized itself and may remove: recorded as synthesized (not given), named
    `<environment>-<change id>` of this rollout, directly in a `build/rollout-assemblies/`. None otherwise."""
    if rollout.status != "complete" or not rollout.assembly_synthesized or rollout.assembly is None:
        return None
    path = Path(rollout.assembly)
    in_place = path.parent.name == ASSEMBLIES_SUBDIR and path.parent.parent.name == "build"
    named = path.name == f"{rollout.environment}-{rollout.change_id}" and is_assembly_of(path.name, rollout.environment)
    return path if in_place and named else None


def removed_note(rollout: Rollout, path: Path) -> str:
    """What the report says of a removed assembly: how the same one is made again."""
    how = (
        f"`python -m foundry synth --environment {rollout.environment} --instances <the rollout's instances> "
        "--runtime-image <its image>` prints the same digest"
    )
    revision = rollout.git_revision
    if revision is None:
        again = f"the agents tree's git revision was not recorded: only the same files synthesize it again ({how})"
    elif revision.endswith("-dirty"):
        again = (
            f"the agents tree was at git revision {revision.removesuffix('-dirty')} with uncommitted changes: only "
            f"that revision with the same changes synthesizes it again ({how})"
        )
    else:
        again = f"the agents tree at git revision {revision} synthesizes it again byte for byte ({how})"
    return (
        f"removed the cloud assembly this rollout synthesized, {path}: a complete rollout needs it no more; the state "
        f"keeps its digest {rollout.assembly_digest}, and {again}"
    )


def _names_text(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


# --- the edge: the folders themselves ---------------------------------------------------------------------------


def release_own_assembly(rollout: Rollout) -> str | None:
    """Removes the folder a complete rollout synthesized (see `own_assembly`); the note to report, None when there
    is nothing to remove (given an assembly, not complete, or already gone)."""
    path = own_assembly(rollout)
    if path is None or path.is_symlink() or not path.is_dir():
        return None
    try:
        shutil.rmtree(path)
    except OSError as exc:
        return (
            f"the cloud assembly this rollout synthesized, {path}, could not be removed ({exc}); a complete rollout "
            f"needs it no more: remove it by hand, or the next rollout of {rollout.environment} that synthesizes does"
        )
    return removed_note(rollout, path)


def prune_unreferenced(root: Path, environment: str, store: RolloutStore) -> list[str]:
    """Removes the folders of `environment` in `root` (a `build/rollout-assemblies/`) that the environment's
    rollout record does not reference while unfinished. Notes for the report: what was removed, what could not be.
    An unreadable state removes nothing."""
    try:
        names = [entry.name for entry in root.iterdir() if entry.is_dir() and not entry.is_symlink()]
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"the cloud assemblies earlier rollouts of {environment} left in {root} were not pruned: {exc}"]
    try:
        live = store.load(environment)
    except RolloutConflictError as exc:
        return [f"the cloud assemblies earlier rollouts of {environment} left in {root} were not pruned: {exc}"]
    referenced = [live.assembly] if live is not None and not live.finished and live.assembly is not None else []
    removed: list[str] = []
    notes: list[str] = []
    for name in unreferenced_assemblies(names, environment, referenced):
        try:
            shutil.rmtree(root / name)
        except OSError as exc:
            notes.append(
                f"the cloud assembly {root / name}, which no unfinished rollout uses, could not be removed: {exc}"
            )
        else:
            removed.append(name)
    if removed:
        notes.insert(
            0,
            f"removed {len(removed)} cloud assembl{'y' if len(removed) == 1 else 'ies'} of {environment} that no "
            f"unfinished rollout uses (left by finished, abandoned or crashed rollouts) from {root}: "
            f"{_names_text(removed)}",
        )
    return notes
