"""A state store in this process only: for `rollout --simulate`, which keeps no state unless asked to."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from foundry.state.store import LeaseHeldError, LeaseInfo


@dataclass
class _Item:
    holder: str | None = None
    token: str | None = None
    description: str = ""
    expires_at: float = 0.0
    data: bytes | None = None


class MemoryStateStore:
    location = "memory (this process only; nothing is kept)"

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, holder: str, description: str, ttl_seconds: float) -> str:
        with self._lock:
            item = self._items.setdefault(key, _Item())
            now = time.time()
            if item.token is not None and item.holder is not None and item.expires_at >= now:
                raise LeaseHeldError(LeaseInfo(key, item.holder, item.description, item.expires_at))
            item.holder, item.token = holder, secrets.token_hex(16)
            item.description, item.expires_at = description, now + ttl_seconds
            return item.token

    def renew(self, key: str, token: str, ttl_seconds: float, description: str | None = None) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.token != token or item.expires_at < time.time():
                return False
            item.expires_at = time.time() + ttl_seconds
            item.description = description if description is not None else item.description
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.token == token:
                item.holder = item.token = None

    def holder(self, key: str) -> LeaseInfo | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.token is None or item.holder is None or item.expires_at < time.time():
                return None
            return LeaseInfo(key, item.holder, item.description, item.expires_at)

    def write(self, key: str, token: str, data: bytes) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.token != token or item.expires_at < time.time():
                return False
            item.data = data
            return True

    def read(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            return None if item is None else item.data

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k, v in self._items.items() if v.data is not None and k.startswith(prefix))
