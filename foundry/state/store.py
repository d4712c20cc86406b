"""The one interface both stores implement: leases with fenced writes.

An item has a key, at most one lease (holder, token, description, expiry) and optionally data. A lease is taken
only when the item has none or its lease has expired (a holder that stopped renewing it: crashed, killed, lost its
network), so no lock outlives its holder by more than its time to live. Data is written only by the lease's
holder, checked by the store's conditional write (the token), so a holder that lost its lease writes nothing.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Protocol

DEFAULT_TTL_SECONDS = 60.0
"""How long a lease lives without renewal. Holders renew every third of it; clocks of deployers may differ by a
few seconds, far below this."""


@dataclass(frozen=True)
class LeaseInfo:
    key: str
    holder: str
    """Who holds it, for people: `rollout 1a2b... of dev on host (pid 42)`, `the Foundry MCP server on host ...`."""
    description: str
    """What the holder is doing (`deploying since ...`), kept current by the holder."""
    expires_at: float


class LeaseHeldError(Exception):
    """The lease is held by someone else; `info` says who and what they are doing."""

    def __init__(self, info: LeaseInfo) -> None:
        super().__init__(f"held by {info.holder}: {info.description}")
        self.info = info


class StateStoreError(Exception):
    """The store cannot be reached or read; the message names the store and what failed."""


class StateStore(Protocol):
    location: str
    """Where the state lives, for messages: `SQLite file /repo/build/foundry-state.db` or `DynamoDB table T`."""

    def acquire(self, key: str, holder: str, description: str, ttl_seconds: float) -> str:
        """Takes the key's lease and returns its token, or raises LeaseHeldError naming the live holder."""
        ...

    def renew(self, key: str, token: str, ttl_seconds: float, description: str | None = None) -> bool:
        """Extends the lease (and updates its description); False when the token no longer holds it."""
        ...

    def release(self, key: str, token: str) -> None:
        """Gives the lease up (nothing happens when the token no longer holds it); data stays."""
        ...

    def holder(self, key: str) -> LeaseInfo | None:
        """The live lease on the key, if any (an expired one is no holder)."""
        ...

    def write(self, key: str, token: str, data: bytes) -> bool:
        """Stores data under the key if the token holds its live lease; False (nothing written) otherwise."""
        ...

    def read(self, key: str) -> bytes | None: ...

    def keys(self, prefix: str) -> list[str]:
        """Keys holding data that start with `prefix`, sorted."""
        ...


def this_process() -> str:
    """`host (pid N)`: how a holder names where it runs."""
    return f"{socket.gethostname()} (pid {os.getpid()})"
