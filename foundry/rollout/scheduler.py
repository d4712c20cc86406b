"""The rollout scheduler: waves deployed with bounded concurrency, each baked healthy before the next starts.

Pure core over an abstract `FleetOperations` (deploy one instance, read one instance's health) and asyncio's
clock: the same code runs against AWS (`foundry.rollout.aws_fleet`, real time) and against the simulator
(`foundry.rollout.simulator`, an event loop over virtual time). It never cancels a deploy in flight: a failing gate
stops new deploys, lets the ones running finish, and reports every instance as it really is.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

from foundry.manifests.platform_settings import RolloutPolicy

InstanceState = Literal["not_started", "deploying", "baking", "deployed", "failed", "rolled_back"]
"""`deploying` and `baking` are live states; a finished or halted rollout reports only the other four."""
REPORTED_STATES: tuple[InstanceState, ...] = ("deployed", "failed", "rolled_back", "not_started")
RolloutStatus = Literal["running", "halted", "complete", "interrupted"]
HealthKind = Literal["healthy", "settling", "unhealthy", "rolled_back"]
HEALTH_READ_CONCURRENCY = 10
"""Health reads in flight at once (each is a few describe_* calls): bounded so a 500-instance wave's bake
stays far below the read APIs' throttles."""


@dataclass(frozen=True)
class DeployOutcome:
    ok: bool
    rolled_back: bool = False
    """The deploy failed and CloudFormation (or ECS's circuit breaker) put the previous version back."""
    reason: str | None = None


@dataclass(frozen=True)
class HealthReading:
    kind: HealthKind
    """`settling`: not healthy yet but not failed either (tasks starting, targets registering); the gate waits
    for it only until the policy's settle time is over, and never during the bake."""
    reason: str


class FleetOperations(Protocol):
    """What the scheduler needs from a fleet. Both calls take an ORG/DOMAIN/INSTANCE selector."""

    async def deploy(self, instance: str) -> DeployOutcome: ...

    async def health(self, instance: str) -> HealthReading: ...


@dataclass
class InstanceProgress:
    instance: str
    stack: str
    wave: int
    """1 is the canary wave (or the first wave when the policy has no canary)."""
    state: InstanceState = "not_started"
    reason: str | None = None
    deploys: int = 0
    """Deploys this rollout started for the instance, over every run (a resumed run does not redeploy)."""
    finished_at_seconds: float | None = None
    """Rollout time (summed over runs) when its deploy finished."""


@dataclass
class Rollout:
    """Everything a rollout knows; persisted as JSON after every step so a second run resumes it."""

    environment: str
    change_id: str
    change: str
    """What is rolled out, for people: the plan's revisions, or `every instance`."""
    policy: dict[str, Any]
    waves: list[list[str]]
    instances: dict[str, InstanceProgress]
    status: RolloutStatus = "running"
    waves_baked: list[bool] = field(default_factory=list)
    runs: int = 0
    halted_wave: int | None = None
    halt_reason: str | None = None
    elapsed_seconds: float = 0.0
    """Rollout time over every run: wall time for a real rollout, virtual time for a simulated one."""
    simulated: bool = False
    notes: list[str] = field(default_factory=list)
    bake_ends_at_seconds: float | None = None
    """While a wave bakes (every instance of it read healthy once): the rollout time its bake ends. None otherwise,
    also while the wave's instances are still settling."""
    assembly: str | None = None
    """The cloud assembly (or sharded set, `foundry.synth`) every deploy of this rollout uses: `--assembly DIR`, or
    the one the rollout synthesized before its canary. A resumed run deploys from it, or refuses."""
    assembly_digest: str | None = None
    """Its digest when the rollout started; a resume refuses an assembly whose digest differs."""
    git_revision: str | None = None
    """The agents tree's git commit when the rollout started (`-dirty` when it had uncommitted changes)."""
    assembly_synthesized: bool = False
    """True: the rollout synthesized `assembly` itself into build/rollout-assemblies/, and removes it once complete
    (`foundry.rollout.assembly_pruning`); False: it was given (`--assembly`) and is never removed."""

    @property
    def finished(self) -> bool:
        return self.status == "complete"

    def counts(self) -> dict[str, int]:
        """Instances per state: the four reported states always, the live ones when present."""
        tally = collections.Counter(p.state for p in self.instances.values())
        counts: dict[str, int] = {state: tally.get(state, 0) for state in REPORTED_STATES}
        counts.update({state: n for state, n in tally.items() if state not in REPORTED_STATES})
        return counts

    def as_dict(self) -> dict[str, Any]:
        """Plain data (a shallow copy per instance: dataclasses.asdict's deep walk is the cost at fleet scale)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["instances"] = {k: dict(vars(p)) for k, p in self.instances.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        values = dict(data)
        values["instances"] = {k: InstanceProgress(**v) for k, v in data["instances"].items()}
        return cls(**values)


def new_rollout(
    *,
    environment: str,
    change_id: str,
    change: str,
    policy: RolloutPolicy,
    waves: Sequence[Sequence[str]],
    stacks: Mapping[str, str],
    simulated: bool = False,
) -> Rollout:
    instances = {
        selector: InstanceProgress(instance=selector, stack=stacks[selector], wave=number)
        for number, wave in enumerate(waves, start=1)
        for selector in wave
    }
    return Rollout(
        environment=environment,
        change_id=change_id,
        change=change,
        policy=policy.model_dump(mode="json"),
        waves=[list(w) for w in waves],
        instances=instances,
        waves_baked=[False] * len(waves),
        simulated=simulated,
    )


Checkpoint = Callable[["Rollout", bool], None]
"""(rollout, at_wave_boundary) -> None: persist the rollout. Called after every instance's deploy finishes
(False) and when a wave starts, bakes, halts or the rollout ends (True)."""


@dataclass
class Scheduler:
    policy: RolloutPolicy
    ops: FleetOperations
    checkpoint: Checkpoint
    on_change: Callable[[Rollout], None] | None = None
    """Live view hook; called on every state change (it should only mark the view dirty)."""
    health_read_concurrency: int = HEALTH_READ_CONCURRENCY
    current_wave: int = 0
    phase: str = ""
    """What the current wave is doing, for the live view: deploying, settling, baking (until T) or halted."""
    bake_ends_at: float | None = None
    _now: Callable[[], float] = field(default=lambda: 0.0, repr=False)

    async def run(self, rollout: Rollout) -> Rollout:
        loop = asyncio.get_running_loop()
        started, before = loop.time(), rollout.elapsed_seconds
        rollout.runs += 1
        rollout.status, rollout.halted_wave, rollout.halt_reason = "running", None, None

        def now() -> float:
            return before + loop.time() - started

        self._now = now
        # A run that died mid-wave left `deploying`/`baking` behind: those are redeployed or re-baked.
        for progress in rollout.instances.values():
            if progress.state == "deploying":
                progress.state, progress.reason = "not_started", "interrupted while deploying; deployed again"
            elif progress.state == "baking":
                progress.state = "deployed"
        try:
            for number, wave in enumerate(rollout.waves, start=1):
                if rollout.waves_baked[number - 1]:
                    continue
                self.current_wave = number
                ok = await self._deploy_wave(rollout, number, wave)
                if ok:
                    ok = await self._bake_wave(rollout, number, wave)
                if not ok:
                    rollout.status, rollout.halted_wave = "halted", number
                    self.phase = "halted"
                    break
                rollout.waves_baked[number - 1] = True
                self._changed(rollout, boundary=True)
            else:
                rollout.status = "complete"
                self.phase = "complete"
        finally:
            if rollout.status == "running":  # cancelled or crashed: say so, keep what is known
                rollout.status = "interrupted"
            rollout.elapsed_seconds = now()
            self._changed(rollout, boundary=True)
        return rollout

    # --- one wave ------------------------------------------------------------------------------------------

    async def _deploy_wave(self, rollout: Rollout, number: int, wave: Sequence[str]) -> bool:
        pending = collections.deque(i for i in wave if rollout.instances[i].state != "deployed")
        self.phase = "deploying"
        self._changed(rollout, boundary=True)
        failed: list[str] = []

        async def worker() -> None:
            while pending and not failed:
                selector = pending.popleft()
                progress = rollout.instances[selector]
                progress.state, progress.reason = "deploying", None
                progress.deploys += 1
                self._changed(rollout)
                outcome = await self.ops.deploy(selector)
                progress.finished_at_seconds = self._now()
                if outcome.ok:
                    progress.state = "deployed"
                else:
                    progress.state = "rolled_back" if outcome.rolled_back else "failed"
                    progress.reason = outcome.reason or "the deploy failed"
                    failed.append(selector)
                self._changed(rollout)

        workers = min(self.policy.concurrency, len(pending))
        await asyncio.gather(*(worker() for _ in range(workers)))
        for selector in pending:  # never started because the wave failed
            rollout.instances[selector].reason = f"not started: {failed[0]} failed in wave {number}"
        if failed:
            first = rollout.instances[failed[0]]
            rollout.halt_reason = f"wave {number}: {first.instance} {first.state.replace('_', ' ')}: {first.reason}"
            return False
        return True

    async def _bake_wave(self, rollout: Rollout, number: int, wave: Sequence[str]) -> bool:
        """Every instance healthy (waiting up to settle_seconds for the first healthy reading), then healthy at
        every reading for bake_seconds. Any failed reading fails the gate at once."""
        loop = asyncio.get_running_loop()
        policy = self.policy
        for selector in wave:
            rollout.instances[selector].state = "baking"
        self.phase = "settling"
        self._changed(rollout, boundary=True)
        settle_deadline = loop.time() + policy.settle_seconds
        waiting = list(wave)
        while True:
            readings = await self._read(waiting)
            bad = [(i, r) for i, r in readings if r.kind in ("unhealthy", "rolled_back")]
            if bad:
                return self._gate_failed(rollout, number, wave, bad, "failed before it read healthy")
            waiting = [i for i, r in readings if r.kind == "settling"]
            if not waiting:
                break
            if loop.time() >= settle_deadline:
                late = [(i, r) for i, r in readings if r.kind == "settling"]
                return self._gate_failed(
                    rollout, number, wave, late, f"not healthy within settle_seconds ({policy.settle_seconds}s)"
                )
            await asyncio.sleep(min(policy.health_interval_seconds, max(0.0, settle_deadline - loop.time())))
        bake_end = loop.time() + policy.bake_seconds
        self.phase, self.bake_ends_at = "baking", self._now() + policy.bake_seconds
        rollout.bake_ends_at_seconds = self.bake_ends_at
        self._changed(rollout)
        while loop.time() < bake_end:
            await asyncio.sleep(min(policy.health_interval_seconds, bake_end - loop.time()))
            readings = await self._read(wave)
            bad = [(i, r) for i, r in readings if r.kind != "healthy"]
            if bad:
                return self._gate_failed(rollout, number, wave, bad, "unhealthy during the bake")
        for selector in wave:
            rollout.instances[selector].state = "deployed"
        self.bake_ends_at = rollout.bake_ends_at_seconds = None
        return True

    async def _read(self, instances: Sequence[str]) -> list[tuple[str, HealthReading]]:
        """One health reading of each instance, at most `health_read_concurrency` at once (a few workers sharing
        one iterator: no task per instance, which is the cost of a bake at fleet scale)."""
        readings: dict[str, HealthReading] = {}
        remaining = iter(instances)

        async def worker() -> None:
            for selector in remaining:
                readings[selector] = await self.ops.health(selector)

        await asyncio.gather(*(worker() for _ in range(min(self.health_read_concurrency, len(instances)))))
        return [(i, readings[i]) for i in instances]

    def _gate_failed(
        self,
        rollout: Rollout,
        number: int,
        wave: Sequence[str],
        bad: Sequence[tuple[str, HealthReading]],
        when: str,
    ) -> bool:
        for selector, reading in bad:
            progress = rollout.instances[selector]
            progress.state = "rolled_back" if reading.kind == "rolled_back" else "failed"
            progress.reason = f"{when}: {reading.reason}"
        for selector in wave:
            if rollout.instances[selector].state == "baking":
                progress = rollout.instances[selector]
                progress.state = "deployed"
                progress.reason = f"deployed; the bake of wave {number} stopped when another instance failed"
        first = rollout.instances[bad[0][0]]
        rollout.halt_reason = f"wave {number}: {first.instance} {first.state.replace('_', ' ')}: {first.reason}"
        self.bake_ends_at = rollout.bake_ends_at_seconds = None
        return False

    def _changed(self, rollout: Rollout, *, boundary: bool = False) -> None:
        rollout.elapsed_seconds = self._now()
        self.checkpoint(rollout, boundary)
        if self.on_change is not None:
            self.on_change(rollout)
