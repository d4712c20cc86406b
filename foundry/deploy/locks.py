"""One deploy per (environment, instance) at a time, across every deployer of the environment.

A lease in the environment's deploy state (`foundry.state`: the platform's DynamoDB table, or locally a SQLite
file), so the Foundry MCP server, a CI rollout and an engineer's clone see each other's locks; plus an in-process
map for two MCP sessions of one server. The lease names its holder (`the Foundry MCP server on host (pid N)`,
`rollout 1a2b... of dev on host (pid N)`) and what it is doing, for the message a refused request gets; it is
renewed while its holder lives and expires when it stops (a crashed holder blocks nobody for long).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from foundry.state.leases import Lease
from foundry.state.store import DEFAULT_TTL_SECONDS, LeaseHeldError, StateStoreError, this_process
from foundry.state.stores import StateStores


class DeployRefusedError(RuntimeError):
    """A deploy that must not start; the message says why and what to do."""


class DeployInProgressError(DeployRefusedError):
    """A deploy of the same instance is already running (or a rollout holds it); the message names the holder."""


class DeployStateUnavailableError(DeployRefusedError):
    """The deploy state (where locks live) cannot be reached: no deploy starts without its lock."""


@dataclass(frozen=True)
class LockTarget:
    environment: str
    instance: str
    """ORG/DOMAIN/INSTANCE."""
    region: str | None
    """The environment's region (the DynamoDB store needs it)."""

    @property
    def key(self) -> str:
        return f"deploy-lock/{self.environment}/{self.instance}"


def since() -> str:
    return f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


class HeldLock:
    """One instance's lock while it is held: by a running deploy, by the watch of a stopped deploy's stack, or by a
    rollout. `reason` is what a refused request is told; it is also written into the lease for other deployers."""

    def __init__(self, locks: InstanceLocks, key: str, lease: Lease, reason: str) -> None:
        self._locks, self.key, self.lease = locks, key, lease
        self.released = False
        self.handed_over = False
        """Set when a background watch took the lock over: the request that acquired it no longer releases it."""
        self.reason = reason
        locks._held[key] = reason

    @property
    def holder(self) -> str:
        return self.lease.holder

    def describe(self, reason: str) -> None:
        """Says what the holder does now (and renews the lease)."""
        self.reason = reason
        self._locks._held[self.key] = reason
        self.lease.renew(reason)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._locks._held.pop(self.key, None)
        with contextlib.suppress(StateStoreError):  # unreachable: the lease expires by itself
            self.lease.release()


class InstanceLocks:
    """`holder` names this deployer in every lock it takes; `stores` is where the locks live (default:
    FOUNDRY_STATE_URL, else the SQLite file beside the repository's agents tree)."""

    def __init__(
        self,
        stores: StateStores | None = None,
        *,
        holder: str | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._stores = stores
        self.holder = holder or f"a Foundry deploy on {this_process()}"
        self.ttl_seconds = ttl_seconds
        self._held: dict[str, str] = {}

    @property
    def stores(self) -> StateStores:
        if self._stores is None:
            from foundry.aws.clients import boto3_clients
            from foundry.fleet.load import DEFAULT_AGENTS_DIR

            self._stores = StateStores.configured(DEFAULT_AGENTS_DIR, boto3_clients)
        return self._stores

    def acquire(self, target: LockTarget, label: str, *, holder: str | None = None) -> HeldLock:
        """Takes the instance's lock or raises DeployInProgressError naming who holds it and why."""
        key = target.key
        if key in self._held:
            raise DeployInProgressError(
                f"a deploy of {label} is already running in this server ({self._held[key]}); "
                "this request was refused, not queued: retry when it has finished"
            )
        reason = since()
        try:
            store = self.stores.open(target.environment, target.region)
            lease = Lease.take(store, key, holder or self.holder, reason, self.ttl_seconds)
        except LeaseHeldError as held:
            raise DeployInProgressError(
                f"a deploy of {label} is already running (held by {held.info.holder}: {held.info.description}); "
                "this request was refused, not queued: retry when it has finished"
            ) from None
        except StateStoreError as exc:
            raise DeployStateUnavailableError(
                f"the deploy of {label} was refused (nothing was deployed): its lock cannot be taken: {exc}"
            ) from exc
        return HeldLock(self, key, lease, reason)

    def reason(self, target: LockTarget) -> str | None:
        """Who holds the instance's lock and why: this process's reason, else any live holder's (None: free)."""
        mine = self._held.get(target.key)
        if mine is not None:
            return mine
        try:
            info = self.stores.open(target.environment, target.region).holder(target.key)
        except StateStoreError:
            return None
        return None if info is None else f"held by {info.holder}: {info.description}"

    @contextlib.asynccontextmanager
    async def hold(self, target: LockTarget, label: str) -> AsyncIterator[HeldLock]:
        held = self.acquire(target, label)
        try:
            yield held
        finally:
            held.release()
