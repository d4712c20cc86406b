"""moto's DynamoDB made isolated like DynamoDB's: one request at a time.

moto's server handles requests on threads, and its `TransactWriteItems` snapshots every table it touches and, when
the transaction is cancelled, puts the snapshot back, losing whatever other requests wrote meanwhile (and a
condition it checks can see a half-applied concurrent write). DynamoDB isolates transactions from other writes;
the runtime's fenced turns (runtime/store/thread_saver_dynamodb.py) rely on it, and two runtime processes on one table
write concurrently in the tests. Serialising moto's DynamoDB requests gives that isolation back; moto's Python
handlers hold the GIL anyway, so little concurrency is lost.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.RLock()


def serialise_dynamodb_requests() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialised", False):
        return

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    call_action.serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
