"""The state store on a SQLite file: the same leases and fenced writes as the DynamoDB table, for one machine.

Every operation is one short transaction (`BEGIN IMMEDIATE`, a fresh connection: the lease keeper renews from its
own thread). The file is created owner-only (0600): it names who deploys what.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from foundry.state.store import LeaseHeldError, LeaseInfo, StateStoreError

SCHEMA = """CREATE TABLE IF NOT EXISTS deploy_state (
    key TEXT PRIMARY KEY,
    holder TEXT,
    token TEXT,
    description TEXT,
    expires_at REAL,
    data BLOB
)"""
BUSY_TIMEOUT_SECONDS = 10.0


class SqliteStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = f"SQLite file {path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            with self._transaction() as db:
                db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"cannot open the deploy state {self.location}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateStoreError(f"the deploy state {self.location} failed: {exc}") from exc
        finally:
            db.close()

    def acquire(self, key: str, holder: str, description: str, ttl_seconds: float) -> str:
        token, now = secrets.token_hex(16), time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT holder, token, description, expires_at FROM deploy_state WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[1] is not None and row[3] >= now:
                raise LeaseHeldError(LeaseInfo(key=key, holder=row[0], description=row[2], expires_at=row[3]))
            db.execute(
                "INSERT INTO deploy_state (key, holder, token, description, expires_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, token = excluded.token, "
                "description = excluded.description, expires_at = excluded.expires_at",
                (key, holder, token, description, now + ttl_seconds),
            )
        return token

    def renew(self, key: str, token: str, ttl_seconds: float, description: str | None = None) -> bool:
        now = time.time()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE deploy_state SET expires_at = ?, description = COALESCE(?, description) "
                "WHERE key = ? AND token = ? AND expires_at >= ?",
                (now + ttl_seconds, description, key, token, now),
            ).rowcount
        return changed == 1

    def release(self, key: str, token: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE deploy_state SET holder = NULL, token = NULL, description = NULL, expires_at = NULL "
                "WHERE key = ? AND token = ?",
                (key, token),
            )
            db.execute("DELETE FROM deploy_state WHERE key = ? AND token IS NULL AND data IS NULL", (key,))

    def holder(self, key: str) -> LeaseInfo | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT holder, description, expires_at FROM deploy_state WHERE key = ? AND token IS NOT NULL",
                (key,),
            ).fetchone()
        if row is None or row[2] < time.time():
            return None
        return LeaseInfo(key=key, holder=row[0], description=row[1], expires_at=row[2])

    def write(self, key: str, token: str, data: bytes) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE deploy_state SET data = ? WHERE key = ? AND token = ? AND expires_at >= ?",
                (data, key, token, time.time()),
            ).rowcount
        return changed == 1

    def read(self, key: str) -> bytes | None:
        with self._transaction() as db:
            row = db.execute("SELECT data FROM deploy_state WHERE key = ?", (key,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def keys(self, prefix: str) -> list[str]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT key FROM deploy_state WHERE data IS NOT NULL AND substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        return [str(r[0]) for r in rows]
