"""Where a rollout is remembered between runs: one record per environment in the environment's deploy state
(`foundry.state`: the platform's DynamoDB table, shared by every deployer, or locally a SQLite file), so a rollout
halted on one machine resumes from another.

One record per environment (not per change) is what lets a new change see that the environment still has an
unfinished rollout. The record names its change. A running rollout holds the record's lease (one rollout of an
environment at a time, anywhere) and every write is fenced by it: a rollout that lost its lease writes nothing.
Records are zlib-compressed JSON (a DynamoDB item holds at most 400 KB).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from foundry.rollout.scheduler import Rollout
from foundry.state.leases import Lease, LeaseLostError
from foundry.state.store import DEFAULT_TTL_SECONDS, LeaseHeldError, StateStore, StateStoreError, this_process

ROLLOUT_PREFIX = "rollout/"
SIMULATED_PREFIX = "rollout-simulated/"
"""`--simulate --simulate-keep-state` remembers its rollouts apart from real ones and never touches these."""


class RolloutConflictError(Exception):
    """Another rollout of the environment is running or unfinished, or the state cannot be read or written; the
    message says which and what to run."""


def change_id(environment: str, targets: Mapping[str, str], runtime_image: str | None) -> str:
    """Identifies a change: the environment, each instance to deploy with its content fingerprint (a hash of
    its resolved manifest and bundle files), and the runtime image. The same change always gets the same id."""
    document = {"environment": environment, "instances": dict(sorted(targets.items())), "image": runtime_image}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def rollout_holder(rollout_change_id: str, environment: str) -> str:
    """How a running rollout names itself in the locks it holds (what a refused deploy is told)."""
    return f"rollout {rollout_change_id} of {environment} on {this_process()}"


@dataclass
class RolloutStore:
    store: StateStore
    simulated: bool = False
    ttl_seconds: float = DEFAULT_TTL_SECONDS
    lease: Lease | None = field(default=None, init=False, repr=False)

    def key(self, environment: str) -> str:
        return (SIMULATED_PREFIX if self.simulated else ROLLOUT_PREFIX) + environment

    def where(self, environment: str) -> str:
        """Where the environment's record lives, for messages."""
        return f"{self.store.location}, record {self.key(environment)}"

    def load(self, environment: str) -> Rollout | None:
        try:
            blob = self.store.read(self.key(environment))
        except StateStoreError as exc:
            raise RolloutConflictError(str(exc)) from exc
        if blob is None:
            return None
        try:
            return Rollout.from_dict(json.loads(zlib.decompress(blob)))
        except (zlib.error, ValueError, TypeError, KeyError) as exc:
            raise RolloutConflictError(
                f"{self.where(environment)} is not a readable rollout state ({exc}); run again with --abandon"
            ) from exc

    def load_as_is(self, environment: str) -> Rollout | None:
        """The record, and a `running` one whose lease nobody holds any more (its process was killed without a
        word, or lost its network) reported as `interrupted`: it runs nowhere."""
        rollout = self.load(environment)
        if rollout is None or rollout.status != "running":
            return rollout
        try:
            alive = self.store.holder(self.key(environment)) is not None
        except StateStoreError as exc:
            raise RolloutConflictError(str(exc)) from exc
        if not alive:
            rollout.status = "interrupted"
            rollout.notes.append(
                "recorded as running, but no rollout holds the environment's lease: its process stopped without "
                "recording it; run the same command to resume"
            )
        return rollout

    def save(self, rollout: Rollout) -> None:
        """Fenced by the lease `hold` took: raises LeaseLostError (nothing written) when it was lost."""
        if self.lease is None or self.lease.key != self.key(rollout.environment):
            raise LeaseLostError(
                f"the rollout of {rollout.environment} holds no lease on {self.where(rollout.environment)}"
            )
        # Compact separators keep json on its C encoder (an indent would not): the state of 1,000 instances is
        # written after every deploy.
        data = json.dumps(rollout.as_dict(), sort_keys=True, separators=(",", ":")).encode()
        self.lease.write(zlib.compress(data, 6))

    @contextlib.contextmanager
    def hold(self, environment: str, holder: str) -> Iterator[None]:
        """One rollout of an environment at a time, across every machine that shares the store."""
        try:
            self.lease = Lease.take(self.store, self.key(environment), holder, "running", self.ttl_seconds)
        except LeaseHeldError as held:
            raise RolloutConflictError(
                f"a rollout of {environment} is already running (held by {held.info.holder}: "
                f"{held.info.description}); wait for it, or read its progress with foundry.get_rollout_status"
            ) from None
        except StateStoreError as exc:
            raise RolloutConflictError(f"the rollout of {environment} cannot start: {exc}") from exc
        try:
            yield
        finally:
            lease, self.lease = self.lease, None
            with contextlib.suppress(StateStoreError):
                lease.release()

    def environments(self) -> Sequence[str]:
        prefix = SIMULATED_PREFIX if self.simulated else ROLLOUT_PREFIX
        try:
            return [key[len(prefix) :] for key in self.store.keys(prefix)]
        except StateStoreError as exc:
            raise RolloutConflictError(str(exc)) from exc


def resume_or_start(store: RolloutStore, fresh: Rollout, *, abandon: bool) -> tuple[Rollout, str]:
    """The rollout to run: the unfinished one of the same change (resumed), else `fresh`. An unfinished rollout of
    another change refuses, unless `abandon`. Returns the rollout and a line saying which case it was."""
    existing = store.load(fresh.environment)
    if existing is not None and existing.finished and existing.change_id == fresh.change_id and not abandon:
        return existing, "already complete (nothing to do; run with --abandon to roll the same change out again)"
    if existing is None or existing.finished:
        return fresh, "new rollout"
    if existing.change_id == fresh.change_id:
        if existing.waves != fresh.waves:
            # Same change, other waves (the policy changed): keep what was deployed, re-plan what was not.
            for selector, progress in fresh.instances.items():
                old = existing.instances.get(selector)
                if old is not None and old.state == "deployed":
                    progress.state, progress.deploys = "deployed", old.deploys
            fresh.runs, fresh.elapsed_seconds = existing.runs, existing.elapsed_seconds
            # The same change deploys from the assembly it started with (checked again before deploying).
            fresh.assembly, fresh.assembly_digest = existing.assembly, existing.assembly_digest
            fresh.git_revision, fresh.assembly_synthesized = existing.git_revision, existing.assembly_synthesized
            return fresh, "resumed (policy changed: waves re-planned, deployed instances kept)"
        return existing, f"resumed (run {existing.runs + 1}, stopped at wave {existing.halted_wave or '?'})"
    if not abandon:
        counts = existing.counts()
        raise RolloutConflictError(
            f"environment {fresh.environment} has an unfinished rollout of another change "
            f"({existing.change}, id {existing.change_id}: {existing.status}, {counts['deployed']} deployed, "
            f"{counts['failed'] + counts['rolled_back']} failed or rolled back, {counts['not_started']} not started; "
            f"state in {store.where(fresh.environment)}). Finish it by running that change again, or start this "
            "one with --abandon"
        )
    fresh.notes.append(
        f"abandoned the unfinished rollout of {existing.change} (id {existing.change_id}, {existing.status})"
    )
    return fresh, "new rollout (the previous one was abandoned)"
