"""A held lease, renewed in the background while its holder lives: a crashed holder stops renewing, its lease
expires after its time to live, and anyone may take it then.

One daemon thread per process renews every live lease at a third of its time to live (a thread, not a task: a
rollout's event loop may run in virtual time, and a deploy may block it). A renewal that fails marks the lease
lost: its holder's next fenced write fails, and what it reports says so.
"""

from __future__ import annotations

import threading
import time

from foundry.state.store import DEFAULT_TTL_SECONDS, StateStore, StateStoreError


class LeaseLostError(Exception):
    """The holder's lease expired or was taken over: what it wanted to write was not written."""


class Lease:
    def __init__(self, store: StateStore, key: str, holder: str, token: str, ttl_seconds: float) -> None:
        self.store, self.key, self.holder, self.token, self.ttl_seconds = store, key, holder, token, ttl_seconds
        self.lost = False
        self.released = False
        self.renewed_at = time.monotonic()

    @classmethod
    def take(
        cls, store: StateStore, key: str, holder: str, description: str, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> Lease:
        """Takes the key's lease (LeaseHeldError names the live holder) and keeps it renewed until released."""
        lease = cls(store, key, holder, store.acquire(key, holder, description, ttl_seconds), ttl_seconds)
        KEEPER.keep(lease)
        return lease

    def renew(self, description: str | None = None) -> bool:
        if self.released or self.lost:
            return False
        try:
            ok = self.store.renew(self.key, self.token, self.ttl_seconds, description)
        except StateStoreError:
            return True  # unreadable for now: retried at the next interval; the lease expires if it stays so
        self.renewed_at = time.monotonic()
        self.lost = not ok
        return ok

    def write(self, data: bytes) -> None:
        if self.released or not self.store.write(self.key, self.token, data):
            self.lost = True
            raise LeaseLostError(
                f"{self.holder} no longer holds {self.key} in {self.store.location} (its lease expired or was "
                "taken over): nothing was written"
            )

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        KEEPER.drop(self)
        self.store.release(self.key, self.token)


class LeaseKeeper:
    def __init__(self) -> None:
        self._leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def keep(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="foundry-lease-keeper", daemon=True)
                self._thread.start()
        self._wake.set()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            with self._lock:
                leases = list(self._leases)
            now = time.monotonic()
            waits = []
            for lease in leases:
                due = lease.renewed_at + lease.ttl_seconds / 3
                if due <= now:
                    if not lease.renew():
                        self.drop(lease)
                    due = lease.renewed_at + lease.ttl_seconds / 3
                waits.append(max(0.05, due - time.monotonic()))
            self._wake.wait(min(waits, default=60.0))
            self._wake.clear()


KEEPER = LeaseKeeper()
