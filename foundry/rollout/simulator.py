"""A simulated AWS in virtual time, for `rollout --simulate` and the fleet-scale tests.

`VirtualTimeLoop` is an ordinary asyncio event loop whose clock only moves when nothing is ready to run: it jumps
straight to the next timer. The scheduler's `asyncio.sleep` calls therefore cost no wall time, and a rollout of
1,000 instances with hours of deploys and bakes runs in well under a second of scheduler work. `SimulatedFleet`
plays the AWS side: a deploy takes its (deterministically jittered) time, injected failures fail.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import selectors
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from foundry.rollout.scheduler import DeployOutcome, HealthReading

T = TypeVar("T")
DEFAULT_DEPLOY_SECONDS = 240.0
"""An instance stack update: CloudFormation plus the ECS deployment waiting for the new tasks (~4 min)."""
DEFAULT_JITTER = 0.25


class _VirtualSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready, advances the loop's clock by the time it would have waited."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("the simulation is stuck: nothing is scheduled and nothing can wake it")
        self._loop.virtual_now += max(0.0, timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.virtual_now


def run_in_virtual_time(main: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    """Runs `main()` on a fresh virtual-time loop; returns its result and the virtual seconds it took. Called
    from inside a running loop (an async caller), it runs the virtual loop on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, main).result()


def _run_here(main: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    loop = VirtualTimeLoop()
    try:
        result = loop.run_until_complete(main())
        return result, loop.time()
    finally:
        loop.close()


def _fraction(text: str) -> float:
    """A repeatable number in [0, 1) per instance, so a simulation gives the same answer every run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


@dataclass
class SimulatedFleet:
    """FleetOperations over nothing: deploys take `deploy_seconds` (+/- `jitter`), health reads are instant."""

    deploy_seconds: float = DEFAULT_DEPLOY_SECONDS
    jitter: float = DEFAULT_JITTER
    fail: frozenset[str] = frozenset()
    """Instances whose deploy fails (the stack cannot update)."""
    unhealthy: frozenset[str] = frozenset()
    """Instances that deploy but never become healthy (ECS's circuit breaker rolls the service back)."""
    in_flight: int = 0
    max_in_flight: int = 0
    deploy_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    started: list[tuple[float, str]] = field(default_factory=list)
    """(virtual time, instance) of every deploy started, in order."""

    def duration(self, instance: str) -> float:
        return self.deploy_seconds * (1 + self.jitter * (2 * _fraction(instance) - 1))

    async def deploy(self, instance: str) -> DeployOutcome:
        loop = asyncio.get_running_loop()
        self.deploy_calls[instance] += 1
        self.started.append((loop.time(), instance))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if instance in self.fail:
                await asyncio.sleep(self.duration(instance) / 2)
                return DeployOutcome(
                    ok=False,
                    reason="simulated failure (--simulate-fail): the instance stack could not be updated",
                )
            await asyncio.sleep(self.duration(instance))
            return DeployOutcome(ok=True)
        finally:
            self.in_flight -= 1

    async def health(self, instance: str) -> HealthReading:
        if instance in self.unhealthy:
            return HealthReading(
                "rolled_back",
                "simulated (--simulate-unhealthy): the ECS deployment failed and the circuit breaker rolled it back",
            )
        return HealthReading("healthy", "simulated: stack complete, deployment completed, targets healthy")


def simulated_selectors(count: int) -> list[str]:
    """`sim/fleet/i0000`..: a synthetic fleet of `count` instances for `--simulate-instances`."""
    return [f"sim/fleet/i{index:04d}" for index in range(count)]
